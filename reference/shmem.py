"""shmem files: the page cache that shared mappings, private file mappings and
read(2)/write(2) all see (mm/shmem.c).

A file has a size in pages and a dict pgoff -> Folio of resident pages. Holes
read as 0. Rules checked on Linux 6.18 (FACTS): read(2) of a hole allocates
nothing; a mapping fault on a hole allocates the page (shmem_get_folio_gfp with
SGP_CACHE); write(2) past EOF grows the file.
"""
from __future__ import annotations

from typing import Optional

from .folio import Folio, folio_put


class ShmemFile:
    """An in-memory file (named f0.., or the hidden object of a shared anon mapping)."""

    def __init__(self, name: Optional[str], npages: int) -> None:
        self.name = name          # None for the object behind MAP_SHARED|MAP_ANONYMOUS
        self.size = npages        # i_size in pages
        self.pages: dict[int, Folio] = {}

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
            folio = Folio(anon=False, refcount=1, mapping=self, index=pgoff)
            self.pages[pgoff] = folio
        return folio

    def read(self, pgoff: int) -> int:
        """shmem_file_read_iter: a hole or a page past EOF reads 0 (short read); no allocation."""
        folio = self.pages.get(pgoff) if pgoff < self.size else None
        return 0 if folio is None else folio.value

    def write(self, pgoff: int, value: int) -> None:
        """shmem_write_begin/end: allocate the page, store; past EOF i_size grows."""
        if pgoff >= self.size:
            self.size = pgoff + 1
        self.get_folio(pgoff).value = value

    def release(self) -> None:
        """Drop the page cache's references (last close of a hidden shmem object)."""
        for folio in self.pages.values():
            folio_put(folio)
        self.pages.clear()
