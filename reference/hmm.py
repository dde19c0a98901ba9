"""Device access to process memory: hmm_range_fault (mm/hmm.c) for mirrors and
make_device_exclusive (mm/rmap.c, 6.15+ folio_walk version) for atomics, with
lib/test_hmm.c's dmirror as the driver model: a device reads or writes through
its own page table and faults through hmm_range_fault only when that table lacks
the page (or write permission). A device entry is valid only while a
subscription of the device covers it; invalidations drop it (notifier.py).
"""
from __future__ import annotations

from typing import Union

from .fault import handle_pte_fault
from .folio import Folio, ZeroPage, folio_store
from .gup import get_user_page
from .mm import Mm
from .notifier import Notifiers
from .results import Errno

Page = Union[Folio, ZeroPage]


def hmm_range_fault(mm: Mm, vpn: int, write: bool) -> Union[tuple[Page, str], Errno]:
    """One page: (page, "rw"|"r" from the CPU entry's write bit) or the errno.

    hmm_vma_walk_test: no VMA or no VM_READ -> EFAULT; hmm_vma_fault: a write fault in
    a VMA without VM_WRITE -> EPERM; a missing, device-exclusive, or (for a write)
    read-only entry faults; a fault that would SIGBUS -> EFAULT.
    """
    i = mm.find_vma_index(vpn)
    if i is None or not mm.vmas[i].prot.read or mm.vmas[i].pfnmap:
        return Errno.EFAULT                     # hmm_vma_walk_test: VM_IO|VM_PFNMAP too
    for _ in range(4):              # hmm_range_fault retries the walk after each fault
        pte = mm.ptes.get(vpn)
        if pte is not None and pte.present and (pte.writable or not write):
            return pte.page, "rw" if pte.writable else "r"
        if write and not mm.vmas[i].prot.write:
            return Errno.EPERM
        if handle_pte_fault(mm, i, vpn, write) is not None:
            return Errno.EFAULT
    raise AssertionError(f"hmm_range_fault at {vpn:#x} did not settle after 4 faults")


def make_device_exclusive(mm: Mm, vpn: int, owner: str) -> Union[Folio, Errno]:
    """GUP(FOLL_GET|FOLL_WRITE) faults the page in writable (breaking COW, restoring an
    earlier exclusive entry); only anon pages qualify (EOPNOTSUPP); the folio lock is
    taken (a `lock` held on it: EBUSY, where the kernel would wait); EXCLUSIVE
    invalidation with the owner; the PTE becomes a device-exclusive entry."""
    page = get_user_page(mm, vpn, write=True, force=False, pin=False, longterm=False,
                         split_pmd=True)          # FOLL_SPLIT_PMD
    if isinstance(page, Errno):
        return page
    if not (isinstance(page, Folio) and page.anon):
        return Errno.EOPNOTSUPP
    if page.locked:
        return Errno.EBUSY
    mm.notify("exclusive", vpn, vpn + 1, owner)
    pte = mm.ptes[vpn]
    assert pte.writable and pte.page is page, f"exclusive conversion of {pte!r}"
    # ptep_clear_flush: the dirty bit goes to the folio; soft-dirty kept in the entry
    pte.dirty, pte.writable, pte.devexcl = False, False, True
    return page


class DeviceOps:
    """The device ops of the op language over the machine's processes and notifiers."""

    def __init__(self, notifiers: Notifiers, procs: dict[str, Mm]) -> None:
        self.n = notifiers
        self.procs = procs

    def _check(self, dev: str, proc: str, vpn: int) -> Union[Mm, Errno]:
        """The range must be watched by one of the device's subscriptions: EINVAL."""
        if not self.n.covered(dev, proc, vpn):
            return Errno.EINVAL
        return self.procs[proc]

    def read(self, dev: str, proc: str, vpn: int) -> Union[int, Errno]:
        """dmirror_do_read: the device's entry, else fault it in."""
        mm = self._check(dev, proc, vpn)
        if isinstance(mm, Errno):
            return mm
        d = self.n.device(dev)
        if (proc, vpn) not in d.mirror:
            got = hmm_range_fault(mm, vpn, write=False)
            if isinstance(got, Errno):
                return got
            d.mirror[(proc, vpn)] = got
        return d.mirror[(proc, vpn)][0].value

    def write(self, dev: str, proc: str, vpn: int, val: int) -> Union[None, Errno]:
        """dmirror_do_write: needs a writable (or atomic) entry, else fault for write."""
        mm = self._check(dev, proc, vpn)
        if isinstance(mm, Errno):
            return mm
        d = self.n.device(dev)
        entry = d.mirror.get((proc, vpn))
        if entry is None or entry[1] == "r":
            got = hmm_range_fault(mm, vpn, write=True)
            if isinstance(got, Errno):
                return got
            d.mirror[(proc, vpn)] = entry = got
        page = entry[0]
        assert isinstance(page, Folio), f"device write into {page!r}"
        folio_store(page, val)
        return None

    def exclusive(self, dev: str, proc: str, vpn: int) -> Union[Folio, Errno]:
        """dmirror_exclusive: make_device_exclusive, then map it with atomic permission."""
        mm = self._check(dev, proc, vpn)
        if isinstance(mm, Errno):
            return mm
        page = make_device_exclusive(mm, vpn, dev)
        if isinstance(page, Errno):
            return page
        self.n.device(dev).mirror[(proc, vpn)] = (page, "atomic")
        return page

    def atomic_add(self, dev: str, proc: str, vpn: int, add: int) -> Union[int, Errno]:
        """A device atomic: with atomic access already, in place; else take it first."""
        entry = self.n.device(dev).mirror.get((proc, vpn))
        if entry is not None and entry[1] == "atomic" and self.n.covered(dev, proc, vpn):
            page = entry[0]
        else:
            got = self.exclusive(dev, proc, vpn)
            if isinstance(got, Errno):
                return got
            page = got
        assert isinstance(page, Folio)
        old = page.value
        folio_store(page, old + add)
        return old
