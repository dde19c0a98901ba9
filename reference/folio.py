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


# --- large folios: anonymous THP (order 9) ------------------------------------------

from .ops import HPAGE_PMD_NR  # noqa: E402  (pages per PMD-mapped THP)


class Thp:
    """An order-9 anon folio: folio-wide counts, flags and the MM-id tracking of
    include/linux/rmap.h (6.15+); its 512 subpages are SubPage objects.

    refcount: one per PMD mapping, one per PTE mapping of a subpage, one per pin.
    entire: PMD mappings (entire_mapcount). Only the head's AnonExclusive is meaningful
    while PMD-mapped (folio_add_new_anon_rmap sets the head's only)."""

    def __init__(self) -> None:
        self.refcount = 0
        self.pincount = 0
        self.entire = 0
        self.locked = False
        self.dirty = False
        self.pages = [SubPage(self, i) for i in range(HPAGE_PMD_NR)]
        # folio_add/sub_large_mapcount: two (mm, count) slots, the shared bit, the total
        self.mm_slots: list[Optional[list]] = [None, None]
        self.shared = False
        self.total = 0

    @property
    def head(self) -> "SubPage":
        return self.pages[0]

    def large_mapcount(self) -> int:
        """folio_large_mapcount: a PMD mapping counts once, a PTE mapping once."""
        return self.total

    def maybe_mapped_shared(self) -> bool:
        """folio_maybe_mapped_shared (CONFIG_MM_ID): one mapping is exclusive, else the
        shared bit decides."""
        return self.total > 1 and self.shared

    def mm_add(self, mm: str, d: int) -> None:
        """folio_add_return_large_mapcount: account d mappings of this folio in mm."""
        before = self.total
        self.total += d
        for slot in self.mm_slots:
            if slot is not None and slot[0] == mm:
                slot[1] += d
                return
        if self.mm_slots[0] is None:
            self.mm_slots[0] = [mm, d]
            if before != 0:              # we might have other mappings already
                self.shared = True
        elif self.mm_slots[1] is None:
            self.mm_slots[1] = [mm, d]
            self.shared = True           # slot 0 certainly has mappings as well

    def mm_sub(self, mm: str, d: int) -> None:
        """folio_sub_return_large_mapcount: the shared bit is recomputed only when a slot
        empties (or an untracked mm unmaps): exclusive if one slot owns every mapping."""
        self.total -= d
        for k, slot in enumerate(self.mm_slots):
            if slot is not None and slot[0] == mm:
                slot[1] -= d
                if slot[1] > 0:
                    return
                self.mm_slots[k] = None
                break
        counts = [0 if s is None else s[1] for s in self.mm_slots]
        if self.total in counts:
            self.shared = False

    def __repr__(self) -> str:
        return f"Thp(ref={self.refcount} entire={self.entire} pin={self.pincount})"


class SubPage(Folio):
    """Page i of a Thp: its own value, PTE mapcount and AnonExclusive; references, pins,
    the lock and PG_dirty are the folio's (forwarded). Never KSM, never cached."""

    def __init__(self, thp: Thp, idx: int) -> None:   # noqa: no Folio.__init__ (properties)
        self.thp = thp
        self.idx = idx
        self.anon = True
        self.value = 0
        self.mapcount = 0
        self.anon_exclusive = False
        self.index = 0

    refcount = property(lambda s: s.thp.refcount, lambda s, v: setattr(s.thp, "refcount", v))
    pincount = property(lambda s: s.thp.pincount, lambda s, v: setattr(s.thp, "pincount", v))
    locked = property(lambda s: s.thp.locked, lambda s, v: setattr(s.thp, "locked", v))
    dirty = property(lambda s: s.thp.dirty, lambda s, v: setattr(s.thp, "dirty", v))
    ksm = property(lambda s: False)
    ksm_stable = property(lambda s: False)
    swap_slot = property(lambda s: None)
    mapping = property(lambda s: None)

    def __repr__(self) -> str:
        return f"SubPage({self.idx} of {self.thp!r} val={self.value:#x} map={self.mapcount})"


class HugeZeroPage:
    """The huge zero folio: 512 zero pages mapped by one read-only PMD, never counted."""

    value = 0
    anon = False

    def __repr__(self) -> str:
        return "HUGE_ZERO_PAGE"


HUGE_ZERO_PAGE = HugeZeroPage()
