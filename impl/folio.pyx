# folio: frame allocation and release (alloc_pages / free_unref_page shape).


cdef int mem_map_init(mem_map_t *mem, kmem_t *k) noexcept nogil:
    """Empty frame table with pfn 0 = the zero page (PG_reserved, never refcounted)."""
    mem.sections = NULL
    mem.nr_sections = 0
    mem.nr_frames = 0
    mem.free_head = 0
    mem.nr_free = 0
    if _mem_map_grow(mem, k) < 0:
        return -1
    mem.nr_frames = 1
    pfn_folio(mem, 0).flags = PG_reserved
    return 0


cdef int _mem_map_grow(mem_map_t *mem, kmem_t *k) noexcept nogil:
    """Add one section of SECTION_FRAMES records (the existing ones do not move)."""
    cdef folio_t **secs = <folio_t **>krealloc_zero(
        k, mem.sections, mem.nr_sections * sizeof(folio_t *),
        (mem.nr_sections + 1) * sizeof(folio_t *))
    if secs == NULL:
        return -1
    mem.sections = secs
    cdef folio_t *sec = <folio_t *>kzalloc(k, SECTION_FRAMES * sizeof(folio_t))
    if sec == NULL:
        return -1
    secs[mem.nr_sections] = sec
    mem.nr_sections += 1
    return 0


cdef void mem_map_destroy(mem_map_t *mem, kmem_t *k) noexcept nogil:
    cdef int32_t i
    for i in range(mem.nr_sections):
        kfree(k, mem.sections[i], SECTION_FRAMES * sizeof(folio_t))
    kfree(k, mem.sections, mem.nr_sections * sizeof(folio_t *))
    mem.sections = NULL
    mem.nr_sections = 0


cdef uint32_t folio_alloc(mem_map_t *mem, kmem_t *k, uint32_t flags, uint64_t value) noexcept nogil:
    """A frame with refcount 1, mapcount 0, the given flags and contents.

    Return: its pfn, or 0 (the zero page's pfn, never allocatable) when out of memory.
    """
    cdef uint32_t pfn
    cdef folio_t *f
    if mem.free_head != 0:
        pfn = mem.free_head
        f = pfn_folio(mem, pfn)
        mem.free_head = <uint32_t>f.value
        mem.nr_free -= 1
    else:
        if mem.nr_frames == 0xffffffffu:
            k.oom = 1
            return 0
        if (mem.nr_frames >> SECTION_SHIFT) >= <uint32_t>mem.nr_sections:
            if _mem_map_grow(mem, k) < 0:
                return 0
        pfn = mem.nr_frames
        mem.nr_frames += 1
        f = pfn_folio(mem, pfn)
    f.refcount = 1
    f.mapcount = 0
    f.pincount = 0
    f.flags = flags
    f.value = value
    return pfn


cdef void folio_free(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    """Put a frame with no references back on the free list (free_unref_page)."""
    cdef folio_t *f = pfn_folio(mem, pfn)
    f.flags = PG_free
    f.mapcount = 0
    f.refcount = 0
    f.value = mem.free_head
    mem.free_head = pfn
    mem.nr_free += 1
