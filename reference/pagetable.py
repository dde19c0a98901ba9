"""Page-table entries of the reference: one dict vpn -> Pte per process.

The reference has no radix levels: every entry is a PTE-level leaf (THP arrives
with issue 5). A Pte maps a page (a Folio or the ZERO_PAGE) with the bits the
differ compares. PROT_NONE entries stay present (pte_protnone) and are simply
not writable; the VMA check refuses every access to them.
A device-exclusive entry (make_device_exclusive) is a non-present Pte with
`devexcl` set: it still names its folio and counts as a mapping (6.15+), is
never writable or dirty.
A swap entry is a non-present Pte with `swap` set to its SwapSlot and no page;
`swp_exclusive` is the PageAnonExclusive it had when it went out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .folio import ZERO_PAGE, Folio, ZeroPage
from .state import EntryKind, Level, PageView, ZERO_KEY


@dataclass
class Pte:
    page: Union[Folio, ZeroPage, None]   # None only for a swap entry
    writable: bool = False
    dirty: bool = False
    soft_dirty: bool = False
    devexcl: bool = False          # SWP_DEVICE_EXCLUSIVE entry
    swap: Optional[object] = None  # the SwapSlot of a swap entry
    swp_exclusive: bool = False    # swap entry only: pte_swp_exclusive

    def mkdirty(self) -> None:
        """pte_mkdirty: on x86 it sets _PAGE_SOFT_DIRTY too."""
        self.dirty = True
        self.soft_dirty = True

    @property
    def present(self) -> bool:
        """pte_present: neither a swap nor a device-exclusive entry."""
        return self.swap is None and not self.devexcl

    @property
    def is_zero(self) -> bool:
        return self.page is ZERO_PAGE

    def view(self) -> PageView:
        if self.swap is not None:
            return PageView(EntryKind.SWAP, Level.PTE, False, False, self.soft_dirty,
                            self.swp_exclusive, self.swap)
        page = self.page
        if isinstance(page, ZeroPage):
            return PageView(EntryKind.ZERO, Level.PTE, self.writable, self.dirty,
                            self.soft_dirty, False, ZERO_KEY)
        kind = EntryKind.ANON if page.anon else EntryKind.FILE
        if self.devexcl:
            kind = EntryKind.DEVEXCL
        return PageView(kind, Level.PTE, self.writable, self.dirty, self.soft_dirty,
                        page.anon and page.anon_exclusive, page)
