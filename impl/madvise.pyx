# madvise: the VMA walk (madvise_walk_vmas) and the populate walk (madvise_populate).
#
# Rules (rules.md "madvise", FACTS Q6-Q8): unsupported advice -> ENOSYS first;
# N == 0 -> ok; vpn+N > 2^52 (the byte range wraps) -> EINVAL; no TASK_SIZE check
# (the space past it is a hole). The walk visits every VMA of the range;
# holes are skipped and turn the result into ENOMEM; an EINVAL stops the walk.
# Populate walks page by page: a hole -> ENOMEM, a VMA without the needed
# permission -> EINVAL, a SIGBUS -> EFAULT, each stopping at once.
# swap-ksm.md: pageout acts on the pages of each VMA piece like dontneed (no split or
# merge; vmscan.pyx). mergeable sets VM_MERGEABLE on private VMAs only (shared ones:
# vma_ksm_compatible false, ok without the flag); unmergeable on a VM_MERGEABLE VMA
# unshares every KSM page of the piece first (ksm.pyx break_ksm), else is ignored.


cdef uint32_t _new_madv(vma_t *v, int advice) noexcept nogil:
    """The VMA's madvise flags after a flag advice (madvise_vma_behavior's new_flags)."""
    cdef uint32_t f = v.madv
    if advice == ADV_DONTFORK:
        f |= VM_DONTCOPY
    elif advice == ADV_DOFORK:
        f &= ~VM_DONTCOPY
    elif advice == ADV_WIPEONFORK:
        f |= VM_WIPEONFORK
    elif advice == ADV_KEEPONFORK:
        f &= ~VM_WIPEONFORK
    elif advice == ADV_MERGEABLE:
        if not v.shared:                         # ksm_madvise: vma_ksm_compatible
            f |= VM_MERGEABLE
    elif advice == ADV_HUGEPAGE:                 # hugepage_madvise
        f = (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
    elif advice == ADV_NOHUGEPAGE:
        f = (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
    elif advice == ADV_UNMERGEABLE:
        f &= ~VM_MERGEABLE                       # not mergeable: "just ignore the advice"
    return f


cdef void _mutant_punch_cache(machine_t *m, vma_t *v, int64_t start, int64_t end) noexcept nogil:
    """Mutant dontneed_shared_drops_pagecache: drop the unmapped page-cache pages of
    [start, end) of a shared VMA from its file, as MADV_REMOVE (shmem_truncate_range)
    would; pages some other PTE still maps stay (a truncation would unmap them)."""
    cdef shmem_t *f = m.files[v.file]
    cdef int64_t n = f.nr_pages + f.nr_swapped, j, lo = linear_page_index(v, start)
    cdef int64_t hi = lo + (end - start)
    cdef cache_page_t *cache
    cdef folio_t *folio
    if n == 0:
        return
    cache = <cache_page_t *>malloc(n * sizeof(cache_page_t))
    if cache == NULL:
        m.kmem.oom = 1
        return
    n = shmem_collect(f, cache, n)
    for j in range(n):
        if cache[j].pgoff < lo or cache[j].pgoff >= hi or cache[j].pfn == 0:
            continue                             # (a swapped page stays: not a model rule)
        folio = pfn_folio(&m.mem, cache[j].pfn)
        if folio.mapcount != 0:
            continue
        xa_store(f, &m.kmem, cache[j].pgoff, 0)  # the slot exists: never allocates
        f.nr_pages -= 1
        folio.flags &= ~(<uint32_t>PG_pagecache)
        folio_put(&m.mem, cache[j].pfn, folio)
    free(cache)


cdef int madvise_walk_vmas(machine_t *m, mm_t *mm, int64_t start, int64_t end,
                           int advice) noexcept nogil:
    """Visit the VMAs of [start, end); return 0, ENOMEM (a hole), EINVAL, or -1 (OOM)."""
    cdef int64_t cur = start
    cdef int32_t idx = find_vma_from(mm, start)
    cdef bint hole = False
    cdef int err
    cdef vma_t *v
    cdef uint32_t new
    cdef int64_t vend, a, b
    if advice == ADV_COLLAPSE:
        # file/shmem THP is out of scope: any VMA of the range that is not private anon
        # makes the whole call ENOSYS, before anything is done
        while idx < mm.nr_vmas and mm.vmas[idx].start < end:
            if not vma_is_anon_private(&mm.vmas[idx]) or mm.vmas[idx].shared:
                return ENOSYS
            idx += 1
        idx = find_vma_from(mm, start)
    while idx < mm.nr_vmas and mm.vmas[idx].start < end:
        v = &mm.vmas[idx]
        if v.start > cur:
            hole = True
        if v.pfnmap and (advice == ADV_DONTNEED or advice == ADV_PAGEOUT
                         or advice == ADV_DOFORK):
            # madvise_dontneed_free_valid_vma / can_madv_lru_vma: VM_PFNMAP;
            # MADV_DOFORK: VM_IO
            return EINVAL
        if advice == ADV_DONTNEED:
            # zap_page_range_single_batched: MMU_NOTIFY_CLEAR over the piece, mapped or not
            mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, max(start, v.start),
                                          min(end, v.end), NO_OWNER)
            zap_page_range(m, mm, max(start, v.start), min(end, v.end))
            if min(end, v.end) - max(start, v.start) >= HPAGE_PMD_NR:
                # PT_RECLAIM (6.14+): a zap of >= 2 MiB frees the emptied PTE tables of
                # the blocks it touched (PTE tables only: PMD tables stay, pud.md A)
                free_pte_tables(mm.pgd, &m.kmem, max(start, v.start), min(end, v.end))
            if m.mutant == MUTANT_DONTNEED_SHARED_DROPS_PAGECACHE and v.shared:
                _mutant_punch_cache(m, v, max(start, v.start), min(end, v.end))
        elif advice == ADV_COLLAPSE:
            err = madvise_collapse(m, mm, idx, max(start, v.start), min(end, v.end))
            if err:
                return err                       # ENOMEM / EINVAL / EAGAIN stop the walk
        elif advice == ADV_PAGEOUT:
            pageout_range(m, mm, idx, max(start, v.start), min(end, v.end))
            if m.kmem.oom:
                return -1
        else:
            if advice == ADV_WIPEONFORK and not vma_is_anon_private(v):
                return EINVAL                    # only private anon may wipe on fork
            new = _new_madv(v, advice)
            if new != v.madv:
                # madvise_update_vma: new_flags == vm_flags -> 0, else vma_modify_flags
                # splits (a huge PMD too: vma_adjust_trans_huge) and merges the piece
                vend = v.end
                a = max(start, v.start)
                b = min(end, vend)
                if v.start < start:
                    if vma_split(m, mm, idx, start) < 0:
                        return -1
                    idx += 1
                if mm.vmas[idx].end > end and vma_split(m, mm, idx, end) < 0:
                    return -1
                if advice == ADV_UNMERGEABLE:
                    break_ksm(m, mm, idx, a, b)  # unmerge_ksm_pages
                mm.vmas[idx].madv = new
                vma_merge_range(m, mm, a, b)
                cur = vend
                idx = find_vma_from(mm, vend)
                continue
        cur = mm.vmas[idx].end
        idx += 1
    if cur < end:
        hole = True
    return ENOMEM if hole else 0


cdef int madvise_populate(machine_t *m, mm_t *mm, int64_t start, int64_t end,
                          bint write) noexcept nogil:
    """MADV_POPULATE_(READ|WRITE) via faultin_page_range; 0 or an errno, -1 on OOM."""
    cdef int64_t cur = start, seg_end
    cdef int32_t idx
    cdef int rc
    cdef vma_t *v
    while cur < end:
        idx = find_vma(mm, cur)
        if idx < 0:
            return ENOMEM                        # no VMA: -ENOMEM
        v = &mm.vmas[idx]
        if v.pfnmap:
            return EFAULT                        # check_vma_flags: VM_IO | VM_PFNMAP
        if v.prot == PROT_NONE or (write and v.prot != PROT_RW):
            return EINVAL                        # check_vma_flags with FOLL_MADV_POPULATE
        seg_end = min(end, v.end)
        rc = populate_vma_page_range(m, mm, idx, cur, seg_end, write)
        if rc == VM_FAULT_SIGBUS:
            return EFAULT
        if rc != VM_FAULT_OK:
            return -1
        cur = seg_end
    return 0


cdef void sys_madvise(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil:
    cdef int64_t start = op.a0, end = op.a0 + op.a1
    cdef int advice = <int>op.a2
    cdef int err
    if advice == ADV_UNSUPPORTED:
        res_set(r, RES_ERRNO, ENOSYS)
        return
    if op.a1 == 0:
        res_set(r, RES_OK, 0)
        return
    if end > ADDR_LIMIT_PAGES:
        res_set(r, RES_ERRNO, EINVAL)            # the byte range wraps
        return
    if advice == ADV_POPULATE_READ or advice == ADV_POPULATE_WRITE:
        err = madvise_populate(m, mm, start, end, advice == ADV_POPULATE_WRITE)
    else:
        err = madvise_walk_vmas(m, mm, start, end, advice)   # merges what it changed
    res_status(r, err)
