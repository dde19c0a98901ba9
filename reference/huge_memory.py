"""Anonymous transparent huge pages at PMD level (mm/huge_memory.c).

Rules (Linux 6.18):
- A fault in a block with no PTE table and no huge PMD, in an eligible VMA
  (thp_vma_allowable_order), prepares the anon_vma (even for the huge zero folio:
  checked on 6.18, a fork then copies the huge zero PMD) and maps a huge PMD: the
  huge zero folio for a read fault when `thp_zero` is on, else a new zeroed THP
  (dirty, writable iff VM_WRITE, exclusive). A failed allocation (`thp_alloc fail`)
  falls back to PTEs.
- A write or unshare fault on a read-only huge PMD (do_huge_pmd_wp_page): the
  huge zero folio is replaced by a new THP; an exclusive THP (AnonExclusive head,
  or refcount 1) is reused in place; anything else splits this process's PMD and
  the fault continues at PTE level, where one 4 KiB page is copied.
- fork shares a THP read-only through both PMDs (copy_huge_pmd), except a pinned
  exclusive one: the parent's PMD is split and the PTE rules copy what they must.
- mprotect of a whole PMD keeps it huge (change_huge_pmd).
The split itself, the zap and the page-table bookkeeping are in mm.py.
"""
from __future__ import annotations

from typing import Optional

from .folio import HPAGE_PMD_NR, HUGE_ZERO_PAGE, Thp
from .mm import Mm
from .pagetable import Pmd
from .sysfs import ThpSettings
from .vma import Vma, anon_vma_prepare, pte_needs_soft_dirty_wp


def thp_vma_allowable(settings: ThpSettings, vma: Vma, idx: int) -> bool:
    """thp_vma_allowable_order(PMD_ORDER) for a fault + thp_vma_suitable_order: private
    anon memory, not VM_NOHUGEPAGE, sysfs `enabled` (madvise: needs VM_HUGEPAGE), and the
    aligned 2 MiB block inside the VMA."""
    if not vma.is_anon or vma.shared or vma.nohugepage:
        return False
    if settings.enabled == "never" or (settings.enabled == "madvise" and not vma.hugepage):
        return False
    return vma.start <= idx << 9 and (idx + 1) << 9 <= vma.end


def thp_alloc(settings: ThpSettings) -> Optional[Thp]:
    """vma_alloc_anon_folio_pmd: a zeroed THP, or None when allocation fails."""
    return Thp() if settings.alloc_ok else None


def map_anon_folio_pmd(mm: Mm, vma: Vma, idx: int, thp: Thp) -> None:
    """map_anon_folio_pmd: maybe_pmd_mkwrite(pmd_mkdirty()) for read and write faults
    alike; folio_add_new_anon_rmap(RMAP_EXCLUSIVE) marks the head only."""
    thp.head.anon_exclusive = True
    pmd = Pmd(thp, writable=vma.prot.write)
    pmd.mkdirty()
    mm.set_pmd(idx, pmd)


def create_huge_pmd(mm: Mm, i: int, vpn: int, write: bool, unshare: bool) -> bool:
    """do_huge_pmd_anonymous_page. Return False for VM_FAULT_FALLBACK (PTE path)."""
    idx = vpn >> 9
    anon_vma_prepare(mm.vmas, i)                       # vmf_anon_prepare, before anything
    if not write and not unshare and mm.thp.use_zero_page:
        mm.set_pmd(idx, Pmd(HUGE_ZERO_PAGE))           # set_huge_zero_folio: R/O, clean
        return True
    thp = thp_alloc(mm.thp)
    if thp is None:
        return False                                   # count_vm_event(THP_FAULT_FALLBACK)
    map_anon_folio_pmd(mm, mm.vmas[i], idx, thp)
    return True


def do_huge_pmd_wp_page(mm: Mm, i: int, vpn: int, unshare: bool) -> bool:
    """Write/unshare fault on a read-only huge PMD. Return True when handled, False for
    VM_FAULT_FALLBACK after the PMD was split (the fault continues at PTE level)."""
    vma = mm.vmas[i]
    idx = vpn >> 9
    pmd = mm.huge_pmd(idx)
    assert pmd is not None
    base = idx << 9
    if pmd.is_zero:
        # do_huge_zero_wp_pmd (write and unshare alike): a new THP replaces it
        thp = thp_alloc(mm.thp)
        if thp is None:
            mm.split_huge_pmd(idx)                     # __split_huge_zero_page_pmd
            return False
        mm.notify("clear", base, base + HPAGE_PMD_NR, None)
        anon_vma_prepare(mm.vmas, i)
        mm.zap_pmd(idx)
        map_anon_folio_pmd(mm, mm.vmas[i], idx, thp)
        return True
    thp = pmd.folio
    assert isinstance(thp, Thp)
    if not thp.head.anon_exclusive:
        if thp.refcount != 1:                          # folio_ref_count > 1: not ours alone
            mm.split_huge_pmd(idx)                     # fallback: __split_huge_pmd
            return False
        thp.head.anon_exclusive = True                 # folio_move_anon_rmap + SetPageAnonExclusive
    if not unshare:                                    # reuse: same 2 MiB frame
        pmd.mkdirty()
        pmd.writable = vma.prot.write                  # maybe_pmd_mkwrite
    return True


def huge_pmd_fault(mm: Mm, i: int, vpn: int, write: bool, unshare: bool) -> bool:
    """The PMD level of __handle_mm_fault. Return True when the fault was handled
    there, False when it continues at PTE level."""
    idx = vpn >> 9
    pmd = mm.huge_pmd(idx)
    if pmd is None:
        if mm.pmd_none(idx) and thp_vma_allowable(mm.thp, mm.vmas[i], idx):
            return create_huge_pmd(mm, i, vpn, write, unshare)
        return False
    if (write or unshare) and not pmd.writable:
        return do_huge_pmd_wp_page(mm, i, vpn, unshare)
    if write:
        pmd.mkdirty()                                  # huge_pmd_set_accessed (+dirty)
    return True


def change_huge_pmd(mm: Mm, vma: Vma, idx: int) -> None:
    """mprotect of a whole huge PMD: the new protection, write only through
    can_change_pmd_writable (private: an exclusive THP); dirty bits kept. The huge zero
    folio stays read-only."""
    pmd = mm.huge_pmd(idx)
    assert pmd is not None
    if pmd.is_zero:
        return
    pmd.writable = (vma.prot.write and vma.prot.read
                    and can_change_pmd_writable(vma, pmd))


def can_change_pmd_writable(vma: Vma, pmd: Pmd) -> bool:
    """can_change_pmd_writable: soft-dirty tracking wants the write fault; private: the
    folio must be exclusive (the head's AnonExclusive); shared (device memory): only a
    PMD already dirty."""
    if pte_needs_soft_dirty_wp(vma, pmd.soft_dirty):
        return False                                   # pmd_needs_soft_dirty_wp
    if vma.shared:
        return pmd.dirty                               # a special PMD: the FS was notified
    assert isinstance(pmd.folio, Thp)
    return pmd.folio.head.anon_exclusive


def copy_huge_pmd(parent: Mm, child: Mm, idx: int) -> bool:
    """fork of one huge PMD. Return False (-EAGAIN) when the parent's PMD was split
    instead, so the caller copies the PTEs (a pinned exclusive THP: the child must get
    copies of the pinned pages, folio_try_dup_anon_rmap_pmd fails)."""
    pmd = parent.huge_pmd(idx)
    assert pmd is not None
    if pmd.is_zero:
        child.set_pmd(idx, Pmd(HUGE_ZERO_PAGE))        # mm_get_huge_zero_folio
        return True
    thp = pmd.folio
    assert isinstance(thp, Thp)
    if thp.head.anon_exclusive and thp.pincount > 0 and parent.has_pinned:
        parent.split_huge_pmd(idx)
        return False
    thp.head.anon_exclusive = False                    # __folio_try_dup_anon_rmap (PMD)
    pmd.writable = False                               # pmdp_set_wrprotect
    child.set_pmd(idx, Pmd(thp, writable=False, dirty=pmd.dirty, soft_dirty=pmd.soft_dirty))
    return True
