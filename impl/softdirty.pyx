# softdirty: `echo 4 > /proc/pid/clear_refs` (fs/proc/task_mmu.c clear_refs_write,
# CLEAR_REFS_SOFT_DIRTY; CONFIG_MEM_SOFT_DIRTY modelled on).
#
# Rules (reference/softdirty.py has the same list):
# - every VMA loses VM_SOFTDIRTY (and vma_set_page_prot: shared rw VMAs now want
#   write-notify, vma.pxd vma_wants_writenotify);
# - one MMU_NOTIFY_SOFT_DIRTY over 0..-1UL (pages [0, 2^52)), even with no VMA;
# - clear_soft_dirty per PTE: present -> skipped if pte_is_pinned (writable, private,
#   MMF_HAS_PINNED, a normal folio with pins), else wrprotect + clear soft-dirty (dirty
#   kept; the zero page too); non-present (swap and device-exclusive entries,
#   is_swap_pte) -> pte_swp_clear_soft_dirty;
# - huge PMDs: clear_soft_dirty_pmd (wrprotect + clear soft-dirty, no split).


ctypedef struct clear_refs_ctx_t:
    machine_t *m
    mm_t *mm
    vma_t *vma


cdef inline bint _pte_is_pinned(clear_refs_ctx_t *c, uint64_t pte) noexcept nogil:
    """pte_is_pinned: pte_write && is_cow_mapping && MMF_HAS_PINNED && vm_normal_folio
    && folio_maybe_dma_pinned (exact: pincount > 0)."""
    if not pte_write(pte) or c.vma.shared or not c.mm.has_pinned or pte_special(pte):
        return False
    return page_folio(&c.m.mem, pte_pfn(pte)).pincount > 0   # folio-wide for a THP page


cdef void _clear_soft_dirty_run(void *ctx, uint64_t *ptep, int64_t vpn,
                                int64_t n) noexcept nogil:
    """clear_soft_dirty on every used entry of one run."""
    cdef clear_refs_ctx_t *c = <clear_refs_ctx_t *>ctx
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t end = (vpn & TABLE_MASK) + n
    cdef int64_t i = next_used(table, vpn & TABLE_MASK, end)
    cdef uint64_t pte
    while i < end:
        pte = table[i]
        if pte_present(pte):
            if not _pte_is_pinned(c, pte):
                table[i] = pte & ~(<uint64_t>(_PAGE_RW | _PAGE_SOFT_DIRTY))
        else:
            table[i] = pte & ~(<uint64_t>_PAGE_SWP_SOFT_DIRTY)   # pte_swp_clear_soft_dirty
        i = next_used(table, i + 1, end)


cdef void _clear_soft_dirty_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                                int64_t hi) noexcept nogil:
    """HOOK clear_soft_dirty_pmd: a huge PMD is write-protected and loses soft-dirty
    (pmd_wrprotect, pmd_clear_soft_dirty; dirty kept), never split."""
    pmdp[0] = pmdp[0] & ~(<uint64_t>(_PAGE_RW | _PAGE_SOFT_DIRTY))


cdef void sys_clear_refs(machine_t *m, mm_t *mm, mm_res_t *r) noexcept nogil:
    """`clear_refs P`: clear_refs_write(CLEAR_REFS_SOFT_DIRTY) on a live mm (ESRCH is
    answered by do_op)."""
    cdef clear_refs_ctx_t c
    cdef int32_t i
    for i in range(mm.nr_vmas):
        mm.vmas[i].softdirty = 0                 # vm_flags_clear(vma, VM_SOFTDIRTY)
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_SOFT_DIRTY, 0, ADDR_LIMIT_PAGES, NO_OWNER)
    c.m = m
    c.mm = mm
    for i in range(mm.nr_vmas):
        if mm.vmas[i].pfnmap:
            continue                             # clear_refs_test_walk: VM_PFNMAP -> 1
        c.vma = &mm.vmas[i]
        walk_page_range(mm.pgd, mm.vmas[i].start, mm.vmas[i].end, _clear_soft_dirty_run,
                        _clear_soft_dirty_pmd, &c)
    res_set(r, RES_OK, 0)
