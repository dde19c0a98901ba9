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
Large folios (6.18): a THP the range maps whole (by its PMD, or by 512 PTEs in
order) goes out whole, one swap entry per page; one the range covers only in part
is split first (split_folio, folio_split.py) unless it may be mapped shared or is
locked, and its pages are then looked at one by one (all-zero ones now map the
zero page and stay).
"""
from __future__ import annotations

from .folio import HPAGE_PMD_NR, Folio, SubPage, Thp, folio_put
from .folio_split import split_folio
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


def pageout_pte_mapped_thp(mm: Mm, base: int, thp: Thp) -> None:
    """A THP whose 512 pages this range maps in order, mapped nowhere else, unpinned,
    unlocked, with no other reference, goes out whole: one CLEAR (try_to_unmap_one over
    the folio), each PTE its own swap entry with that page's AnonExclusive."""
    if thp.large_mapcount() != HPAGE_PMD_NR or thp.refcount != HPAGE_PMD_NR \
            or thp.pincount or thp.locked:
        return
    mm.notify("clear", base, base + HPAGE_PMD_NR, None)
    for vpn in range(base, base + HPAGE_PMD_NR):
        pte = mm.ptes[vpn]
        page = pte.page
        exclusive, soft_dirty = page.anon_exclusive, pte.soft_dirty
        mm.zap_pte(vpn)
        slot = SwapSlot(page.value)
        slot.count += 1
        mm.set_swap_pte(vpn, Pte(None, soft_dirty=soft_dirty, swap=slot,
                                 swp_exclusive=exclusive))


def _thp_batch(mm: Mm, vpn: int, end: int, page: SubPage) -> int:
    """madvise_folio_pte_batch: present PTEs from vpn on (below end) that map the
    following pages of the same THP (bits ignored)."""
    nr = 1
    while vpn + nr < end and page.idx + nr < HPAGE_PMD_NR:
        pte = mm.ptes.get(vpn + nr)
        if pte is None or not pte.present or isinstance(pte, HugePte) \
                or pte.page is not page.thp.pages[page.idx + nr]:
            break
        nr += 1
    return nr


def _pageout_huge_pmd_range(mm: Mm, idx: int, start: int, end: int) -> bool:
    """The PMD branch: a whole block goes out whole; a partly covered THP mapped only
    here is split first (split_folio; folio_lock would sleep: a locked one is skipped).
    Return whether the PTE walk of the block's part of the range follows."""
    pmd = mm.huge_pmd(idx)
    assert pmd is not None
    thp = pmd.folio
    if not isinstance(thp, Thp) or thp.maybe_mapped_shared():
        return False                                   # the huge zero folio, a shared THP
    if start <= idx << 9 and (idx + 1) << 9 <= end:
        pageout_huge_pmd(mm, idx)
        return False
    if thp.locked:
        return False
    return split_folio(mm.rmap(), thp, idx << 9) is None


def pageout_range(mm: Mm, start: int, end: int) -> None:
    """Reclaim every eligible page mapped in [start, end) of one VMA, block by block
    (madvise_cold_or_pageout_pte_range), in vpn order."""
    for idx in sorted({vpn >> 9 for vpn in mm.vpns_in(start, end)}):
        lo, hi = max(start, idx << 9), min(end, (idx + 1) << 9)
        if mm.huge_pmd(idx) is not None and not _pageout_huge_pmd_range(mm, idx, lo, hi):
            continue
        _pageout_pte_range(mm, lo, hi)


def _pageout_pte_range(mm: Mm, start: int, end: int) -> None:
    """The PTE branch over [start, end) of one block. A THP page starts a batch: a THP
    not wholly mapped by it is split (unless maybe shared or locked; a refused split
    skips the batch) and the same vpn is looked at again; a wholly mapped one goes out
    whole (pageout_pte_mapped_thp)."""
    vpn = start
    while vpn < end:
        pte = mm.ptes.get(vpn)
        if pte is None or not pte.present:
            vpn += 1
            continue
        folio = pte.page
        if isinstance(folio, SubPage):
            thp = folio.thp
            nr = _thp_batch(mm, vpn, end, folio)
            if nr == HPAGE_PMD_NR:
                pageout_pte_mapped_thp(mm, vpn, thp)
            elif not thp.maybe_mapped_shared() and not thp.locked \
                    and split_folio(mm.rmap(), thp, vpn - folio.idx) is None:
                continue                               # nr = 0: look again
            vpn += nr
            continue
        vpn += 1
        if isinstance(folio, Folio) and reclaimable(folio):
            pageout_page(mm, vpn - 1, folio, pte)


def pageout_page(mm: Mm, vpn: int, folio: Folio, pte: Pte) -> None:
    """shrink_folio_list for one order-0 folio mapped only at vpn."""
    mm.notify("clear", vpn, vpn + 1, None)             # try_to_unmap_one
    if folio.anon:
        slot = folio.swap_slot
        if isinstance(slot, SwapSlot):                 # already in the swap cache
            slot.cache, folio.swap_slot = None, None
            folio_put(folio)
        else:
            slot = SwapSlot(folio.value)               # add_to_swap + pageout
        slot.count += 1
        exclusive, soft_dirty = folio.anon_exclusive, pte.soft_dirty
        mm.zap_pte(vpn)                                # the last reference: freed
        mm.set_swap_pte(vpn, Pte(None, soft_dirty=soft_dirty, swap=slot,
                                 swp_exclusive=exclusive))
    else:
        file = folio.mapping
        assert isinstance(file, ShmemFile)
        dirty = folio.dirty or pte.dirty               # try_to_unmap moves the PTE dirty bit
        mm.zap_pte(vpn)
        file.reclaim(folio.index, dirty)
