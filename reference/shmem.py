"""shmem files: the page cache that shared mappings, private file mappings and
read(2)/write(2) all see (mm/shmem.c).

A file has a size in pages and a dict pgoff -> Folio of resident pages. Holes
read as 0. Rules checked on Linux 6.18 (FACTS): read(2) of a hole allocates
nothing; a mapping fault on a hole allocates the page (shmem_get_folio_gfp with
SGP_CACHE); write(2) past EOF grows the file. A page paged out (shmem_writeout)
leaves the page cache for a swap slot; read(2), write(2) and mapping faults swap
it back in (shmem_swapin_folio), fault-around does not (resident pages only).
"""
from __future__ import annotations

from typing import Optional

from .folio import Folio, folio_put, folio_store
from .swap import SwapSlot


class ShmemFile:
    """An in-memory file (named f0.., or the hidden object of a shared anon mapping)."""

    def __init__(self, name: Optional[str], npages: int) -> None:
        self.name = name          # None for the object behind MAP_SHARED|MAP_ANONYMOUS
        self.size = npages        # i_size in pages
        self.pages: dict[int, Folio] = {}
        self.swapped: dict[int, SwapSlot] = {}   # pgoff -> slot of a paged-out page

    def find_folio(self, pgoff: int) -> Optional[Folio]:
        """filemap_get_folio: the resident page, or None for a hole."""
        return self.pages.get(pgoff)

    def get_folio(self, pgoff: int) -> Folio:
        """shmem_get_folio(SGP_CACHE): the page, allocated zero-filled for a hole.

        The page cache holds one reference (shmem_add_to_page_cache).
        """
        assert pgoff < self.size, f"shmem_get_folio beyond EOF: pgoff={pgoff:#x} size={self.size:#x}"
        folio = self.pages.get(pgoff)
        if folio is None:
            slot = self.swapped.pop(pgoff, None)          # shmem_swapin_folio
            if slot is not None:
                slot.count -= 1
            # shmem_swapin_folio marks the folio dirty (its swap copy is freed)
            folio = Folio(anon=False, refcount=1, mapping=self, index=pgoff,
                          value=slot.value if slot is not None else 0, dirty=slot is not None)
            self.pages[pgoff] = folio
        return folio

    def read(self, pgoff: int) -> int:
        """shmem_file_read_iter: a hole or a page past EOF reads 0 (short read) and
        allocates nothing; a swapped page is swapped in."""
        if pgoff >= self.size or (pgoff not in self.pages and pgoff not in self.swapped):
            return 0
        return self.get_folio(pgoff).value

    def reclaim(self, pgoff: int, dirty: bool) -> None:
        """Reclaim of an unmapped page-cache page: a dirty one goes to a swap slot
        (shmem_writeout); a clean one (never stored to) is just dropped, leaving a hole."""
        folio = self.pages.pop(pgoff)
        if dirty:
            self.swapped[pgoff] = SwapSlot(folio.value, count=1)
        folio_put(folio)

    def write(self, pgoff: int, value: int) -> None:
        """shmem_write_begin/end: allocate the page, store; past EOF i_size grows."""
        if pgoff >= self.size:
            self.size = pgoff + 1
        folio_store(self.get_folio(pgoff), value)

    def release(self) -> None:
        """Drop the page cache's references (last close of a hidden shmem object)."""
        for folio in self.pages.values():
            folio_put(folio)
        self.pages.clear()
        for slot in self.swapped.values():
            slot.count -= 1
        self.swapped.clear()
