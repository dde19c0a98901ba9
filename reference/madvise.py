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

from typing import Optional, Union

from .fault import populate_fault
from .folio import HPAGE_PMD_NR
from .khugepaged import madvise_collapse
from .ksm import break_ksm
from .mm import Mm
from .ops import ADDR_LIMIT_PAGES, Advice
from .results import Errno
from .vma import Vma, merge_range
from .vmscan import pageout_range

# Advice values this issue models; the rest return ENOSYS in both models.
SUPPORTED = frozenset({Advice.DONTNEED, Advice.DONTFORK, Advice.DOFORK, Advice.WIPEONFORK,
                       Advice.KEEPONFORK, Advice.POPULATE_READ, Advice.POPULATE_WRITE,
                       Advice.PAGEOUT, Advice.MERGEABLE, Advice.UNMERGEABLE,
                       Advice.HUGEPAGE, Advice.NOHUGEPAGE, Advice.COLLAPSE})
# Advice that only acts on the pages (no VMA flag changes: no split or merge).
_PAGE_ONLY = frozenset({Advice.DONTNEED, Advice.PAGEOUT, Advice.COLLAPSE})


def madvise_populate(mm: Mm, start: int, end: int, write: bool) -> Optional[Errno]:
    """faultin_page_range over [start, end), page by page."""
    for vpn in range(start, end):
        vma = mm.find_vma(vpn)
        if vma is None:
            return Errno.ENOMEM
        if vma.pfnmap:
            return Errno.EFAULT        # GUP's check_vma_flags refuses VM_IO|VM_PFNMAP
        if not vma.prot.read or (write and not vma.prot.write):
            return Errno.EINVAL
        if populate_fault(mm, vpn, write) is not None:
            return Errno.EFAULT        # VM_FAULT_SIGBUS / SIGSEGV
    return None


def _page_behavior(mm: Mm, vma: Vma, start: int, end: int, advice: Advice) -> Optional[Errno]:
    """The advices that act on the pages of [start, end) of one VMA (no VMA change)."""
    if vma.pfnmap:
        return Errno.EINVAL    # madvise_dontneed_free_valid_vma / can_madv_lru_vma: VM_PFNMAP
    if advice is Advice.DONTNEED:
        mm.notify("clear", start, end, None)           # zap_page_range_single
        mm.zap_range(start, end)                       # madvise_dontneed_single_vma
        if end - start >= HPAGE_PMD_NR:                # reclaim_pt_is_enabled (PT_RECLAIM):
            mm.free_tables(start, end, lambda idx: False)  # try_to_free_pte: empty tables go
    elif advice is Advice.PAGEOUT:
        pageout_range(mm, start, end)                  # madvise_pageout
    return None


def _flag_update(vma: Vma, advice: Advice) -> Union[dict, Errno]:
    """madvise_vma_behavior's new vm_flags for a flag advice, as attribute values, or the
    errno it returns before touching the VMA."""
    if advice is Advice.DONTFORK:
        return {"dontfork": True}                      # VM_DONTCOPY
    if advice is Advice.DOFORK:
        if vma.pfnmap:
            return Errno.EINVAL                        # VM_IO must stay VM_DONTCOPY-able
        return {"dontfork": False}
    if advice is Advice.WIPEONFORK:
        if vma.file is not None or vma.shared:
            return Errno.EINVAL                        # private anonymous memory only
        return {"wipeonfork": True}
    if advice is Advice.KEEPONFORK:
        return {"wipeonfork": False}
    if advice is Advice.MERGEABLE:                     # vma_ksm_compatible
        return {} if vma.shared or vma.pfnmap else {"mergeable": True}
    if advice is Advice.UNMERGEABLE:
        return {"mergeable": False}
    if advice is Advice.HUGEPAGE:                      # hugepage_madvise
        return {"hugepage": True, "nohugepage": False}
    assert advice is Advice.NOHUGEPAGE
    return {"hugepage": False, "nohugepage": True}


def _flag_behavior(mm: Mm, vma: Vma, start: int, end: int,
                   advice: Advice) -> Union[bool, Errno]:
    """A flag advice on [start, end) of one VMA: madvise_update_vma splits the VMA (and a
    huge PMD there) only when the flags really change (new_flags == vm_flags -> 0).
    Return: whether the VMA changed, or the errno."""
    update = _flag_update(vma, advice)
    if isinstance(update, Errno):
        return update
    changes = {k: v for k, v in update.items() if getattr(vma, k) != v}
    if not changes:
        return False
    if advice is Advice.UNMERGEABLE:
        break_ksm(mm, start, end)                      # unmerge_ksm_pages first
    mm.split_at(start)                                 # vma_modify_flags -> __split_vma
    mm.split_at(end)
    piece = mm.find_vma(start)
    assert piece is not None and (piece.start, piece.end) == (start, end)
    for k, v in changes.items():
        setattr(piece, k, v)
    return True


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
    if advice is Advice.COLLAPSE:
        return madvise_collapse(mm, vpn, end)
    changes_flags = advice not in _PAGE_ONLY
    err: Optional[Errno] = None
    cursor = vpn
    changed: list[tuple[int, int]] = []
    for vma in mm.vmas_in(vpn, end):
        if vma.start > cursor:
            err = Errno.ENOMEM                         # unmapped_error, walk goes on
        a, b = max(vma.start, vpn), min(vma.end, end)
        cursor = vma.end
        if changes_flags:
            e = _flag_behavior(mm, vma, a, b, advice)
            if isinstance(e, Errno):
                err = e
                break
            if e:
                changed.append((a, b))
        else:
            e = _page_behavior(mm, vma, a, b, advice)
            if e is not None:
                err = e
                break
    else:
        if cursor < end:
            err = Errno.ENOMEM
    for a, b in changed:                               # vma_modify merges what it changed
        mm.vmas = merge_range(mm.vmas, a, b)
    return err
