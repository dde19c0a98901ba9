"""Page-table entries of the reference: one dict vpn -> Pte per process.

The reference has no radix levels. A huge PMD (a THP or the huge zero folio) is a
Pmd leaf; each of its 512 vpns holds a HugePte that forwards the entry bits to that
one leaf, so reads of any vpn see the PMD (callers must split or use the huge paths
before changing it). Which PMD blocks have a PTE table is tracked per mm (Mm.tables).
A Pte maps a page (a Folio or the ZERO_PAGE) with the bits the
differ compares. PROT_NONE entries stay present (pte_protnone) and are simply
not writable; the VMA check refuses every access to them.
A device-exclusive entry (make_device_exclusive) is a non-present Pte with
`devexcl` set: it still names its folio and counts as a mapping (6.15+), is
never writable or dirty.
A special PUD leaf of device memory (1 GiB) is a Pud with a PudPte per vpn, the same way.
A swap entry is a non-present Pte with `swap` set to its SwapSlot and no page;
`swp_exclusive` is the PageAnonExclusive it had when it went out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .folio import HUGE_ZERO_PAGE, ZERO_PAGE, Folio, HugeZeroPage, Thp, ZeroPage
from .state import EntryKind, HZERO_KEY, Level, PageView, ZERO_KEY


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
        if not isinstance(page, Folio):                 # a pfn entry of device memory
            return PageView(EntryKind.PFN, Level.PTE, self.writable, self.dirty,
                            self.soft_dirty, False, page.key)
        kind = EntryKind.ANON if page.anon else EntryKind.FILE
        if self.devexcl:
            kind = EntryKind.DEVEXCL
        return PageView(kind, Level.PTE, self.writable, self.dirty, self.soft_dirty,
                        page.anon and page.anon_exclusive, page)


@dataclass(eq=False)
class Pmd:
    """A huge PMD leaf: a THP (anon) or the huge zero folio, with its entry bits."""

    folio: object                  # Thp, HUGE_ZERO_PAGE, or a DevHuge (devmem.py)
    writable: bool = False
    dirty: bool = False
    soft_dirty: bool = False

    @property
    def is_zero(self) -> bool:
        return self.folio is HUGE_ZERO_PAGE

    @property
    def special(self) -> bool:
        """A special PMD of device memory (pmd_special, vma_is_special_huge)."""
        return not isinstance(self.folio, (Thp, HugeZeroPage))

    def mkdirty(self) -> None:
        """pmd_mkdirty: sets soft-dirty too on x86."""
        self.dirty = True
        self.soft_dirty = True

    def view(self) -> PageView:
        if isinstance(self.folio, HugeZeroPage):
            return PageView(EntryKind.HZERO, Level.PMD, False, False, self.soft_dirty,
                            False, HZERO_KEY)
        if not isinstance(self.folio, Thp):             # a special PMD of device memory
            return PageView(EntryKind.PFN, Level.PMD, self.writable, self.dirty,
                            self.soft_dirty, False, self.folio.page(0).key)
        return PageView(EntryKind.ANON, Level.PMD, self.writable, self.dirty,
                        self.soft_dirty, self.folio.head.anon_exclusive, self.folio)


class HugePte(Pte):
    """One vpn of a huge PMD: page = its subpage (or the huge zero page), bits = the Pmd's."""

    def __init__(self, pmd: Pmd, page: Union[Folio, HugeZeroPage]) -> None:
        self.pmd = pmd
        self.page = page            # type: ignore[assignment]
        self.devexcl = False
        self.swap = None
        self.swp_exclusive = False

    writable = property(lambda s: s.pmd.writable, lambda s, v: setattr(s.pmd, "writable", v))
    dirty = property(lambda s: s.pmd.dirty, lambda s, v: setattr(s.pmd, "dirty", v))
    soft_dirty = property(lambda s: s.pmd.soft_dirty,
                          lambda s, v: setattr(s.pmd, "soft_dirty", v))

    def mkdirty(self) -> None:
        self.pmd.mkdirty()

    @property
    def is_zero(self) -> bool:
        return False

    def view(self) -> PageView:
        return self.pmd.view()


@dataclass(eq=False)
class Pud:
    """A special PUD leaf of device memory (vmf_insert_pfn_pud): 2^18 BO pages."""

    folio: object                  # a DevHuge (devmem.py) from a 1 GiB-aligned BO page
    writable: bool = False
    dirty: bool = False
    soft_dirty: bool = False

    def mkdirty(self) -> None:
        """pud_mkdirty: sets soft-dirty too on x86."""
        self.dirty = True
        self.soft_dirty = True

    def view(self) -> PageView:
        return PageView(EntryKind.PFN, Level.PUD, self.writable, self.dirty,
                        self.soft_dirty, False, self.folio.page(0).key)


class PudPte(Pte):
    """One vpn of a PUD leaf: page = its BO page, bits = the Pud's (like HugePte)."""

    def __init__(self, pud: Pud, page: object) -> None:
        self.pud = pud
        self.page = page            # type: ignore[assignment]
        self.devexcl = False
        self.swap = None
        self.swp_exclusive = False

    writable = property(lambda s: s.pud.writable, lambda s, v: setattr(s.pud, "writable", v))
    dirty = property(lambda s: s.pud.dirty, lambda s, v: setattr(s.pud, "dirty", v))
    soft_dirty = property(lambda s: s.pud.soft_dirty,
                          lambda s, v: setattr(s.pud, "soft_dirty", v))

    def mkdirty(self) -> None:
        self.pud.mkdirty()

    @property
    def is_zero(self) -> bool:
        return False

    def view(self) -> PageView:
        return self.pud.view()
