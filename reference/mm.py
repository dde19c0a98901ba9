"""One process address space: VMAs plus its PTEs (struct mm_struct).

Owns the operations every other module composes: VMA lookup, splitting the VMA
list at a boundary, mapping and zapping a single PTE with the rmap/refcount
updates (folio_add_*_rmap / zap_present_pte).
"""
from __future__ import annotations

import bisect
from typing import Callable, Iterator, Optional

from .folio import HPAGE_PMD_NR, ZERO_PAGE, Folio, SubPage, Thp, ZeroPage, folio_get, folio_put
from .pagetable import HugePte, Pmd, Pte
from .shmem import ShmemFile
from .swap import free_swap_and_cache, free_swap_cache
from .sysfs import ThpSettings
from .vma import Vma


def _vma_start(v: Vma) -> int:
    return v.start


def _no_notifier(kind: str, start: int, end: int, owner: Optional[str]) -> None:
    return None


class Mm:
    def __init__(self, name: str) -> None:
        self.name = name
        self.vmas: list[Vma] = []        # sorted by start, non-overlapping
        self.ptes: dict[int, Pte] = {}   # vpn -> present entry
        # PMD blocks (vpn >> 9) that have a PTE table: pmd_none() is "no table and no
        # huge PMD"; a THP fault needs it (tables outlive their entries: see free_tables)
        self.tables: set[int] = set()
        self.thp = ThpSettings()     # the machine shares one object among its mms
        # hidden shmem objects whose VMAs went away; the machine frees those no
        # VMA maps any more (the last fput of a MAP_SHARED|MAP_ANONYMOUS object)
        self.dropped_objects: list[ShmemFile] = []
        # MMF_HAS_PINNED: set by the first FOLL_PIN on this mm, never cleared, not
        # inherited by fork (not in MMF_INIT_MASK)
        self.has_pinned = False
        # mmu_notifier_invalidate_range_start(kind, start, end, owner): set by the machine
        # to the interval-notifier dispatch (notifier.py); a no-op without subscriptions
        self.notify: Callable[[str, int, int, Optional[str]], None] = _no_notifier
        self.watched: Callable[[], bool] = lambda: False   # any live subscription?
        # every live process, for an rmap walk (a folio split); set by the machine
        self.rmap: Callable[[], list[Mm]] = lambda: [self]

    # --- VMAs -------------------------------------------------------------------

    def find_vma_index(self, vpn: int) -> Optional[int]:
        """vma_lookup: index of the VMA containing vpn, or None."""
        i = bisect.bisect_right(self.vmas, vpn, key=_vma_start) - 1
        if i >= 0 and self.vmas[i].contains(vpn):
            return i
        return None

    def find_vma(self, vpn: int) -> Optional[Vma]:
        i = self.find_vma_index(vpn)
        return None if i is None else self.vmas[i]

    def split_at(self, vpn: int) -> None:
        """Make vpn a VMA boundary if it falls inside a VMA (__split_vma); a huge PMD
        straddling it is split first (vma_adjust_trans_huge -> split_huge_pmd_if_needed)."""
        i = self.find_vma_index(vpn)
        if i is not None and self.vmas[i].start != vpn:
            if vpn % HPAGE_PMD_NR:
                self.split_huge_pmd(vpn >> 9)
            lo, hi = self.vmas[i].split(vpn)
            self.vmas[i:i + 1] = [lo, hi]

    def vmas_in(self, start: int, end: int) -> Iterator[Vma]:
        """VMAs intersecting [start, end), in address order (a snapshot of the list)."""
        return iter([v for v in self.vmas if v.start < end and v.end > start])

    # --- single PTEs ------------------------------------------------------------------

    def set_pte(self, vpn: int, pte: Pte) -> None:
        """set_pte_at + the rmap/ref of a new mapping (folio_add_*_rmap_pte, folio_get)."""
        assert vpn not in self.ptes, f"set_pte over a present entry at {vpn:#x} in {self.name}"
        if isinstance(pte.page, Folio):
            folio_get(pte.page)
            pte.page.mapcount += 1
            if isinstance(pte.page, SubPage):
                pte.page.thp.mm_add(self.name, 1)
        self.ptes[vpn] = pte
        self.tables.add(vpn >> 9)

    def zap_pte(self, vpn: int) -> None:
        """zap_present_pte: drop the entry, its mapcount and its reference (and the swap
        cache's, for the last mapping: free_swap_cache); a swap entry drops its slot
        reference (free_swap_and_cache)."""
        pte = self.ptes.get(vpn)
        assert not isinstance(pte, HugePte), f"zap_pte inside a huge PMD at {vpn:#x}"
        self.ptes.pop(vpn, None)
        if pte is None or (pte.swap is None and not isinstance(pte.page, Folio)):
            return                     # the zero page, a device page: not counted
        if pte.swap is not None:
            free_swap_and_cache(pte.swap)
            return
        assert isinstance(pte.page, Folio)
        pte.page.mapcount -= 1
        if isinstance(pte.page, SubPage):
            pte.page.thp.mm_sub(self.name, 1)
        free_swap_cache(pte.page)
        folio_put(pte.page)

    def set_swap_pte(self, vpn: int, pte: Pte) -> None:
        """set_pte_at of a swap entry: the caller accounted the slot reference."""
        assert vpn not in self.ptes and pte.swap is not None
        self.ptes[vpn] = pte
        self.tables.add(vpn >> 9)

    def vpns_in(self, start: int, end: int) -> list[int]:
        """The vpns in [start, end) that have an entry, ascending."""
        if end - start < len(self.ptes):
            return [v for v in range(start, end) if v in self.ptes]
        return sorted(v for v in self.ptes if start <= v < end)

    def zap_range(self, start: int, end: int) -> None:
        """zap_page_range_single over [start, end): a huge PMD wholly inside goes at once
        (zap_huge_pmd), one partly inside is split first (__split_huge_pmd)."""
        vpns = self.vpns_in(start, end)
        for idx in sorted({v >> 9 for v in vpns if isinstance(self.ptes[v], HugePte)}):
            if self.huge_pmd(idx) is not None:
                if start <= idx << 9 and (idx + 1) << 9 <= end:
                    self.zap_pmd(idx)
                else:
                    self.split_huge_pmd(idx)
        for vpn in self.vpns_in(start, end):
            self.zap_pte(vpn)

    def free_tables(self, start: int, end: int, keep: Callable[[int], bool]) -> None:
        """Free the PTE tables of the blocks [start, end) touches for which keep(idx) is
        false and that hold no entry (free_pgtables / PT_RECLAIM's try_to_free_pte)."""
        blocks = [i for i in self.tables if start >> 9 <= i <= (end - 1) >> 9]
        for idx in blocks:
            if not keep(idx) and not self.vpns_in(idx << 9, (idx + 1) << 9):
                self.tables.discard(idx)

    # --- huge PMDs ----------------------------------------------------------------------

    def huge_pmd(self, idx: int) -> Optional[Pmd]:
        """The huge PMD leaf of block idx, or None (pmd_trans_huge)."""
        pte = self.ptes.get(idx << 9)
        return pte.pmd if isinstance(pte, HugePte) else None

    def pmd_none(self, idx: int) -> bool:
        """No PTE table and no huge PMD in block idx."""
        return idx not in self.tables and self.huge_pmd(idx) is None

    def set_pmd(self, idx: int, pmd: Pmd) -> None:
        """set_pmd_at + folio_add_*_rmap_pmd: one reference and one entire mapping."""
        assert self.pmd_none(idx), f"set_pmd over a populated block {idx:#x} in {self.name}"
        base = idx << 9
        if isinstance(pmd.folio, Thp):
            pmd.folio.refcount += 1
            pmd.folio.entire += 1
            pmd.folio.mm_add(self.name, 1)
            for i, page in enumerate(pmd.folio.pages):
                self.ptes[base + i] = HugePte(pmd, page)
        elif pmd.special:
            for i in range(HPAGE_PMD_NR):
                self.ptes[base + i] = HugePte(pmd, pmd.folio.page(i))
        else:
            for i in range(HPAGE_PMD_NR):
                self.ptes[base + i] = HugePte(pmd, pmd.folio)

    def zap_pmd(self, idx: int) -> None:
        """zap_huge_pmd: the entry goes; a THP loses its entire mapping and reference."""
        pmd = self.huge_pmd(idx)
        assert pmd is not None
        base = idx << 9
        for i in range(HPAGE_PMD_NR):
            del self.ptes[base + i]
        if isinstance(pmd.folio, Thp):
            pmd.folio.entire -= 1
            pmd.folio.mm_sub(self.name, 1)
            pmd.folio.refcount -= 1
            assert pmd.folio.refcount >= 0

    def split_huge_pmd(self, idx: int) -> bool:
        """__split_huge_pmd: a CLEAR invalidation of the block, then (_locked) 512 PTEs
        with the PMD's write/dirty/soft-dirty bits; the huge zero folio becomes 512
        zero-page PTEs; a special PMD (device memory) is just cleared. AnonExclusive of
        the head goes to every subpage (RMAP_EXCLUSIVE) when set. The folio stays one
        THP. Return whether a huge PMD was there."""
        pmd = self.huge_pmd(idx)
        if pmd is None:
            return False
        base = idx << 9
        self.notify("clear", base, base + HPAGE_PMD_NR, None)
        if pmd.special:
            self.zap_pmd(idx)          # vma_is_special_huge: cleared, no PTE table
            return True
        for i in range(HPAGE_PMD_NR):
            del self.ptes[base + i]
        self.tables.add(idx)
        if not isinstance(pmd.folio, Thp):
            for i in range(HPAGE_PMD_NR):
                self.ptes[base + i] = Pte(ZERO_PAGE)
            return True
        thp = pmd.folio
        exclusive = thp.head.anon_exclusive
        thp.mm_add(self.name, HPAGE_PMD_NR)        # folio_add_anon_rmap_ptes(512) ...
        thp.refcount += HPAGE_PMD_NR - 1           # folio_ref_add(folio, HPAGE_PMD_NR - 1)
        for i, page in enumerate(thp.pages):
            if exclusive:
                page.anon_exclusive = True
            page.mapcount += 1
            self.ptes[base + i] = Pte(page, writable=pmd.writable, dirty=pmd.dirty,
                                      soft_dirty=pmd.soft_dirty)
        thp.entire -= 1                            # ... then folio_remove_rmap_pmd
        thp.mm_sub(self.name, 1)
        return True
