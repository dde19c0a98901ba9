# pagetable: lookup, on-demand allocation, range walks and table freeing.


cdef uint64_t *pte_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The PTE slot of vpn, or NULL when a table on the way is missing (no allocation)."""
    cdef uint64_t e = pgd[level_index(vpn, PGDIR_SHIFT)]
    if e == 0:
        return NULL
    e = entry_table(e)[level_index(vpn, PUD_SHIFT)]
    if e == 0:
        return NULL
    e = entry_table(e)[level_index(vpn, PMD_SHIFT)]
    if e == 0 or pmd_trans_huge(e):
        return NULL                              # pmd_none, or a huge leaf (huge_pmd_at)
    return entry_table(e) + level_index(vpn, PTE_SHIFT)


cdef uint64_t *pmd_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The PMD slot of vpn (a table pointer, a huge leaf or none), NULL when the PUD or
    PMD table is missing (no allocation)."""
    cdef uint64_t e = pgd[level_index(vpn, PGDIR_SHIFT)]
    if e == 0:
        return NULL
    e = entry_table(e)[level_index(vpn, PUD_SHIFT)]
    if e == 0:
        return NULL
    return entry_table(e) + level_index(vpn, PMD_SHIFT)


cdef uint64_t *huge_pmd_at(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The slot of the huge PMD mapping vpn, NULL when there is none."""
    cdef uint64_t *pmdp = pmd_offset_map(pgd, vpn)
    if pmdp != NULL and pmd_trans_huge(pmdp[0]):
        return pmdp
    return NULL


cdef inline uint64_t *_table_populate(uint64_t *table, int64_t i, kmem_t *k) noexcept nogil:
    """The table entry i points to, allocated first if the entry is none (__pte_alloc)."""
    cdef uint64_t *t
    if table[i] == 0:
        t = table_alloc(k)
        if t == NULL:
            return NULL
        table_set(table, i, (<uint64_t><uintptr_t>t) | _PAGE_TABLE)
        return t
    return entry_table(table[i])


cdef uint64_t *pte_alloc_map(uint64_t *pgd, kmem_t *k, int64_t vpn) noexcept nogil:
    """The PTE slot of vpn, allocating missing PUD/PMD/PTE tables; NULL on OOM."""
    cdef uint64_t *pmdp = pmd_alloc_map(pgd, k, vpn)
    if pmdp == NULL:
        return NULL
    if pmd_trans_huge(pmdp[0]):
        k.oom = 1                                # a model bug: split before PTE access
        return NULL
    cdef uint64_t *pte = _table_populate(pmdp - level_index(vpn, PMD_SHIFT),
                                         level_index(vpn, PMD_SHIFT), k)
    if pte == NULL:
        return NULL
    return pte + level_index(vpn, PTE_SHIFT)


cdef uint64_t *pmd_alloc_map(uint64_t *pgd, kmem_t *k, int64_t vpn) noexcept nogil:
    """The PMD slot of vpn, allocating missing PUD/PMD tables; NULL on OOM."""
    cdef uint64_t *pud = _table_populate(pgd, level_index(vpn, PGDIR_SHIFT), k)
    if pud == NULL:
        return NULL
    cdef uint64_t *pmd = _table_populate(pud, level_index(vpn, PUD_SHIFT), k)
    if pmd == NULL:
        return NULL
    return pmd + level_index(vpn, PMD_SHIFT)


cdef int64_t _walk_level(uint64_t *table, int shift, int64_t base, int64_t start,
                         int64_t end, pte_run_fn fn, pmd_fn_t pmd_fn, void *ctx) noexcept nogil:
    """Visit the used entries of one upper table (its index bits start at `shift`; it
    maps vpns from `base`) that cover [start, end), descending to the PTE tables.
    fn (if set) gets each PTE run, pmd_fn (if set) each huge PMD (without it huge PMDs
    are passed over). Return: PTE runs passed to fn."""
    cdef int64_t span = (<int64_t>1) << shift
    cdef int64_t last = (end - 1 - base) >> shift
    cdef int64_t i = next_used(table, (start - base) >> shift, last + 1)
    cdef int64_t runs = 0, b, lo, hi
    cdef uint64_t *child
    while i <= last:
        b = base + i * span
        lo = max(start, b)
        hi = min(end, b + span)
        if shift == PMD_SHIFT:                   # child is a PTE table or a huge leaf
            if pmd_trans_huge(table[i]):
                if pmd_fn == NULL:
                    i = next_used(table, i + 1, last + 1)
                    continue
                pmd_fn(ctx, &table[i], b, lo, hi)
                if table[i] == 0 or pmd_trans_huge(table[i]):
                    i = next_used(table, i + 1, last + 1)
                    continue                     # zapped or kept; else split: its PTEs
            if fn != NULL:
                fn(ctx, entry_table(table[i]) + (lo - b), lo, hi - lo)
                runs += 1
        else:
            child = entry_table(table[i])
            runs += _walk_level(child, shift - PMD_SHIFT, b, lo, hi, fn, pmd_fn, ctx)
        i = next_used(table, i + 1, last + 1)
    return runs


cdef int64_t walk_pte_runs(uint64_t *pgd, int64_t start, int64_t end,
                           pte_run_fn fn, void *ctx) noexcept nogil:
    """Call fn on every run of PTEs of [start, end) that has a PTE table, in vpn order;
    only used upper entries are visited, huge PMDs are passed over (walk_page_range
    without pmd_entry). Return: runs visited."""
    return walk_page_range(pgd, start, end, fn, NULL, ctx)


cdef int64_t walk_page_range(uint64_t *pgd, int64_t start, int64_t end, pte_run_fn fn,
                             pmd_fn_t pmd_fn, void *ctx) noexcept nogil:
    """walk_pte_runs, and pmd_fn on each huge PMD met (see pmd_fn_t)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN                       # nothing maps past 4-level reach
    if start >= end:
        return 0
    return _walk_level(pgd, PGDIR_SHIFT, 0, start, end, fn, pmd_fn, ctx)


cdef void _free_level(uint64_t *table, int shift, int64_t base, int64_t start, int64_t end,
                      kmem_t *k, table_pred_fn pred, void *ctx) noexcept nogil:
    """Free the empty PTE tables of the blocks touching [start, end) that pred allows
    (all when pred is NULL), then every upper table left empty, bottom up."""
    cdef int64_t span = (<int64_t>1) << shift
    cdef int64_t last = (end - 1 - base) >> shift
    cdef int64_t i = next_used(table, (start - base) >> shift, last + 1)
    cdef int64_t b, lo, hi
    cdef uint64_t *child
    while i <= last:
        b = base + i * span
        lo = max(start, b)
        hi = min(end, b + span)
        if shift == PMD_SHIFT:
            if not pmd_trans_huge(table[i]):
                child = entry_table(table[i])
                if table_empty(child) and (pred == NULL or pred(ctx, b)):
                    table_clear(table, i)
                    table_free(k, child)
        else:
            child = entry_table(table[i])
            _free_level(child, shift - PMD_SHIFT, b, lo, hi, k, pred, ctx)
            if table_empty(child):
                table_clear(table, i)
                table_free(k, child)
        i = next_used(table, i + 1, last + 1)


cdef void free_pgtables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil:
    """Free the tables touching [start, end) that hold no entry any more, bottom up
    (MADV_DONTNEED's PT_RECLAIM; device mirror tables)."""
    free_pgtables_if(pgd, k, start, end, NULL, NULL)


cdef void free_pgtables_if(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end,
                           table_pred_fn pred, void *ctx) noexcept nogil:
    """free_pgtables with a predicate on the PTE tables (munmap: no VMA left in the block)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start < end:
        _free_level(pgd, PGDIR_SHIFT, 0, start, end, k, pred, ctx)


cdef void _table_free_tree(uint64_t *table, int level, kmem_t *k) noexcept nogil:
    """Free table and everything below it; level 0 is a PTE table (already zapped)."""
    cdef int64_t i = next_used(table, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        if level > 0 and not (level == 1 and pmd_trans_huge(table[i])):
            _table_free_tree(entry_table(table[i]), level - 1, k)
        table_clear(table, i)
        i = next_used(table, i + 1, PTRS_PER_TABLE)
    table_free(k, table)


cdef void pgd_free_all(uint64_t *pgd, kmem_t *k) noexcept nogil:
    """Free every table below pgd and pgd itself (exit_mmap: entries already zapped)."""
    _table_free_tree(pgd, 3, k)


cdef int64_t _table_count(uint64_t *table, int level) noexcept nogil:
    cdef int64_t n = 1
    cdef int64_t i
    if level == 0:
        return 1
    i = next_used(table, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        if not (level == 1 and pmd_trans_huge(table[i])):
            n += _table_count(entry_table(table[i]), level - 1)
        i = next_used(table, i + 1, PTRS_PER_TABLE)
    return n


cdef int64_t pgtable_count(uint64_t *pgd) noexcept nogil:
    """Number of page-table pages under pgd, pgd included (for memory reports)."""
    return _table_count(pgd, 3)


cdef int64_t _first_used_level(uint64_t *table, int shift, int64_t base, int64_t start,
                               int64_t end) noexcept nogil:
    """The first vpn of [start, end) with a non-none PTE below the upper table `table`
    (index bits from `shift`, mapping vpns from `base`), -1 if none. Empty tables left
    by zaps are descended and passed over."""
    cdef int64_t span = (<int64_t>1) << shift
    cdef int64_t last = (end - 1 - base) >> shift
    cdef int64_t i = next_used(table, (start - base) >> shift, last + 1)
    cdef int64_t b, lo, hi, j
    cdef uint64_t *child
    while i <= last:
        b = base + i * span
        lo = max(start, b)
        hi = min(end, b + span)
        if shift == PMD_SHIFT and pmd_trans_huge(table[i]):
            return lo                            # a huge PMD: an entry at its block
        child = entry_table(table[i])
        if shift == PMD_SHIFT:                   # child is a PTE table
            j = next_used(child, lo - b, hi - b)
            if j < hi - b:
                return b + j
        else:
            j = _first_used_level(child, shift - PMD_SHIFT, b, lo, hi)
            if j >= 0:
                return j
        i = next_used(table, i + 1, last + 1)
    return -1


cdef int64_t pte_first_used(uint64_t *pgd, int64_t start, int64_t end) noexcept nogil:
    """The first vpn in [start, end) holding any entry (present or not), -1 if none."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start >= end:
        return -1
    return _first_used_level(pgd, PGDIR_SHIFT, 0, start, end)
