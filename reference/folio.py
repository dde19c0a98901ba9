"""Physical pages (order-0 folios) and the zero page.

Rules (include/linux/mm.h, mm/rmap.c):
- refcount = one per PTE mapping the page + one for the page cache when the page
  is in a file + pins (GUP_PIN_COUNTING_BIAS per pin; pins arrive with issue 6);
- mapcount = PTEs mapping the page;
- AnonExclusive (PG_anon_exclusive) is per page and only meaningful for anon pages;
- the zero page is never refcounted by mappings (pte_special, vm_normal_page() == NULL).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(eq=False)
class Folio:
    """One 4 KiB page. Identity (not value) names the frame."""

    anon: bool
    value: int = 0
    refcount: int = 0
    mapcount: int = 0
    pincount: int = 0
    anon_exclusive: bool = False
    mapping: Optional[object] = None   # the ShmemFile whose page cache holds it
    locked: bool = False               # PG_locked, held by a `lock` op
    ksm: bool = False                  # folio_test_ksm: a merged page (never exclusive)
    ksm_stable: bool = False           # has a stable-tree node: later merges go into it
    dirty: bool = False                # PG_dirty: stored to since it was read in
    swap_slot: Optional[object] = None  # the SwapSlot whose swap cache holds it (+1 ref)
    index: int = 0                     # pgoff in `mapping`

    def __repr__(self) -> str:
        kind = "anon" if self.anon else "file"
        return (f"Folio({kind} val={self.value:#x} ref={self.refcount} "
                f"map={self.mapcount} excl={int(self.anon_exclusive)})")


class ZeroPage:
    """The shared zero page: always reads 0, never written, never counted."""

    value = 0
    anon = False

    def __repr__(self) -> str:
        return "ZERO_PAGE"


ZERO_PAGE = ZeroPage()


def folio_alloc_anon(value: int = 0) -> Folio:
    """folio_prealloc + folio_add_new_anon_rmap(RMAP_EXCLUSIVE): a new exclusive anon page.

    The caller maps it, which takes the PTE's reference and mapcount.
    """
    return Folio(anon=True, value=value, anon_exclusive=True)


def folio_store(folio: Folio, value: int) -> None:
    """Every store into a page (CPU, write(2), /proc/pid/mem, DMA) dirties the folio
    (set_page_dirty / folio_mark_dirty / the PTE dirty bit moved at unmap)."""
    folio.value = value & ((1 << 64) - 1)
    folio.dirty = True


def folio_get(folio: Folio) -> None:
    """folio_get: one more reference."""
    folio.refcount += 1


def folio_put(folio: Folio) -> None:
    """Drop one reference; at zero the page is free (nothing else to do in the model)."""
    assert folio.refcount > 0, f"folio_put on a free page {folio!r}"
    folio.refcount -= 1
