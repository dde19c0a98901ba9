"""MADV_COLLAPSE (mm/khugepaged.c madvise_collapse, hpage_collapse_scan_pmd,
collapse_huge_page). khugepaged itself runs in the background and is not modelled.

Rules (checked on Linux 6.18 where marked live):
- sysfs `enabled` is ignored; VM_NOHUGEPAGE -> EINVAL. Only private anon memory
  here (shmem collapse makes a file THP, out of scope: ENOSYS for the call).
- Each aligned 2 MiB block inside the range and the VMA: a huge PMD already there
  counts as success (live: the huge zero PMD stays); no PTE table -> EINVAL (live);
  a device-exclusive entry or a KSM page -> EINVAL; a locked folio or a folio with
  references besides its mappings (a pin) -> EAGAIN; allocation failure -> ENOMEM and
  stop. A VMA without anon_vma is EINVAL before any block (thp_vma_allowable_order
  allows no order; live: a zero-page-only range). Swap entries are
  swapped in first. Success: a new exclusive THP holding the old contents (zeros for
  none and zero-page entries) replaces the PTE table; pages mapped elsewhere stay
  mapped there (live: a fork child keeps its pages).
- The call returns 0 when every block ended PMD-mapped, else the last block's errno.
"""
from __future__ import annotations

from typing import Optional, Union

from .fault import do_swap_page
from .folio import HPAGE_PMD_NR, Folio, SubPage, Thp
from .huge_memory import map_anon_folio_pmd, thp_alloc
from .mm import Mm
from .results import Errno
from .vma import Vma


def _refcount_suitable(folio: Union[Folio, Thp]) -> bool:
    """is_refcount_suitable: every reference is a mapping (or the swap cache's)."""
    if isinstance(folio, Thp):
        return folio.refcount == folio.large_mapcount()
    return folio.refcount == folio.mapcount + (1 if folio.swap_slot is not None else 0)


def scan_pmd(mm: Mm, idx: int) -> Optional[Errno]:
    """hpage_collapse_scan_pmd for MADV_COLLAPSE (no max_ptes_* limits): the first PTE
    that forbids the collapse decides the errno (madvise_collapse_errno)."""
    base = idx << 9
    for vpn in range(base, base + HPAGE_PMD_NR):
        pte = mm.ptes.get(vpn)
        if pte is None or pte.swap is not None or pte.is_zero:
            continue                              # none_or_zero / unmapped (swapped in)
        if pte.devexcl:
            return Errno.EINVAL                   # SCAN_PTE_NON_PRESENT
        page = pte.page
        assert isinstance(page, Folio)
        if page.ksm:
            return Errno.EINVAL
        if page.locked:
            return Errno.EAGAIN                   # SCAN_PAGE_LOCK
        folio = page.thp if isinstance(page, SubPage) else page
        if not _refcount_suitable(folio):
            return Errno.EAGAIN                   # SCAN_PAGE_COUNT (e.g. a GUP pin)
    return None


def collapse_huge_page(mm: Mm, vma_index: int, idx: int, thp: Thp) -> None:
    """Swap in, copy every page into thp, drop the PTE table, map thp by the PMD."""
    vma = mm.vmas[vma_index]
    base = idx << 9
    for vpn in range(base, base + HPAGE_PMD_NR):   # __collapse_huge_page_swapin
        pte = mm.ptes.get(vpn)
        if pte is not None and pte.swap is not None:
            do_swap_page(mm, vma, vpn, pte, write=False)
    mm.notify("clear", base, base + HPAGE_PMD_NR, None)
    for vpn in range(base, base + HPAGE_PMD_NR):   # __collapse_huge_page_copy
        pte = mm.ptes.get(vpn)
        if pte is not None:
            thp.pages[vpn - base].value = pte.page.value
            mm.zap_pte(vpn)
    mm.tables.discard(idx)                         # pmdp_collapse_flush + pte_free
    map_anon_folio_pmd(mm, vma, idx, thp)


def _collapse_vma(mm: Mm, vma: Vma, start: int, end: int) -> Optional[Errno]:
    """madvise_collapse for one VMA's part [start, end)."""
    if vma.nohugepage or vma.anon_vma is None:
        return Errno.EINVAL                        # thp_vma_allowable_order fails (an anon
                                                   # VMA without anon_vma allows no order)
    last: Optional[Errno] = None
    first_idx = (start + HPAGE_PMD_NR - 1) >> 9
    for idx in range(first_idx, end >> 9):
        if mm.huge_pmd(idx) is not None:
            continue                               # SCAN_PMD_MAPPED counts as success
        if idx not in mm.tables:
            last = Errno.EINVAL                    # SCAN_PMD_NULL
            continue
        err = scan_pmd(mm, idx)
        if err is not None:
            last = err
            continue
        thp = thp_alloc(mm.thp)
        if thp is None:
            return Errno.ENOMEM                    # SCAN_ALLOC_HUGE_PAGE_FAIL: stop
        collapse_huge_page(mm, mm.vmas.index(vma), idx, thp)
    return last


def madvise_collapse(mm: Mm, start: int, end: int) -> Optional[Errno]:
    """MADV_COLLAPSE over [start, end): per VMA, holes -> ENOMEM after the mapped parts;
    a VMA's error stops the walk."""
    vmas = list(mm.vmas_in(start, end))
    if any(not v.is_anon or v.shared for v in vmas):
        return Errno.ENOSYS                        # file / shmem THP: out of scope
    err: Optional[Errno] = None
    cursor = start
    for vma in vmas:
        if vma.start > cursor:
            err = Errno.ENOMEM
        e = _collapse_vma(mm, vma, max(start, vma.start), min(end, vma.end))
        if e is not None:
            return e
        cursor = vma.end
    if cursor < end:
        err = Errno.ENOMEM
    return err
