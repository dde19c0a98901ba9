# pagetable: lookup, on-demand allocation, range walks and table freeing.


cdef uint64_t *pte_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The PTE slot of vpn, or NULL when a table on the way is missing (no allocation)."""
    cdef uint64_t e = pgd[level_index(vpn, PGDIR_SHIFT)]
    if e == 0:
        return NULL
    e = entry_table(e)[level_index(vpn, PUD_SHIFT)]
    if e == 0 or pud_trans_huge(e):
        return NULL                              # no PMD table (pud_none or a PUD leaf)
    e = entry_table(e)[level_index(vpn, PMD_SHIFT)]
    if e == 0 or pmd_trans_huge(e):
        return NULL                              # pmd_none, or a huge leaf (huge_pmd_at)
    return entry_table(e) + level_index(vpn, PTE_SHIFT)


cdef uint64_t *pmd_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The PMD slot of vpn (a table pointer, a huge leaf or none), NULL when the PUD or
    PMD table is missing (no allocation); a PUD leaf has no PMD table: NULL."""
    cdef uint64_t e = pgd[level_index(vpn, PGDIR_SHIFT)]
    if e == 0:
        return NULL
    e = entry_table(e)[level_index(vpn, PUD_SHIFT)]
    if e == 0 or pud_trans_huge(e):
        return NULL
    return entry_table(e) + level_index(vpn, PMD_SHIFT)


cdef uint64_t *pud_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The PUD slot of vpn (a PMD-table pointer, a PUD leaf or none), NULL when the PUD
    table is missing (no allocation)."""
    cdef uint64_t e = pgd[level_index(vpn, PGDIR_SHIFT)]
    if e == 0:
        return NULL
    return entry_table(e) + level_index(vpn, PUD_SHIFT)


cdef uint64_t *pud_alloc_map(uint64_t *pgd, kmem_t *k, int64_t vpn) noexcept nogil:
    """The PUD slot of vpn, allocating the PUD table if missing (pud_alloc); NULL on OOM."""
    cdef uint64_t *pud = _table_populate(pgd, level_index(vpn, PGDIR_SHIFT), k)
    if pud == NULL:
        return NULL
    return pud + level_index(vpn, PUD_SHIFT)


cdef uint64_t *huge_pud_at(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The slot of the PUD leaf mapping vpn, NULL when there is none."""
    cdef uint64_t *pudp = pud_offset_map(pgd, vpn)
    if pudp != NULL and pud_trans_huge(pudp[0]):
        return pudp
    return NULL


cdef bint pmd_table_present(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """vpn's slot has a PMD table (its PUD entry is present and not a leaf)."""
    cdef uint64_t *pudp = pud_offset_map(pgd, vpn)
    return pudp != NULL and pudp[0] != 0 and not pud_trans_huge(pudp[0])


cdef int64_t pud_first_present(uint64_t *pgd, int64_t start, int64_t end) noexcept nogil:
    """The first vpn of [start, end) whose slot's PUD entry is not none (a PMD table or
    a PUD leaf): the slot's first vpn, or start when that slot holds start; -1 if none."""
    cdef int64_t g, glast, s, slast, b
    cdef uint64_t *pud
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start >= end:
        return -1
    glast = (end - 1) >> PGDIR_SHIFT
    g = next_used(pgd, start >> PGDIR_SHIFT, glast + 1)
    while g <= glast:
        pud = entry_table(pgd[g])
        b = g << PGDIR_SHIFT
        slast = (min(end, b + (<int64_t>1 << PGDIR_SHIFT)) - 1 - b) >> PUD_SHIFT
        s = next_used(pud, (max(start, b) - b) >> PUD_SHIFT, slast + 1)
        if s <= slast:
            return max(start, b + (s << PUD_SHIFT))
        g = next_used(pgd, g + 1, glast + 1)
    return -1


cdef int pmd_tables_copy(uint64_t *src, uint64_t *dst, kmem_t *k, int64_t start,
                         int64_t end) noexcept nogil:
    """fork (copy_pud_range -> copy_pmd_range's pmd_alloc): dst gets a PMD table for every
    slot overlapping [start, end) where src has one, even an empty one. -1 on OOM."""
    cdef int64_t g, glast, s, slast, b
    cdef uint64_t *pud
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start >= end:
        return 0
    glast = (end - 1) >> PGDIR_SHIFT
    g = next_used(src, start >> PGDIR_SHIFT, glast + 1)
    while g <= glast:
        pud = entry_table(src[g])
        b = g << PGDIR_SHIFT
        slast = (min(end, b + (<int64_t>1 << PGDIR_SHIFT)) - 1 - b) >> PUD_SHIFT
        s = next_used(pud, (max(start, b) - b) >> PUD_SHIFT, slast + 1)
        while s <= slast:
            if not pud_trans_huge(pud[s]) and \
                    pmd_alloc_map(dst, k, b + (s << PUD_SHIFT)) == NULL:
                return -1
            s = next_used(pud, s + 1, slast + 1)
        g = next_used(src, g + 1, glast + 1)
    return 0


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
    if pud_trans_huge(pud[level_index(vpn, PUD_SHIFT)]):
        k.oom = 1                                # a model bug: a PUD leaf is handled first
        return NULL
    cdef uint64_t *pmd = _table_populate(pud, level_index(vpn, PUD_SHIFT), k)
    if pmd == NULL:
        return NULL
    return pmd + level_index(vpn, PMD_SHIFT)


cdef int64_t _walk_level(uint64_t *table, int shift, int64_t base, int64_t start,
                         int64_t end, pte_run_fn fn, pmd_fn_t pmd_fn, pud_fn_t pud_fn,
                         void *ctx) noexcept nogil:
    """Visit the used entries of one upper table (its index bits start at `shift`; it
    maps vpns from `base`) that cover [start, end), descending to the PTE tables.
    fn (if set) gets each PTE run, pmd_fn (if set) each huge PMD, pud_fn (if set) each
    PUD leaf (without them the leaves are passed over). Return: PTE runs passed to fn."""
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
        elif shift == PUD_SHIFT and pud_trans_huge(table[i]):
            if pud_fn != NULL:                   # a PUD leaf: no PMD table below
                pud_fn(ctx, &table[i], b, lo, hi)
        else:
            child = entry_table(table[i])
            runs += _walk_level(child, shift - PMD_SHIFT, b, lo, hi, fn, pmd_fn, pud_fn, ctx)
        i = next_used(table, i + 1, last + 1)
    return runs


cdef int64_t walk_pte_runs(uint64_t *pgd, int64_t start, int64_t end,
                           pte_run_fn fn, void *ctx) noexcept nogil:
    """Call fn on every run of PTEs of [start, end) that has a PTE table, in vpn order;
    only used upper entries are visited, huge PMDs and PUD leaves are passed over
    (walk_page_range without pmd_entry). Return: runs visited."""
    return walk_page_range_pud(pgd, start, end, fn, NULL, NULL, ctx)


cdef int64_t walk_page_range(uint64_t *pgd, int64_t start, int64_t end, pte_run_fn fn,
                             pmd_fn_t pmd_fn, void *ctx) noexcept nogil:
    """walk_pte_runs, and pmd_fn on each huge PMD met (see pmd_fn_t); PUD leaves are
    passed over (only pfnmap VMAs hold them: walkers that reach those use
    walk_page_range_pud)."""
    return walk_page_range_pud(pgd, start, end, fn, pmd_fn, NULL, ctx)


cdef int64_t walk_page_range_pud(uint64_t *pgd, int64_t start, int64_t end, pte_run_fn fn,
                                 pmd_fn_t pmd_fn, pud_fn_t pud_fn, void *ctx) noexcept nogil:
    """walk_page_range, and pud_fn on each PUD leaf met (see pud_fn_t)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN                       # nothing maps past 4-level reach
    if start >= end:
        return 0
    return _walk_level(pgd, PGDIR_SHIFT, 0, start, end, fn, pmd_fn, pud_fn, ctx)


# Table-freeing modes of _free_level:
#   FREE_EMPTY: every table left empty goes, bottom up (device mirror tables);
#   FREE_PTE: empty PTE tables only (PT_RECLAIM: upper tables stay);
#   FREE_UNMAPPED: free_pgtables after munmap: an empty PTE table goes when pred allows
#     its block, a PMD table (with the tables below) when pred allows its slot.
# A PUD table left empty may go in every mode (unobservable); the PGD stays.
cdef enum:
    FREE_EMPTY = 0
    FREE_PTE = 1
    FREE_UNMAPPED = 2


cdef bint _pmd_table_release(uint64_t *pmd, kmem_t *k) noexcept nogil:
    """Free the PTE tables below PMD table pmd and empty it, if every one is empty and no
    huge PMD is left (a model bug otherwise: then nothing is freed). True when done."""
    cdef int64_t i = next_used(pmd, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        if pmd_trans_huge(pmd[i]) or not table_empty(entry_table(pmd[i])):
            return False
        i = next_used(pmd, i + 1, PTRS_PER_TABLE)
    i = next_used(pmd, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        table_free(k, entry_table(pmd[i]))
        table_clear(pmd, i)
        i = next_used(pmd, i + 1, PTRS_PER_TABLE)
    return True


cdef void _free_level(uint64_t *table, int shift, int64_t base, int64_t start, int64_t end,
                      kmem_t *k, int mode, table_pred_fn pred, void *ctx) noexcept nogil:
    """Free the tables below `table` touching [start, end) as `mode` says (see above)."""
    cdef int64_t span = (<int64_t>1) << shift
    cdef int64_t last = (end - 1 - base) >> shift
    cdef int64_t i = next_used(table, (start - base) >> shift, last + 1)
    cdef int64_t b, lo, hi
    cdef uint64_t *child
    cdef bint go
    while i <= last:
        b = base + i * span
        lo = max(start, b)
        hi = min(end, b + span)
        if shift == PMD_SHIFT:
            if not pmd_trans_huge(table[i]):
                child = entry_table(table[i])
                if table_empty(child) and (mode != FREE_UNMAPPED or pred(ctx, b, span)):
                    table_clear(table, i)
                    table_free(k, child)
        elif shift == PUD_SHIFT and pud_trans_huge(table[i]):
            pass                                 # a PUD leaf: no table below
        else:
            child = entry_table(table[i])
            _free_level(child, shift - PMD_SHIFT, b, lo, hi, k, mode, pred, ctx)
            if shift == PUD_SHIFT:               # child is a PMD table
                if mode == FREE_EMPTY:
                    go = table_empty(child)
                elif mode == FREE_UNMAPPED:
                    go = pred(ctx, b, span) and _pmd_table_release(child, k)
                else:
                    go = False                   # PT_RECLAIM frees PTE tables only
            else:                                # child is a PUD table
                go = table_empty(child)
            if go:
                table_clear(table, i)
                table_free(k, child)
        i = next_used(table, i + 1, last + 1)


cdef void free_pgtables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil:
    """Free the tables touching [start, end) that hold no entry any more, bottom up
    (device mirror tables: hmm.pyx)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start < end:
        _free_level(pgd, PGDIR_SHIFT, 0, start, end, k, FREE_EMPTY, NULL, NULL)


cdef void free_pte_tables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil:
    """Free the empty PTE tables of the blocks touching [start, end); PMD tables stay
    (MADV_DONTNEED's PT_RECLAIM: try_to_free_pte)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start < end:
        _free_level(pgd, PGDIR_SHIFT, 0, start, end, k, FREE_PTE, NULL, NULL)


cdef void free_pgtables_if(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end,
                           table_pred_fn pred, void *ctx) noexcept nogil:
    """free_pgtables after munmap of [start, end): an empty PTE table of a block touching
    the range goes when pred(block) allows it; the PMD table of a slot touching it, with
    every table below, when pred(slot) allows it (see table_pred_fn)."""
    if end > PGTABLE_SPAN:
        end = PGTABLE_SPAN
    if start < end:
        _free_level(pgd, PGDIR_SHIFT, 0, start, end, k, FREE_UNMAPPED, pred, ctx)


cdef void _table_free_tree(uint64_t *table, int level, kmem_t *k) noexcept nogil:
    """Free table and everything below it; level 0 is a PTE table (already zapped)."""
    cdef int64_t i = next_used(table, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        if level > 0 and not (level <= 2 and pmd_trans_huge(table[i])):   # not a leaf
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
        if not (level <= 2 and pmd_trans_huge(table[i])):   # a huge PMD or PUD leaf
            n += _table_count(entry_table(table[i]), level - 1)
        i = next_used(table, i + 1, PTRS_PER_TABLE)
    return n


cdef int64_t pgtable_count(uint64_t *pgd) noexcept nogil:
    """Number of page-table pages under pgd, pgd included (for memory reports)."""
    return _table_count(pgd, 3)
