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
    if e == 0:
        return NULL
    return entry_table(e) + level_index(vpn, PTE_SHIFT)


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
    cdef uint64_t *pud = _table_populate(pgd, level_index(vpn, PGDIR_SHIFT), k)
    if pud == NULL:
        return NULL
    cdef uint64_t *pmd = _table_populate(pud, level_index(vpn, PUD_SHIFT), k)
    if pmd == NULL:
        return NULL
    cdef uint64_t *pte = _table_populate(pmd, level_index(vpn, PMD_SHIFT), k)
    if pte == NULL:
        return NULL
    return pte + level_index(vpn, PTE_SHIFT)


cdef int64_t _walk_level(uint64_t *table, int shift, int64_t base, int64_t start,
                         int64_t end, pte_run_fn fn, void *ctx, kmem_t *k) noexcept nogil:
    """Visit the used entries of one upper table (its index bits start at `shift`; it
    maps vpns from `base`) that cover [start, end), descending to the PTE tables.
    fn (if set) gets each PTE run; k (if set) frees each child table left empty,
    bottom up (pte/pmd/pud_free_tlb). Return: PTE runs passed to fn."""
    cdef int64_t span = (<int64_t>1) << shift
    cdef int64_t last = (end - 1 - base) >> shift
    cdef int64_t i = next_used(table, (start - base) >> shift, last + 1)
    cdef int64_t runs = 0, b, lo, hi
    cdef uint64_t *child
    while i <= last:
        b = base + i * span
        lo = max(start, b)
        hi = min(end, b + span)
        child = entry_table(table[i])
        if shift == PMD_SHIFT:                   # child is a PTE table
            if fn != NULL:
                fn(ctx, child + (lo - b), lo, hi - lo)
                runs += 1
        else:
            runs += _walk_level(child, shift - PMD_SHIFT, b, lo, hi, fn, ctx, k)
        if k != NULL and table_empty(child):
            table_clear(table, i)
            table_free(k, child)
        i = next_used(table, i + 1, last + 1)
    return runs


cdef int64_t walk_pte_runs(uint64_t *pgd, int64_t start, int64_t end,
                           pte_run_fn fn, void *ctx) noexcept nogil:
    """Call fn on every run of PTEs of [start, end) that has a PTE table, in vpn order;
    only used upper entries are visited (walk_page_range). Return: runs visited."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN                       # nothing maps past 4-level reach
    if start >= end:
        return 0
    return _walk_level(pgd, PGDIR_SHIFT, 0, start, end, fn, ctx, NULL)


cdef void free_pgtables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil:
    """Free the tables touching [start, end) that hold no entry any more, bottom up
    (free_pgtables after an unmap; here by emptiness instead of VMA floor/ceiling)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start < end:
        _walk_level(pgd, PGDIR_SHIFT, 0, start, end, NULL, NULL, k)


cdef void _table_free_tree(uint64_t *table, int level, kmem_t *k) noexcept nogil:
    """Free table and everything below it; level 0 is a PTE table (already zapped)."""
    cdef int64_t i = next_used(table, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        if level > 0:
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
