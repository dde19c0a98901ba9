"""MADV_PAGEOUT: reclaim of the pages a range maps (mm/madvise.c
madvise_cold_or_pageout_pte_range, mm/vmscan.c shrink_folio_list).

Only present entries are looked at (swap, device-exclusive and none entries are
skipped, so is the zero page). A folio is reclaimed only when this entry is its
only mapping (folio_mapcount == 1), it is not pinned (folio_maybe_dma_pinned:
never added to swap), not locked (folio_trylock), nothing else holds a reference,
and it is not KSM (a model simplification). try_to_unmap_one fires a CLEAR
invalidation for the page. An anon page becomes a swap entry (keeping
AnonExclusive as the entry's exclusive marker, and soft-dirty); a shmem page
leaves the page cache for a swap slot (shmem_writeout) if it is dirty, else it is
just dropped (the file page becomes a hole again); its entry becomes none.
"""
from __future__ import annotations

from .folio import Folio, folio_put
from .mm import Mm
from .pagetable import Pte
from .shmem import ShmemFile
from .swap import SwapSlot


def reclaimable(folio: Folio) -> bool:
    """The checks of madvise_cold_or_pageout_pte_range and shrink_folio_list."""
    extra = (1 if folio.mapping is not None else 0) + (1 if folio.swap_slot is not None else 0)
    return (folio.mapcount == 1 and folio.pincount == 0 and not folio.locked
            and not folio.ksm and folio.refcount == 1 + extra)


def pageout_range(mm: Mm, start: int, end: int) -> None:
    """Reclaim every eligible page mapped in [start, end) of one VMA, in vpn order."""
    for vpn in mm.vpns_in(start, end):
        pte = mm.ptes[vpn]
        folio = pte.page
        if not pte.present or not isinstance(folio, Folio) or not reclaimable(folio):
            continue
        mm.notify("clear", vpn, vpn + 1, None)          # try_to_unmap_one
        if folio.anon:
            slot = folio.swap_slot
            if isinstance(slot, SwapSlot):               # already in the swap cache
                slot.cache, folio.swap_slot = None, None
                folio_put(folio)
            else:
                slot = SwapSlot(folio.value)             # add_to_swap + pageout
            slot.count += 1
            exclusive, soft_dirty = folio.anon_exclusive, pte.soft_dirty
            mm.zap_pte(vpn)                              # the last reference: freed
            mm.set_swap_pte(vpn, Pte(None, soft_dirty=soft_dirty, swap=slot,
                                     swp_exclusive=exclusive))
        else:
            file = folio.mapping
            assert isinstance(file, ShmemFile)
            dirty = folio.dirty or pte.dirty             # try_to_unmap moves the PTE dirty bit
            mm.zap_pte(vpn)
            file.reclaim(folio.index, dirty)
