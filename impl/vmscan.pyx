# vmscan: MADV_PAGEOUT (mm/madvise.c madvise_cold_or_pageout_pte_range, then
# mm/vmscan.c reclaim_pages -> shrink_folio_list) over one VMA piece.
#
# Rules (swap-ksm.md "madvise pageout"): only present entries are looked at, in vpn
# order (swap, device-exclusive and none entries, and the zero page, are skipped). A
# page is reclaimed only when this entry is its only mapping (folio_mapcount == 1),
# it is not pinned, not locked (folio_trylock), not KSM (a model simplification) and
# nothing else holds a reference (refcount == mapcount + page cache + swap cache).
# try_to_unmap_one fires CLEAR over the page first. An anon page becomes a swap entry
# (its swap-cache slot if it has one, else a new slot holding its contents) carrying
# PageAnonExclusive as the exclusive marker and the soft-dirty bit; the folio is freed.
# A page-cache page (shared mapping, shared anon, or an unCOWed page of a private file
# mapping) is unmapped (entry none) and reclaimed from its file (shmem.pyx
# shmem_reclaim): to a slot if the folio or the PTE is dirty, else dropped.


ctypedef struct pageout_ctx_t:
    machine_t *m
    mm_t *mm
    vma_t *v            # the VMA of the piece (the VMA array does not change here)


cdef inline bint _reclaimable(folio_t *f) noexcept nogil:
    """madvise_cold_or_pageout_pte_range + shrink_folio_list checks for an order-0 page."""
    cdef int32_t extra = (1 if f.flags & PG_pagecache else 0) + (1 if f.flags & PG_swapcache else 0)
    return (f.mapcount == 1 and f.pincount == 0
            and not (f.flags & (PG_locked | PG_ksm)) and f.refcount == 1 + extra)


cdef void _pageout_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef pageout_ctx_t *c = <pageout_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end), v
    cdef uint64_t pte
    cdef uint32_t pfn, s
    cdef folio_t *folio
    cdef bint excl, dirty
    while i < end:
        pte = table[i]
        v = vpn - first + i
        if not pte_present(pte) or pte_special(pte):
            i = next_used(table, i + 1, end)
            continue
        pfn = pte_pfn(pte)
        folio = pfn_folio(&m.mem, pfn)
        if page_is_thp(folio) or not _reclaimable(folio):   # PTE-mapped THP: skipped
            i = next_used(table, i + 1, end)
            continue
        mmu_notifier_invalidate_range(m, c.mm, MMU_NOTIFY_CLEAR, v, v + 1, NO_OWNER)
        if folio.flags & PG_anon:
            # add_to_swap (or the slot it already caches), try_to_unmap_one, pageout
            if folio.flags & PG_swapcache:
                s = folio_swap_slot(&m.swap, pfn)
            else:
                s = swap_alloc(m, folio.value)
                if s == 0:
                    return                       # kmem.oom is set
            m.swap.slots[s].count += 1           # the swap PTE's reference (swap_duplicate)
            excl = (folio.flags & PG_anon_exclusive) != 0
            table[i] = swp_entry_to_pte(s, excl, pte_soft_dirty(pte))
            folio.mapcount -= 1
            if folio.flags & PG_swapcache:
                swap_cache_del(m, pfn)           # __remove_mapping (the slot stays: count > 0)
            folio_put(&m.mem, pfn, folio)        # the last reference: freed
        else:
            # try_to_unmap_one moves the PTE dirty bit to the folio; shmem_writeout
            dirty = (folio.flags & PG_dirty) != 0 or pte_dirty(pte)
            table_clear(table, i)
            folio.mapcount -= 1
            folio_put(&m.mem, pfn, folio)        # the page cache's reference remains
            shmem_reclaim(m, m.files[c.v.file], linear_page_index(c.v, v), pfn, dirty)
            if m.kmem.oom:
                return
        i = next_used(table, i + 1, end)


cdef void _pageout_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                       int64_t hi) noexcept nogil:
    """A huge PMD wholly in the range whose THP is mapped by it alone (entire 1, no PTE
    mappings, no pins, not locked, refcount 1) is paged out whole: CLEAR over the block,
    each subpage to a new swap entry (its value; exclusive marker = AnonExclusive of the
    head; the PMD's soft-dirty) in a new PTE table, the folio freed. Anything else (a
    partial block, the huge zero folio, a shared or pinned THP) is skipped."""
    cdef pageout_ctx_t *c = <pageout_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t pmd = pmdp[0]
    cdef uint32_t h = pte_pfn(pmd), s
    cdef folio_t *head
    cdef uint64_t *t
    cdef int32_t i
    cdef bint excl, sd
    if lo != haddr or hi != haddr + HPAGE_PMD_NR or is_hzero_pfn(&m.mem, h):
        return
    head = pfn_folio(&m.mem, h)
    if thp_entire(&m.mem, h)[0] != 1 or thp_large_mapcount(&m.mem, h) != 1 \
            or head.pincount != 0 or folio_test_locked(head) or head.refcount != 1:
        return
    mmu_notifier_invalidate_range(m, c.mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_NR,
                                  NO_OWNER)
    t = table_alloc(&m.kmem)
    if t == NULL:
        return
    excl = (head.flags & PG_anon_exclusive) != 0
    sd = pte_soft_dirty(pmd)
    for i in range(HPAGE_PMD_NR):
        s = swap_alloc(m, pfn_folio(&m.mem, h + i).value)
        if s == 0:
            return                               # kmem.oom is set
        m.swap.slots[s].count += 1               # the swap PTE's reference
        table_set(t, i, swp_entry_to_pte(s, excl, sd))
    pmdp[0] = (<uint64_t><uintptr_t>t) | _PAGE_TABLE
    thp_entire(&m.mem, h)[0] = 0
    thp_mm_sub(&m.mem, h, mm_id_of(c.mm), 1)
    folio_put(&m.mem, h, head)                   # the last reference: freed


cdef void pageout_range(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                        int64_t end) noexcept nogil:
    """madvise_pageout over [start, end) of VMA idx (walk_page_range)."""
    cdef pageout_ctx_t ctx
    ctx.m = m
    ctx.mm = mm
    ctx.v = &mm.vmas[idx]
    walk_page_range(mm.pgd, start, end, _pageout_run, _pageout_pmd, &ctx)
