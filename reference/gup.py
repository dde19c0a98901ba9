"""GUP: pin_user_pages (FOLL_PIN), unpin_user_pages, and the FOLL_FORCE write of
/proc/pid/mem (mm/gup.c __get_user_pages, follow_page_pte, faultin_page).

One page at a time, as __get_user_pages loops: check_vma_flags on the VMA, then
follow_page_pte; when the entry cannot be used as is, a fault (read, write, or
FAULT_FLAG_UNSHARE) and a retry:
- no entry -> fault (write for FOLL_WRITE);
- FOLL_WRITE and !can_follow_write_pte -> write fault (breaks COW);
- entry read-only and gup_must_unshare -> unshare fault (R/O pins only);
then the page is grabbed (FOLL_PIN: pincount + 1 reference; the zero page is
not accounted, >= 6.5). The pinned anon page is then AnonExclusive (I3), so a
later CPU write reuses it and fork copies it instead of sharing it (fork.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .devmem import pfnmap_poke
from .fault import handle_pte_fault
from .folio import Folio, HugeZeroPage, Thp, ZeroPage, folio_get, folio_put, folio_store
from .mm import Mm
from .pagetable import HugePte, Pte
from .results import Errno
from .vma import Vma, pte_needs_soft_dirty_wp

Page = Union[Folio, ZeroPage, HugeZeroPage]

PIN_MAX_PAGES = 1 << 18      # 1 GiB per pin, io_uring's limit per registered buffer


@dataclass(eq=False)
class PinHandle:
    """One successful pin_user_pages call: the pages it pinned, in order."""

    pages: list[Page]
    write: bool               # FOLL_WRITE: the device may write through it


def is_cow_mapping(vma: Vma) -> bool:
    """(VM_SHARED|VM_MAYWRITE) == VM_MAYWRITE: every private mapping here (memfds are
    opened read-write, so VM_MAYWRITE is always set)."""
    return not vma.shared


def check_vma_flags(vma: Vma, write: bool, force: bool) -> Optional[Errno]:
    """check_vma_flags: FOLL_WRITE needs VM_WRITE, or FOLL_FORCE in a COW mapping;
    a read needs VM_READ unless FOLL_FORCE (VM_MAYREAD is always set)."""
    if vma.pfnmap:
        return Errno.EFAULT                       # VM_IO | VM_PFNMAP: no struct pages
    if write:
        if not vma.prot.write and (not force or not is_cow_mapping(vma)):
            return Errno.EFAULT
    elif not vma.prot.read and not force:
        return Errno.EFAULT
    return None


def exclusivity_page(pte: Pte) -> Page:
    """The page whose AnonExclusive decides for the entry: the head of a PMD-mapped
    THP (follow_huge_pmd checks pmd_page() before adding the subpage offset)."""
    if isinstance(pte, HugePte) and isinstance(pte.pmd.folio, Thp):
        return pte.pmd.folio.head
    return pte.page


def can_follow_write_pte(pte: Pte, vma: Vma, force: bool) -> bool:
    """A write may use the entry: it is writable, or FOLL_FORCE in a private VMA
    without VM_WRITE on an AnonExclusive anon page (COW already broken)
    (can_follow_write_pte / can_follow_write_pmd)."""
    if pte.writable:
        return True
    if not force or vma.shared or vma.prot.write:
        return False
    page = exclusivity_page(pte)
    if not (isinstance(page, Folio) and page.anon and page.anon_exclusive):
        return False
    # "... and a write-fault isn't required for other reasons": pte_needs_soft_dirty_wp
    return not pte_needs_soft_dirty_wp(vma, pte.soft_dirty)


def gup_must_unshare(vma: Vma, write: bool, pin: bool, longterm: bool, page: Page) -> bool:
    """Only R/O pins unshare: an anon page that is not exclusive; for longterm pins
    also the zero page and page-cache pages of a COW mapping."""
    if write or not pin:
        return False
    if not (isinstance(page, Folio) and page.anon):
        return longterm and is_cow_mapping(vma)
    return not page.anon_exclusive


def follow_page(mm: Mm, i: int, vpn: int, write: bool, force: bool, pin: bool,
                longterm: bool, split_pmd: bool = False) -> Union[Page, Errno]:
    """follow_page_pte + faultin_page until the page can be grabbed (EFAULT on SIGBUS).
    FOLL_SPLIT_PMD (split_pmd) splits a huge PMD it meets (follow_pmd_mask)."""
    vma = mm.vmas[i]
    for _ in range(5):              # each fault makes the next follow succeed
        if split_pmd:
            mm.split_huge_pmd(vpn >> 9)
        pte = mm.ptes.get(vpn)
        if pte is None or not pte.present or (write and not can_follow_write_pte(pte, vma, force)):
            if handle_pte_fault(mm, i, vpn, write) is not None:
                return Errno.EFAULT           # VM_FAULT_SIGBUS -> -EFAULT
            continue
        if not pte.writable and gup_must_unshare(vma, write, pin, longterm, exclusivity_page(pte)):
            handle_pte_fault(mm, i, vpn, write=False, unshare=True)   # -EMLINK -> unshare
            continue
        return pte.page
    raise AssertionError(f"GUP at {vpn:#x} did not settle after 5 faults")


def get_user_page(mm: Mm, vpn: int, write: bool, force: bool, pin: bool,
                  longterm: bool, split_pmd: bool = False) -> Union[Page, Errno]:
    """One iteration of __get_user_pages: VMA lookup, check_vma_flags, follow/fault."""
    i = mm.find_vma_index(vpn)
    if i is None:
        return Errno.EFAULT
    err = check_vma_flags(mm.vmas[i], write, force)
    if err is not None:
        return err
    return follow_page(mm, i, vpn, write, force, pin, longterm, split_pmd)


def unpin_page(page: Page) -> None:
    """unpin_user_page: drop the pin and its reference (the zero page has neither)."""
    if isinstance(page, Folio):
        page.pincount -= 1
        folio_put(page)


def pin_user_pages(mm: Mm, vpn: int, npages: int, write: bool,
                   longterm: bool) -> Union[PinHandle, Errno]:
    """pin_user_pages over [vpn, vpn + npages), all or nothing as io_uring buffer
    registration: an empty or > 1 GiB range is EFAULT before anything happens
    (io_sqe_buffer_register: `if (ulen > SZ_1G || !ulen) return -EFAULT`); on a failing
    page the pins taken so far are dropped (the faults they caused stay)."""
    if npages == 0 or npages > PIN_MAX_PAGES:
        return Errno.EFAULT
    mm.has_pinned = True                      # mm_set_has_pinned_flag, before the walk
    pages: list[Page] = []
    for v in range(vpn, vpn + npages):
        page = get_user_page(mm, v, write, force=False, pin=True, longterm=longterm)
        if isinstance(page, Errno):
            for p in pages:
                unpin_page(p)
            return page
        if isinstance(page, Folio):           # try_grab_folio(FOLL_PIN)
            page.pincount += 1
            folio_get(page)
        pages.append(page)
    return PinHandle(pages, write)


def unpin_user_pages(handle: PinHandle) -> None:
    for page in handle.pages:
        unpin_page(page)
    handle.pages = []


def poke(mm: Mm, vpn: int, value: int) -> Optional[Errno]:
    """mem_rw write: access_remote_vm with FOLL_FORCE|FOLL_WRITE (a FOLL_GET reference
    held only for the copy). Nothing copied -> EIO."""
    vma = mm.find_vma(vpn)
    if vma is not None and vma.pfnmap:
        return pfnmap_poke(vma, vpn, value)   # GUP fails; vm_ops->access (ttm_bo_vm_access)
    page = get_user_page(mm, vpn, write=True, force=True, pin=False, longterm=False)
    if isinstance(page, Errno):
        return Errno.EIO
    assert isinstance(page, Folio), f"FOLL_WRITE followed the zero page at {vpn:#x}"
    folio_store(page, value)                 # copy_to_user_page + set_page_dirty_lock
    return None
