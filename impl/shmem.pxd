# shmem: shmem files and the hidden objects behind shared anon mappings. Each has a
# page cache pgoff -> pfn kept in a radix tree of 512-slot nodes whose height grows
# with the largest index stored (xarray); a slot holds an entry at the leaf level and
# a node address above it, 0 when empty. A leaf entry is a resident page's pfn
# (< 2^32) or, for a page paged out by shmem_writeout, a value entry naming its swap
# slot (XA_SWAP_TAG | slot, like the kernel's xa_mk_value(swp_entry)).

ctypedef struct shmem_t:
    uint64_t *xa_head   # root node, NULL while the cache is empty
    int32_t xa_shift    # index bits resolved below the root (0: the root is a leaf node)
    int64_t size        # i_size in pages
    int64_t nr_pages    # resident page-cache pages
    int64_t nr_swapped  # pages out in swap slots (info->swapped)
    int32_t nr_vmas     # VMAs backed by this object; a hidden object is released at 0
    uint8_t hidden      # backs a shared anon mapping: not listed in snapshots
    uint8_t live        # created (by the `file` op, or by mmap for a hidden object)
    uint8_t devmem      # a devmem buffer object (devmem.pyx): the tree holds raw page
                        # values (0: none stored), nr_pages / nr_swapped stay 0
    uint8_t tracked     # devmem: dirty tracking on (first wp_range / clean_record)
    int64_t nr_vals     # devmem: pages with a non-zero value

# One page of the file, as collected by shmem_collect: resident (pfn) or swapped (slot).
ctypedef struct cache_page_t:
    int64_t pgoff
    uint32_t pfn        # 0 for a swapped page
    uint32_t slot       # 0 for a resident page

cdef inline bint xa_is_swap(uint64_t entry) noexcept nogil:
    return (entry >> 32) != 0

cdef inline uint64_t xa_mk_swap(uint32_t slot) noexcept nogil:
    return ((<uint64_t>1) << 32) | slot          # XA_SWAP_TAG | slot

cdef uint64_t xa_load_entry(shmem_t *f, int64_t index) noexcept nogil
cdef uint32_t xa_load(shmem_t *f, int64_t index) noexcept nogil
cdef int xa_store(shmem_t *f, kmem_t *k, int64_t index, uint64_t entry) noexcept nogil
cdef uint32_t shmem_get_folio(machine_t *m, shmem_t *f, int64_t pgoff) noexcept nogil
cdef void shmem_reclaim(machine_t *m, shmem_t *f, int64_t pgoff, uint32_t pfn,
                        bint dirty) noexcept nogil
cdef void shmem_evict_inode(machine_t *m, shmem_t *f) noexcept nogil
cdef int64_t shmem_collect(shmem_t *f, cache_page_t *out, int64_t cap) noexcept nogil
