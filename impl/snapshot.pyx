# snapshot: page-table walk that lists every non-none entry (a pagemap read).
from libc.stdlib cimport realloc, free


cdef bint _push(entry_buf_t *buf, int64_t vpn, uint64_t pte, int32_t level=0) noexcept nogil:
    """Append one item, growing the buffer; False (buf.oom set) when that fails."""
    cdef int64_t cap
    cdef entry_t *items
    if buf.n == buf.cap:
        cap = 1024 if buf.cap == 0 else buf.cap * 2
        items = <entry_t *>realloc(buf.items, cap * sizeof(entry_t))
        if items == NULL:
            buf.oom = 1
            return False
        buf.items = items
        buf.cap = cap
    buf.items[buf.n].vpn = vpn
    buf.items[buf.n].pte = pte
    buf.items[buf.n].level = level
    buf.n += 1
    return True


cdef void _collect_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef entry_buf_t *buf = <entry_buf_t *>ctx
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end)
    while i < end:
        if not _push(buf, vpn - first + i, table[i]):
            return
        i = next_used(table, i + 1, end)


cdef void _collect_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                       int64_t hi) noexcept nogil:
    """A huge PMD: one item (haddr, the PMD entry: pmd_trans_huge tells it apart)."""
    _push(<entry_buf_t *>ctx, haddr, pmdp[0], 1)


cdef void _collect_pud(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                       int64_t hi) noexcept nogil:
    """A PUD leaf: one item (base, the PUD entry, level 2)."""
    _push(<entry_buf_t *>ctx, base, pudp[0], 2)


cdef void collect_entries(mm_t *mm, entry_buf_t *buf) noexcept nogil:
    """Append (vpn, pte, level) for every non-none entry of mm in vpn order; a huge PMD
    (PUD leaf) is one item at its block's (slot's) first vpn."""
    walk_page_range_pud(mm.pgd, 0, TASK_SIZE_PAGES, _collect_run, _collect_pmd,
                        _collect_pud, buf)


cdef void entry_buf_free(entry_buf_t *buf) noexcept nogil:
    free(buf.items)
    buf.items = NULL
    buf.n = 0
    buf.cap = 0
