"""One process address space: VMAs plus its PTEs (struct mm_struct).

Owns the operations every other module composes: VMA lookup, splitting the VMA
list at a boundary, mapping and zapping a single PTE with the rmap/refcount
updates (folio_add_*_rmap / zap_present_pte).
"""
from __future__ import annotations

import bisect
from typing import Callable, Iterator, Optional

from .folio import HPAGE_PMD_NR, ZERO_PAGE, Folio, SubPage, Thp, ZeroPage, folio_get, folio_put
from .ops import HPAGE_PUD_NR
from .pagetable import HugePte, Pmd, Pte, Pud, PudPte
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
        # 1 GiB slots (vpn >> 18) whose PUD entry points to a PMD table: made by every
        # fault below PUD level (pmd_alloc) and every install, freed only by munmap once
        # no VMA is left in the slot (free_pgtables) and at exit; a PUD leaf needs none
        self.pmd_tables: set[int] = set()
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
        """Make vpn a VMA boundary if it falls inside a VMA (__split_vma). At an address
        that is not 2 MiB-aligned, with the block inside the VMA, vma_adjust_trans_huge ->
        split_huge_pmd_address: wherever mm_find_pmd finds a PUD present (a PMD table or
        a PUD leaf) __split_huge_pmd fires its CLEAR over the block, then splits a huge
        PMD if there is one. A PUD leaf is not split (it may straddle the two VMAs)."""
        i = self.find_vma_index(vpn)
        if i is not None and self.vmas[i].start != vpn:
            base = vpn & ~(HPAGE_PMD_NR - 1)
            if vpn % HPAGE_PMD_NR and self.vmas[i].start <= base \
                    and base + HPAGE_PMD_NR <= self.vmas[i].end and self.pud_present(vpn):
                self.split_huge_pmd(vpn >> 9, notify_always=True)
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
        self.pmd_tables.add(vpn >> 18)

    def zap_pte(self, vpn: int) -> None:
        """zap_present_pte: drop the entry, its mapcount and its reference (and the swap
        cache's, for the last mapping: free_swap_cache); a swap entry drops its slot
        reference (free_swap_and_cache)."""
        pte = self.ptes.get(vpn)
        assert not isinstance(pte, (HugePte, PudPte)), f"zap_pte inside a huge entry at {vpn:#x}"
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
        self.pmd_tables.add(vpn >> 18)

    def vpns_in(self, start: int, end: int) -> list[int]:
        """The vpns in [start, end) that have an entry, ascending."""
        if end - start < len(self.ptes):
            return [v for v in range(start, end) if v in self.ptes]
        return sorted(v for v in self.ptes if start <= v < end)

    def zap_range(self, start: int, end: int) -> None:
        """zap_page_range_single over [start, end): a huge PMD wholly inside goes at once
        (zap_huge_pmd), one partly inside is split first (__split_huge_pmd); a PUD leaf
        not wholly inside both the range and one VMA (it may straddle two) is split,
        which clears all of it (__split_huge_pud)."""
        for slot in sorted({v >> 18 for v in self.vpns_in(start, end)
                            if isinstance(self.ptes[v], PudPte)}):
            vma = self.find_vma(slot << 18)
            if start <= slot << 18 and (slot + 1) << 18 <= end \
                    and vma is not None and vma.end >= (slot + 1) << 18:
                self.zap_pud(slot)                  # zap_huge_pud
            else:                                   # unmap_single_vma clamps to each VMA
                self.split_huge_pud(slot)           # __split_huge_pud: the whole PUD goes
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
        self.pmd_tables.add(idx >> 9)
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

    def split_huge_pmd(self, idx: int, notify_always: bool = False) -> bool:
        """__split_huge_pmd: a CLEAR invalidation of the block, then (_locked) 512 PTEs
        with the PMD's write/dirty/soft-dirty bits; the huge zero folio becomes 512
        zero-page PTEs; a special PMD (device memory) is just cleared. AnonExclusive of
        the head goes to every subpage (RMAP_EXCLUSIVE) when set. The folio stays one
        THP. Return whether a huge PMD was there. notify_always: the CLEAR goes out
        even without one (split_huge_pmd_address found the PMD slot)."""
        pmd = self.huge_pmd(idx)
        base = idx << 9
        if pmd is None:
            if notify_always:
                self.notify("clear", base, base + HPAGE_PMD_NR, None)
            return False
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

    # --- PUD leaves (device memory) and PMD tables ------------------------------------

    def huge_pud(self, slot: int) -> Optional[Pud]:
        """The PUD leaf of 1 GiB slot `slot`, or None (pud_trans_huge)."""
        pte = self.ptes.get(slot << 18)
        if isinstance(pte, PudPte):
            return pte.pud
        return None

    def pud_none(self, slot: int) -> bool:
        """No PMD table and no PUD leaf in the slot."""
        return slot not in self.pmd_tables and self.huge_pud(slot) is None

    def pud_present(self, vpn: int) -> bool:
        """A PMD table or a PUD leaf in vpn's slot (mm_find_pmd finds a PMD slot)."""
        return not self.pud_none(vpn >> 18)

    def set_pud(self, slot: int, pud: Pud) -> None:
        """set_pud_at of a special PUD: no counts (a pfn entry)."""
        assert self.pud_none(slot), f"set_pud over a populated slot {slot:#x} in {self.name}"
        base = slot << 18
        for i in range(HPAGE_PUD_NR):
            self.ptes[base + i] = PudPte(pud, pud.folio.page(i))

    def zap_pud(self, slot: int) -> None:
        """zap_huge_pud: the entry goes (nothing counted, no PMD table left behind)."""
        assert self.huge_pud(slot) is not None
        base = slot << 18
        for i in range(HPAGE_PUD_NR):
            del self.ptes[base + i]

    def split_huge_pud(self, slot: int) -> None:
        """__split_huge_pud of a special PUD: a CLEAR over the slot, then it is cleared
        (__split_huge_pud_locked: not DAX, nothing populated)."""
        base = slot << 18
        self.notify("clear", base, base + HPAGE_PUD_NR, None)
        self.zap_pud(slot)

    def free_pmd_tables(self, start: int, end: int) -> None:
        """free_pgtables after munmap of [start, end): a slot it touches loses its PMD
        table (and the PTE tables below) once no VMA is left in the slot."""
        for slot in range(start >> 18, ((end - 1) >> 18) + 1):
            if slot in self.pmd_tables and not any(
                    True for _ in self.vmas_in(slot << 18, (slot + 1) << 18)):
                self.pmd_tables.discard(slot)
                self.tables.difference_update(range(slot << 9, (slot + 1) << 9))
