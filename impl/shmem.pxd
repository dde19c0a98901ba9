# shmem: shmem files and the hidden objects behind shared anon mappings. Each has a
# page cache pgoff -> pfn kept in a radix tree of 512-slot nodes whose height grows
# with the largest index stored (xarray); a slot holds a pfn at the leaf level and
# a node address above it, 0 when empty.

ctypedef struct shmem_t:
    uint64_t *xa_head   # root node, NULL while the cache is empty
    int32_t xa_shift    # index bits resolved below the root (0: the root is a leaf node)
    int64_t size        # i_size in pages
    int64_t nr_pages    # resident page-cache pages
    int32_t nr_vmas     # VMAs backed by this object; a hidden object is released at 0
    uint8_t hidden      # backs a shared anon mapping: not listed in snapshots
    uint8_t live        # created (by the `file` op, or by mmap for a hidden object)

# One resident page, as collected by shmem_collect.
ctypedef struct cache_page_t:
    int64_t pgoff
    uint32_t pfn

cdef uint32_t xa_load(shmem_t *f, int64_t index) noexcept nogil
cdef int xa_store(shmem_t *f, kmem_t *k, int64_t index, uint32_t pfn) noexcept nogil
cdef uint32_t shmem_get_folio(machine_t *m, shmem_t *f, int64_t pgoff) noexcept nogil
cdef void shmem_evict_inode(machine_t *m, shmem_t *f) noexcept nogil
cdef int64_t shmem_collect(shmem_t *f, cache_page_t *out, int64_t cap) noexcept nogil
