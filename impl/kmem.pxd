# kmem: the impl's allocator front end. Every C structure is allocated through it
# so that ImplMachine.memory_bytes() can report what the model holds.
#
# Page-table pages: TABLE_HDR_WORDS words of "used" bitmap, then 512 entries; callers
# hold a pointer to the entries. Freed tables are all-zero and go to a pool (a
# quicklist) so fork/exit cycles neither malloc nor memset; the pool is trimmed to
# TABLE_POOL_KEEP tables after each API call and is counted in kmem.bytes.

ctypedef struct kmem_t:
    int64_t bytes       # bytes held by live C structures (tables, frames, VMAs, nodes, pool)
    int32_t oom         # set when an allocation failed; the API raises MemoryError
    uint64_t *pool      # zeroed table allocations, linked through their first word
    int64_t nr_pool     # tables in the pool

cdef void *kzalloc(kmem_t *k, size_t size) noexcept nogil
cdef void *krealloc_zero(kmem_t *k, void *p, size_t old_size, size_t new_size) noexcept nogil
cdef int kgrow(kmem_t *k, void **arr, int32_t *cap, size_t elem, int32_t first) noexcept nogil
cdef void kfree(kmem_t *k, void *p, size_t size) noexcept nogil
cdef uint64_t *table_alloc(kmem_t *k) noexcept nogil
cdef void table_free(kmem_t *k, uint64_t *table) noexcept nogil
cdef void table_pool_trim(kmem_t *k, int64_t keep) noexcept nogil
