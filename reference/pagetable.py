"""Page-table entries of the reference: one dict vpn -> Pte per process.

The reference has no radix levels: every entry is a PTE-level leaf (THP arrives
with issue 5). A Pte maps a page (a Folio or the ZERO_PAGE) with the bits the
differ compares. PROT_NONE entries stay present (pte_protnone) and are simply
not writable; the VMA check refuses every access to them.
A device-exclusive entry (make_device_exclusive) is a non-present Pte with
`devexcl` set: it still names its folio and counts as a mapping (6.15+), is
never writable or dirty, and remembers the dirty bit the PTE had (folio dirty).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .folio import ZERO_PAGE, Folio, ZeroPage
from .state import EntryKind, Level, PageView, ZERO_KEY


@dataclass
class Pte:
    page: Union[Folio, ZeroPage]
    writable: bool = False
    dirty: bool = False
    soft_dirty: bool = False
    devexcl: bool = False          # SWP_DEVICE_EXCLUSIVE entry
    folio_dirty: bool = False      # devexcl only: folio_mark_dirty at conversion

    def mkdirty(self) -> None:
        """pte_mkdirty: on x86 it sets _PAGE_SOFT_DIRTY too."""
        self.dirty = True
        self.soft_dirty = True

    @property
    def is_zero(self) -> bool:
        return self.page is ZERO_PAGE

    def view(self) -> PageView:
        page = self.page
        if isinstance(page, ZeroPage):
            return PageView(EntryKind.ZERO, Level.PTE, self.writable, self.dirty,
                            self.soft_dirty, False, ZERO_KEY)
        kind = EntryKind.ANON if page.anon else EntryKind.FILE
        if self.devexcl:
            kind = EntryKind.DEVEXCL
        return PageView(kind, Level.PTE, self.writable, self.dirty, self.soft_dirty,
                        page.anon and page.anon_exclusive, page)
