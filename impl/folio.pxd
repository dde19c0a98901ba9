# folio: the frame table. One 24-byte record per 4 KiB frame, kept in sections of
# SECTION_FRAMES records that never move (SPARSEMEM mem_map), a free list linked
# through the value field, and pfn 0 reserved for the zero page.

ctypedef struct folio_t:
    int32_t refcount    # references: one per mapping PTE + page cache + swap cache + pins
    int32_t mapcount    # PTEs mapping the frame (kernel: _mapcount + 1)
    int32_t pincount    # FOLL_PIN count
    uint32_t flags      # PG_* bits (constants.pxi)
    uint64_t value      # page contents; for a free frame: the next free pfn

ctypedef struct mem_map_t:
    folio_t **sections  # sections[pfn >> SECTION_SHIFT][pfn & SECTION_MASK]
    int32_t nr_sections
    uint32_t nr_frames  # pfns handed out so far (high watermark), zero page included
    uint32_t free_head  # first free pfn, 0 when the list is empty
    int64_t nr_free     # frames on the free list

cdef inline folio_t *pfn_folio(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    return &mem.sections[pfn >> SECTION_SHIFT][pfn & SECTION_MASK]

cdef int mem_map_init(mem_map_t *mem, kmem_t *k) noexcept nogil
cdef void mem_map_destroy(mem_map_t *mem, kmem_t *k) noexcept nogil
cdef uint32_t folio_alloc(mem_map_t *mem, kmem_t *k, uint32_t flags, uint64_t value) noexcept nogil
cdef void folio_free(mem_map_t *mem, uint32_t pfn) noexcept nogil

cdef inline bint folio_test_locked(folio_t *f) noexcept nogil:
    return (f.flags & PG_locked) != 0

cdef inline bint folio_trylock(folio_t *f) noexcept nogil:
    """Take the folio lock if free (folio_trylock). The model's only holder is a `lock`
    op; kernel paths that would sleep in folio_lock instead refuse (EBUSY) or skip."""
    if f.flags & PG_locked:
        return False
    f.flags |= PG_locked
    return True

cdef inline void folio_unlock(folio_t *f) noexcept nogil:
    f.flags &= ~(<uint32_t>PG_locked)

cdef inline void folio_store(folio_t *f, uint64_t value) noexcept nogil:
    """A store into the page (CPU, write(2), /proc/pid/mem, DMA): contents and PG_dirty
    (set_page_dirty / folio_mark_dirty)."""
    f.value = value
    f.flags |= PG_dirty

cdef inline void folio_get(folio_t *f) noexcept nogil:
    f.refcount += 1

cdef inline void folio_put(mem_map_t *mem, uint32_t pfn, folio_t *f) noexcept nogil:
    """Drop one reference; the frame returns to the free list at zero (folio_put)."""
    f.refcount -= 1
    if f.refcount == 0:
        folio_free(mem, pfn)
