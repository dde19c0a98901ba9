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


cdef int64_t walk_pte_runs(uint64_t *pgd, int64_t start, int64_t end,
                           pte_run_fn fn, void *ctx) noexcept nogil:
    """Call fn on every run of PTEs of [start, end) that has a PTE table, in vpn order;
    only used upper entries are visited (walk_page_range). Return: runs visited."""
    cdef int64_t runs = 0, i, j, l, last_i, last_j, last_l
    cdef int64_t b1, b2, b3, lo1, hi1, lo2, hi2, lo3, hi3
    cdef uint64_t *pud
    cdef uint64_t *pmd
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN                       # nothing maps past 4-level reach
    if start >= end:
        return 0
    last_i = (end - 1) >> PGDIR_SHIFT
    i = next_used(pgd, start >> PGDIR_SHIFT, last_i + 1)
    while i <= last_i:
        b1 = i << PGDIR_SHIFT
        lo1 = max(start, b1)
        hi1 = min(end, b1 + (1 << PGDIR_SHIFT))
        pud = entry_table(pgd[i])
        last_j = (hi1 - 1 - b1) >> PUD_SHIFT
        j = next_used(pud, (lo1 - b1) >> PUD_SHIFT, last_j + 1)
        while j <= last_j:
            b2 = b1 + (j << PUD_SHIFT)
            lo2 = max(lo1, b2)
            hi2 = min(hi1, b2 + (1 << PUD_SHIFT))
            pmd = entry_table(pud[j])
            last_l = (hi2 - 1 - b2) >> PMD_SHIFT
            l = next_used(pmd, (lo2 - b2) >> PMD_SHIFT, last_l + 1)
            while l <= last_l:
                b3 = b2 + (l << PMD_SHIFT)
                lo3 = max(lo2, b3)
                hi3 = min(hi2, b3 + PTRS_PER_TABLE)
                fn(ctx, entry_table(pmd[l]) + (lo3 - b3), lo3, hi3 - lo3)
                runs += 1
                l = next_used(pmd, l + 1, last_l + 1)
            j = next_used(pud, j + 1, last_j + 1)
        i = next_used(pgd, i + 1, last_i + 1)
    return runs


cdef void free_pgtables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil:
    """Free the tables touching [start, end) that hold no entry any more, bottom up
    (free_pgtables after an unmap; here by emptiness instead of VMA floor/ceiling)."""
    cdef int64_t i, j, l, last_i, last_j, last_l, b1, b2, lo1, hi1, lo2, hi2
    cdef uint64_t *pud
    cdef uint64_t *pmd
    cdef uint64_t *pte
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start >= end:
        return
    last_i = (end - 1) >> PGDIR_SHIFT
    i = next_used(pgd, start >> PGDIR_SHIFT, last_i + 1)
    while i <= last_i:
        b1 = i << PGDIR_SHIFT
        lo1 = max(start, b1)
        hi1 = min(end, b1 + (1 << PGDIR_SHIFT))
        pud = entry_table(pgd[i])
        last_j = (hi1 - 1 - b1) >> PUD_SHIFT
        j = next_used(pud, (lo1 - b1) >> PUD_SHIFT, last_j + 1)
        while j <= last_j:
            b2 = b1 + (j << PUD_SHIFT)
            lo2 = max(lo1, b2)
            hi2 = min(hi1, b2 + (1 << PUD_SHIFT))
            pmd = entry_table(pud[j])
            last_l = (hi2 - 1 - b2) >> PMD_SHIFT
            l = next_used(pmd, (lo2 - b2) >> PMD_SHIFT, last_l + 1)
            while l <= last_l:
                pte = entry_table(pmd[l])
                if table_empty(pte):
                    table_clear(pmd, l)
                    table_free(k, pte)           # pte_free_tlb
                l = next_used(pmd, l + 1, last_l + 1)
            if table_empty(pmd):
                table_clear(pud, j)
                table_free(k, pmd)               # pmd_free_tlb
            j = next_used(pud, j + 1, last_j + 1)
        if table_empty(pud):
            table_clear(pgd, i)
            table_free(k, pud)                   # pud_free_tlb
        i = next_used(pgd, i + 1, last_i + 1)


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
