"""madvise(2) (mm/madvise.c madvise_walk_vmas, madvise_vma_behavior, madvise_populate).

Checked on Linux 6.18 (FACTS): len 0 -> 0; holes are skipped and the result is
ENOMEM, the mapped parts still get the advice; an EINVAL from a VMA stops the
walk. MADV_POPULATE_* walk page by page instead and stop at the first error:
no VMA -> ENOMEM, PROT_NONE or a write to a read-only VMA -> EINVAL, SIGBUS ->
EFAULT; the pages before it stay populated. MADV_PAGEOUT reclaims what the range
maps (vmscan.py); MADV_MERGEABLE / MADV_UNMERGEABLE set or clear VM_MERGEABLE on
private VMAs (ksm_madvise; shared ones are left alone), unmerging KSM pages first.
"""
from __future__ import annotations

from typing import Optional

from .fault import populate_fault
from .ksm import break_ksm
from .mm import Mm
from .ops import ADDR_LIMIT_PAGES, Advice
from .results import Errno
from .vma import Vma, merge_range
from .vmscan import pageout_range

# Advice values this issue models; the rest return ENOSYS in both models.
SUPPORTED = frozenset({Advice.DONTNEED, Advice.DONTFORK, Advice.DOFORK, Advice.WIPEONFORK,
                       Advice.KEEPONFORK, Advice.POPULATE_READ, Advice.POPULATE_WRITE,
                       Advice.PAGEOUT, Advice.MERGEABLE, Advice.UNMERGEABLE})
# Advice that only acts on the pages (no VMA flag changes: no split or merge).
_PAGE_ONLY = frozenset({Advice.DONTNEED, Advice.PAGEOUT})


def madvise_populate(mm: Mm, start: int, end: int, write: bool) -> Optional[Errno]:
    """faultin_page_range over [start, end), page by page."""
    for vpn in range(start, end):
        vma = mm.find_vma(vpn)
        if vma is None:
            return Errno.ENOMEM
        if not vma.prot.read or (write and not vma.prot.write):
            return Errno.EINVAL
        if populate_fault(mm, vpn, write) is not None:
            return Errno.EFAULT        # VM_FAULT_SIGBUS / SIGSEGV
    return None


def _vma_behavior(mm: Mm, vma: Vma, start: int, end: int, advice: Advice) -> Optional[Errno]:
    """madvise_vma_behavior for the part [start, end) of one VMA (already split there)."""
    if advice is Advice.DONTNEED:
        mm.notify("clear", start, end, None)           # zap_page_range_single
        mm.zap_range(start, end)                       # madvise_dontneed_single_vma
    elif advice is Advice.DONTFORK:
        vma.dontfork = True                            # VM_DONTCOPY
    elif advice is Advice.DOFORK:
        vma.dontfork = False
    elif advice is Advice.WIPEONFORK:
        if vma.file is not None or vma.shared:
            return Errno.EINVAL                        # private anonymous memory only
        vma.wipeonfork = True
    elif advice is Advice.KEEPONFORK:
        vma.wipeonfork = False
    elif advice is Advice.PAGEOUT:
        pageout_range(mm, start, end)                  # madvise_pageout
    elif advice is Advice.MERGEABLE:
        if not vma.shared:                             # vma_ksm_compatible
            vma.mergeable = True
    elif advice is Advice.UNMERGEABLE:
        if vma.mergeable:                              # else: the advice is ignored
            break_ksm(mm, start, end)
            vma.mergeable = False
    return None


def do_madvise(mm: Mm, vpn: int, npages: int, advice: Advice) -> Optional[Errno]:
    """do_madvise: madvise_populate, or madvise_walk_vmas applying madvise_vma_behavior."""
    if advice not in SUPPORTED:
        return Errno.ENOSYS
    if npages == 0:
        return None
    end = vpn + npages
    if end > ADDR_LIMIT_PAGES:
        return Errno.EINVAL                            # start + len wraps
    # Past TASK_SIZE is a hole like any other (ENOMEM after the walk).
    if advice in (Advice.POPULATE_READ, Advice.POPULATE_WRITE):
        return madvise_populate(mm, vpn, end, advice is Advice.POPULATE_WRITE)
    changes_flags = advice not in _PAGE_ONLY
    if changes_flags:
        mm.split_at(vpn)
        mm.split_at(end)
    err: Optional[Errno] = None
    cursor = vpn
    for vma in mm.vmas_in(vpn, end):
        if vma.start > cursor:
            err = Errno.ENOMEM                         # unmapped_error, walk goes on
        e = _vma_behavior(mm, vma, max(vma.start, vpn), min(vma.end, end), advice)
        if e is not None:
            err = e
            break
        cursor = vma.end
    else:
        if cursor < end:
            err = Errno.ENOMEM
    if changes_flags:
        mm.vmas = merge_range(mm.vmas, vpn, end)
    return err
