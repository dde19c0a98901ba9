"""Soft-dirty tracking: `echo 4 > /proc/pid/clear_refs` (fs/proc/task_mmu.c
clear_refs_write with CLEAR_REFS_SOFT_DIRTY; CONFIG_MEM_SOFT_DIRTY modelled on).

Rules (kernel functions in brackets):
- Every VMA loses VM_SOFTDIRTY (clear_refs_write: vm_flags_clear + vma_set_page_prot,
  so a shared rw VMA now wants write-notify: vma.py vma_wants_writenotify).
- One SOFT_DIRTY invalidation over the whole address space (mmu_notifier_range_init
  (MMU_NOTIFY_SOFT_DIRTY, 0, mm, 0, -1UL)), clipped like exit's to [0, 2^52) pages;
  it fires even when the mm has no VMA.
- walk_page_range(mm, 0, -1) with clear_refs_test_walk (VM_PFNMAP VMAs skipped: none
  exist yet) and clear_refs_pte_range:
  - present PTE (clear_soft_dirty): left alone if pte_is_pinned (writable, COW
    mapping, MMF_HAS_PINNED, a normal folio that may be DMA-pinned); else
    write-protected and soft-dirty cleared, dirty kept. The zero page is a present
    PTE like any other (vm_normal_folio is NULL: never "pinned").
  - non-present PTE (is_swap_pte: swap and device-exclusive entries alike):
    pte_swp_clear_soft_dirty.
  - huge PMD (clear_soft_dirty_pmd): write-protect and clear soft-dirty, dirty kept,
    never split; no pinned check.
"""
from __future__ import annotations

from .folio import HPAGE_PMD_NR, Folio
from .mm import Mm
from .ops import ADDR_LIMIT_PAGES
from .pagetable import HugePte, Pte
from .vma import Vma


def pte_is_pinned(mm: Mm, vma: Vma, pte: Pte) -> bool:
    """pte_is_pinned: pte_write && is_cow_mapping && MMF_HAS_PINNED && vm_normal_folio
    && folio_maybe_dma_pinned (exact here: pincount > 0)."""
    if not pte.writable or vma.shared or not mm.has_pinned:
        return False
    page = pte.page
    return isinstance(page, Folio) and page.pincount > 0


def clear_soft_dirty_pmd(mm: Mm, vma: Vma, vpn: int, pte: HugePte) -> None:
    """HOOK for huge PMDs (THP, huge zero page): clear_soft_dirty_pmd write-protects the
    PMD and clears its soft-dirty bit (pmd_mkdirty of the old dirty bit first, so dirty
    stays), no split. Called once per PMD (at its first vpn)."""
    pte.writable = False                                  # pmd_wrprotect
    pte.soft_dirty = False                                # pmd_clear_soft_dirty


def clear_soft_dirty(mm: Mm, vma: Vma, pte: Pte) -> None:
    """clear_soft_dirty for one PTE-level entry."""
    if pte.present:
        if pte_is_pinned(mm, vma, pte):
            return
        pte.writable = False                              # pte_wrprotect
        pte.soft_dirty = False                            # pte_clear_soft_dirty
    else:
        pte.soft_dirty = False                            # is_swap_pte: swap and DX entries


def clear_refs_soft_dirty(mm: Mm) -> None:
    """clear_refs_write(CLEAR_REFS_SOFT_DIRTY) on one live mm."""
    for vma in mm.vmas:
        vma.softdirty = False                             # vm_flags_clear(VM_SOFTDIRTY)
    mm.notify("soft_dirty", 0, ADDR_LIMIT_PAGES, None)
    for vma in list(mm.vmas):
        if vma.pfnmap:
            continue                                      # clear_refs_test_walk: VM_PFNMAP
        for vpn in mm.vpns_in(vma.start, vma.end):
            pte = mm.ptes[vpn]
            if isinstance(pte, HugePte):
                if vpn % HPAGE_PMD_NR == 0:
                    clear_soft_dirty_pmd(mm, vma, vpn, pte)
                continue
            clear_soft_dirty(mm, vma, pte)
