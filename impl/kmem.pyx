# kmem: counted allocation (kzalloc/kfree) and 4 KiB-aligned page-table pages.
from libc.stdlib cimport calloc, realloc, free
from libc.string cimport memset


cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


cdef void *kzalloc(kmem_t *k, size_t size) noexcept nogil:
    """Zeroed allocation; on failure sets k.oom and returns NULL."""
    cdef void *p = calloc(1, size)
    if p == NULL:
        k.oom = 1
        return NULL
    k.bytes += <int64_t>size
    return p


cdef void *krealloc_zero(kmem_t *k, void *p, size_t old_size, size_t new_size) noexcept nogil:
    """Grow an array to new_size bytes, zeroing the new tail; NULL (old kept) on failure."""
    cdef char *q = <char *>realloc(p, new_size)
    if q == NULL:
        k.oom = 1
        return NULL
    if new_size > old_size:
        memset(q + old_size, 0, new_size - old_size)
    k.bytes += <int64_t>new_size - <int64_t>old_size
    return q


cdef int kgrow(kmem_t *k, void **arr, int32_t *cap, size_t elem, int32_t first) noexcept nogil:
    """Make room for one more element in a growable array (*arr, *cap elements of
    `elem` bytes): double the capacity (start at `first`), zero the new tail.
    Return: 0, or -1 with *arr and *cap unchanged when memory ran out."""
    cdef int32_t new_cap = first if cap[0] == 0 else cap[0] * 2
    cdef void *p = krealloc_zero(k, arr[0], cap[0] * elem, new_cap * elem)
    if p == NULL:
        return -1
    arr[0] = p
    cap[0] = new_cap
    return 0


cdef void kfree(kmem_t *k, void *p, size_t size) noexcept nogil:
    if p != NULL:
        k.bytes -= <int64_t>size
        free(p)


cdef uint64_t *table_alloc(kmem_t *k) noexcept nogil:
    """One zeroed page-table page (header + 512 entries); returns the entries.
    The allocation is TABLE_BASE_ALIGN (256) aligned, so the entries (at base + 64) are
    64-byte aligned with bit 7 clear: an upper entry holds the address with _PAGE_TABLE
    in bits 0..5 (pgd_populate/pmd_populate) and never looks like a huge leaf (_PAGE_PSE,
    bit 7: pmd_trans_huge)."""
    cdef uint64_t *t = k.pool
    cdef void *p = NULL
    if t != NULL:                       # quicklist: already zero except the link word
        k.pool = <uint64_t *><uintptr_t>t[0]
        k.nr_pool -= 1
        t[0] = 0
        return t + TABLE_HDR_WORDS
    if posix_memalign(&p, TABLE_BASE_ALIGN, TABLE_ALLOC_BYTES) != 0:
        p = NULL
    t = <uint64_t *>p
    if t == NULL:
        k.oom = 1
        return NULL
    memset(t, 0, TABLE_ALLOC_BYTES)
    k.bytes += TABLE_ALLOC_BYTES
    return t + TABLE_HDR_WORDS


cdef void table_free(kmem_t *k, uint64_t *table) noexcept nogil:
    """Return an all-zero table (entries and bitmap) to the pool (pte_free)."""
    cdef uint64_t *t = table - TABLE_HDR_WORDS
    t[0] = <uint64_t><uintptr_t>k.pool
    k.pool = t
    k.nr_pool += 1


cdef void table_pool_trim(kmem_t *k, int64_t keep) noexcept nogil:
    """Give pooled tables back to the C allocator until at most keep remain."""
    cdef uint64_t *t
    while k.nr_pool > keep:
        t = k.pool
        k.pool = <uint64_t *><uintptr_t>t[0]
        k.nr_pool -= 1
        k.bytes -= TABLE_ALLOC_BYTES
        free(t)
