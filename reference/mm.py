"""One process address space: VMAs plus its PTEs (struct mm_struct).

Owns the operations every other module composes: VMA lookup, splitting the VMA
list at a boundary, mapping and zapping a single PTE with the rmap/refcount
updates (folio_add_*_rmap / zap_present_pte).
"""
from __future__ import annotations

import bisect
from typing import Callable, Iterator, Optional

from .folio import Folio, ZeroPage, folio_get, folio_put
from .pagetable import Pte
from .shmem import ShmemFile
from .swap import free_swap_and_cache, free_swap_cache
from .vma import Vma


def _no_notifier(kind: str, start: int, end: int, owner: Optional[str]) -> None:
    return None


class Mm:
    def __init__(self, name: str) -> None:
        self.name = name
        self.vmas: list[Vma] = []        # sorted by start, non-overlapping
        self.ptes: dict[int, Pte] = {}   # vpn -> present entry
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

    # --- VMAs -------------------------------------------------------------------

    def find_vma_index(self, vpn: int) -> Optional[int]:
        """vma_lookup: index of the VMA containing vpn, or None."""
        i = bisect.bisect_right([v.start for v in self.vmas], vpn) - 1
        if i >= 0 and self.vmas[i].contains(vpn):
            return i
        return None

    def find_vma(self, vpn: int) -> Optional[Vma]:
        i = self.find_vma_index(vpn)
        return None if i is None else self.vmas[i]

    def split_at(self, vpn: int) -> None:
        """Make vpn a VMA boundary if it falls inside a VMA (__split_vma)."""
        i = self.find_vma_index(vpn)
        if i is not None and self.vmas[i].start != vpn:
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
        self.ptes[vpn] = pte

    def zap_pte(self, vpn: int) -> None:
        """zap_present_pte: drop the entry, its mapcount and its reference (and the swap
        cache's, for the last mapping: free_swap_cache); a swap entry drops its slot
        reference (free_swap_and_cache)."""
        pte = self.ptes.pop(vpn, None)
        if pte is None or isinstance(pte.page, ZeroPage):
            return
        if pte.swap is not None:
            free_swap_and_cache(pte.swap)
            return
        assert isinstance(pte.page, Folio)
        pte.page.mapcount -= 1
        free_swap_cache(pte.page)
        folio_put(pte.page)

    def set_swap_pte(self, vpn: int, pte: Pte) -> None:
        """set_pte_at of a swap entry: the caller accounted the slot reference."""
        assert vpn not in self.ptes and pte.swap is not None
        self.ptes[vpn] = pte

    def vpns_in(self, start: int, end: int) -> list[int]:
        """The vpns in [start, end) that have an entry, ascending."""
        if end - start < len(self.ptes):
            return [v for v in range(start, end) if v in self.ptes]
        return sorted(v for v in self.ptes if start <= v < end)

    def zap_range(self, start: int, end: int) -> None:
        """zap_page_range_single over [start, end)."""
        for vpn in self.vpns_in(start, end):
            self.zap_pte(vpn)
