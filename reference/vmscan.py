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

from .folio import HPAGE_PMD_NR, Folio, SubPage, Thp, folio_put
from .mm import Mm
from .pagetable import HugePte, Pte
from .shmem import ShmemFile
from .swap import SwapSlot


def reclaimable(folio: Folio) -> bool:
    """The checks of madvise_cold_or_pageout_pte_range and shrink_folio_list."""
    extra = (1 if folio.mapping is not None else 0) + (1 if folio.swap_slot is not None else 0)
    return (folio.mapcount == 1 and folio.pincount == 0 and not folio.locked
            and not folio.ksm and folio.refcount == 1 + extra)


def pageout_huge_pmd(mm: Mm, idx: int) -> None:
    """A PMD-mapped THP mapped only here, unpinned, unlocked, with no other reference
    goes out whole (shrink_folio_list: TTU_SPLIT_HUGE_PMD, one CLEAR over the block):
    every page becomes its own swap entry (live 6.18: all 512 swapped, swap-in brings
    back order-0 pages). The huge zero folio is never reclaimed."""
    pmd = mm.huge_pmd(idx)
    assert pmd is not None
    thp = pmd.folio
    if not isinstance(thp, Thp) or thp.large_mapcount() != 1 or thp.pincount or thp.locked \
            or thp.refcount != 1:
        return
    base = idx << 9
    mm.notify("clear", base, base + HPAGE_PMD_NR, None)
    exclusive, soft_dirty = thp.head.anon_exclusive, pmd.soft_dirty
    mm.zap_pmd(idx)
    for i, page in enumerate(thp.pages):
        slot = SwapSlot(page.value)
        slot.count += 1
        mm.set_swap_pte(base + i, Pte(None, soft_dirty=soft_dirty, swap=slot,
                                      swp_exclusive=exclusive))


def pageout_range(mm: Mm, start: int, end: int) -> None:
    """Reclaim every eligible page mapped in [start, end) of one VMA, in vpn order.
    Approximation: a huge PMD partly in the range and the PTE-mapped pages of a THP
    are skipped (the kernel tries split_folio first)."""
    for vpn in mm.vpns_in(start, end):
        pte = mm.ptes.get(vpn)
        if pte is None:
            continue                                     # a THP above went out whole
        if isinstance(pte, HugePte):
            if vpn % HPAGE_PMD_NR == 0 and vpn + HPAGE_PMD_NR <= end:
                pageout_huge_pmd(mm, vpn >> 9)
            continue
        folio = pte.page
        if not pte.present or not isinstance(folio, Folio) or isinstance(folio, SubPage) \
                or not reclaimable(folio):
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
