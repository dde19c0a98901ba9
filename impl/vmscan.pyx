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
#
# Large folios (folio-split.md, 6.18 madvise_cold_or_pageout_pte_range): a huge PMD of
# a THP that may be mapped shared is skipped; a whole block goes out whole; a partial
# one is split (split_folio, folio_split.pyx; locked: skipped) and its part of the
# range walked at PTE level. A PTE-mapped THP page starts a batch (folio_pte_batch):
# a batch short of the whole folio splits it (unless maybe shared or locked; a failed
# split skips the batch) and the same vpn is looked at again; a batch of all 512 PTEs
# pages the folio out whole when this batch is its only mapping and nothing else
# holds a reference.


ctypedef struct pageout_ctx_t:
    machine_t *m
    mm_t *mm
    vma_t *v            # the VMA of the piece (the VMA array does not change here)


cdef inline bint _reclaimable(folio_t *f) noexcept nogil:
    """madvise_cold_or_pageout_pte_range + shrink_folio_list checks for an order-0 page."""
    cdef int32_t extra = (1 if f.flags & PG_pagecache else 0) + (1 if f.flags & PG_swapcache else 0)
    return (f.mapcount == 1 and f.pincount == 0
            and not (f.flags & (PG_locked | PG_ksm)) and f.refcount == 1 + extra)


cdef int64_t _thp_pte_batch(uint64_t *table, int64_t i, int64_t end, uint32_t pfn,
                            uint32_t h) noexcept nogil:
    """madvise_folio_pte_batch (folio_pte_batch_flags, FPB_MERGE_YOUNG_DIRTY): how many
    entries from slot i on (below end) are present PTEs mapping pfn, pfn + 1, ... of the
    THP at h, at most to its last page; write/dirty/soft-dirty/young are ignored."""
    cdef int64_t nr = 1
    cdef int64_t lim = min(end - i, <int64_t>(HPAGE_PMD_NR - (pfn - h)))
    cdef uint64_t pte
    while nr < lim:
        pte = table[i + nr]
        if not pte_present(pte) or pte_special(pte) or pte_pfn(pte) != pfn + nr:
            break
        nr += 1
    return nr


cdef void _pageout_pte_mapped_thp(pageout_ctx_t *c, uint64_t *table, int64_t i,
                                  int64_t base, uint32_t h) noexcept nogil:
    """A THP whose 512 pages the PTEs table[i..i+512) map in order (so i == 0): kept
    unless that is its only mapping (folio_mapcount == folio_nr_pages) and nothing else
    references it (no pin, refcount 512: shrink_folio_list) and it is not locked; else
    it goes out whole: CLEAR over the folio (try_to_unmap_one), each PTE its own swap
    entry (exclusive marker = that page's AnonExclusive, the PTE's soft-dirty), the THP
    freed."""
    cdef machine_t *m = c.m
    cdef folio_t *head = pfn_folio(&m.mem, h)
    cdef folio_t *sub
    cdef uint32_t s
    cdef int32_t j
    if thp_large_mapcount(&m.mem, h) != HPAGE_PMD_NR or head.refcount != HPAGE_PMD_NR \
            or head.pincount != 0 or folio_test_locked(head):
        return
    mmu_notifier_invalidate_range(m, c.mm, MMU_NOTIFY_CLEAR, max(base, c.v.start),
                                  min(base + HPAGE_PMD_NR, c.v.end), NO_OWNER)
    for j in range(HPAGE_PMD_NR):
        sub = pfn_folio(&m.mem, h + j)
        s = swap_alloc(m, sub.value)
        if s == 0:
            return                               # kmem.oom is set
        m.swap.slots[s].count += 1               # the swap PTE's reference (swap_duplicate)
        table[i + j] = swp_entry_to_pte(s, (sub.flags & PG_anon_exclusive) != 0,
                                        pte_soft_dirty(table[i + j]))
        sub.mapcount = 0                         # folio_remove_rmap_pte
    thp_mm_sub(&m.mem, h, mm_id_of(c.mm), HPAGE_PMD_NR)
    head.refcount = 1
    folio_put(&m.mem, h, head)                   # the last reference: freed


cdef void _pageout_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef pageout_ctx_t *c = <pageout_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end), v
    cdef uint64_t pte
    cdef uint32_t pfn, s, h
    cdef folio_t *folio
    cdef bint excl, dirty
    cdef int64_t nr
    cdef int err
    while i < end:
        pte = table[i]
        v = vpn - first + i
        if not pte_present(pte) or pte_special(pte):
            i = next_used(table, i + 1, end)
            continue
        pfn = pte_pfn(pte)
        folio = pfn_folio(&m.mem, pfn)
        if page_is_thp(folio):                   # folio_test_large
            h = pfn & ~(<uint32_t>HPAGE_PMD_MASK)
            nr = _thp_pte_batch(table, i, end, pfn, h)
            if nr == HPAGE_PMD_NR:               # fully mapped here: out whole, or kept
                _pageout_pte_mapped_thp(c, table, i, v, h)
                if m.kmem.oom:
                    return
            elif not folio_maybe_mapped_shared(&m.mem, h) \
                    and not folio_test_locked(pfn_folio(&m.mem, h)):   # folio_trylock
                err = split_folio(m, h, v - (pfn - h))
                if err < 0:
                    return                       # kmem.oom is set
                if err == 0:
                    continue                     # nr = 0: the same vpn again, order 0 now
            i = next_used(table, i + nr, end)    # skipped (shared, locked, refused)
            continue
        if not _reclaimable(folio):
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
    """The PMD branch. The huge zero folio and a THP that may be mapped shared are
    skipped. A huge PMD wholly in the range whose THP is mapped by it alone (entire 1,
    no PTE mappings, no pins, not locked, refcount 1) is paged out whole: CLEAR over the
    block, each subpage to a new swap entry (its value; exclusive marker = AnonExclusive
    of the head; the PMD's soft-dirty) in a new PTE table, the folio freed; a pinned or
    otherwise referenced one is kept. A partial block is split first (see below)."""
    cdef pageout_ctx_t *c = <pageout_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t pmd = pmdp[0]
    cdef uint32_t h = pte_pfn(pmd), s
    cdef folio_t *head
    cdef uint64_t *t
    cdef int32_t i
    cdef bint excl, sd
    if is_hzero_pfn(&m.mem, h) or folio_maybe_mapped_shared(&m.mem, h):
        return                                   # huge zero; "do not interfere" with others
    head = pfn_folio(&m.mem, h)
    if lo != haddr or hi != haddr + HPAGE_PMD_NR:
        # a partial block: folio_lock (would sleep: a locked THP is skipped), split_folio;
        # success -> the walk goes on with the PTEs of [lo, hi) (regular_folio), failure
        # -> the block is skipped
        if not folio_test_locked(head):
            split_folio(m, h, haddr)             # -1 (OOM): kmem.oom is set
        return
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
