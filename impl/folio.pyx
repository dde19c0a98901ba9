# folio: frame allocation and release (alloc_pages / free_unref_page shape).


cdef int mem_map_init(mem_map_t *mem, kmem_t *k) noexcept nogil:
    """Empty frame table with pfn 0 = the zero page (PG_reserved, never refcounted)."""
    mem.sections = NULL
    mem.nr_sections = 0
    mem.nr_frames = 0
    mem.free_head = 0
    mem.nr_free = 0
    mem.huge_free_head = 0
    mem.hzero_pfn = 0
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
    """Put a frame with no references back on the free list (free_unref_page); a THP
    head frees its whole folio."""
    cdef folio_t *f = pfn_folio(mem, pfn)
    if f.flags & PG_head:
        thp_free(mem, pfn)
        return
    f.flags = PG_free
    f.mapcount = 0
    f.refcount = 0
    f.value = mem.free_head
    mem.free_head = pfn
    mem.nr_free += 1


cdef uint32_t _huge_block(mem_map_t *mem, kmem_t *k) noexcept nogil:
    """A 512-aligned block of 512 frames: a free THP block, else from the high watermark
    (the frames skipped to align it go to the order-0 free list). 0 on OOM."""
    cdef uint32_t h, pfn, aligned
    cdef folio_t *f
    if mem.huge_free_head != 0:
        h = mem.huge_free_head
        mem.huge_free_head = <uint32_t>pfn_folio(mem, h).value
        mem.nr_free -= HPAGE_PMD_NR
        return h
    if mem.nr_frames > 0xffffffffu - 2 * HPAGE_PMD_NR:
        k.oom = 1
        return 0
    aligned = (mem.nr_frames + HPAGE_PMD_MASK) & ~(<uint32_t>HPAGE_PMD_MASK)
    while ((aligned + HPAGE_PMD_MASK) >> SECTION_SHIFT) >= <uint32_t>mem.nr_sections:
        if _mem_map_grow(mem, k) < 0:
            return 0
    for pfn in range(mem.nr_frames, aligned):
        f = pfn_folio(mem, pfn)
        f.flags = PG_free
        f.refcount = 0
        f.mapcount = 0
        f.value = mem.free_head
        mem.free_head = pfn
        mem.nr_free += 1
    mem.nr_frames = aligned + HPAGE_PMD_NR
    return aligned


cdef void _reset_frames(mem_map_t *mem, uint32_t h, uint32_t flags) noexcept nogil:
    """The 512 frame records of a huge block, counts and contents zero, flags set."""
    cdef int32_t i
    cdef folio_t *f
    for i in range(HPAGE_PMD_NR):
        f = pfn_folio(mem, h + i)
        f.refcount = 0
        f.mapcount = 0
        f.pincount = 0
        f.value = 0
        f.flags = flags


cdef uint32_t thp_alloc(mem_map_t *mem, kmem_t *k) noexcept nogil:
    """A zeroed anon THP: head refcount 1, no mappings, no MM ids (the caller maps it and
    sets AnonExclusive). Return: the head pfn, 0 on OOM."""
    cdef uint32_t h = _huge_block(mem, k)
    cdef int32_t i
    cdef folio_t *f
    if h == 0:
        return 0
    _reset_frames(mem, h, PG_anon | PG_tail)
    f = pfn_folio(mem, h)
    f.flags = PG_anon | PG_head
    f.refcount = 1
    return h


cdef void thp_free(mem_map_t *mem, uint32_t head) noexcept nogil:
    """Free all 512 frames of a THP as one block (free_pages of an order-9 folio)."""
    _reset_frames(mem, head, PG_free)
    pfn_folio(mem, head).value = mem.huge_free_head
    mem.huge_free_head = head
    mem.nr_free += HPAGE_PMD_NR


cdef uint32_t hzero_get(mem_map_t *mem, kmem_t *k) noexcept nogil:
    """The huge zero folio's first pfn, reserved on first use and kept for good
    (mm_get_huge_zero_folio; 512 PG_reserved frames reading 0, never counted)."""
    cdef uint32_t h
    cdef int32_t i
    cdef folio_t *f
    if mem.hzero_pfn != 0:
        return mem.hzero_pfn
    h = _huge_block(mem, k)
    if h == 0:
        return 0
    _reset_frames(mem, h, PG_reserved)
    mem.hzero_pfn = h
    return h


cdef void thp_mm_add(mem_map_t *mem, uint32_t head, int32_t mmid, int32_t d) noexcept nogil:
    """folio_add_return_large_mapcount: d more mappings by mm mmid (include/linux/rmap.h,
    6.15+): the total, the mm's slot (taking a free one), the "maybe mapped shared" bit."""
    cdef folio_t *t1 = pfn_folio(mem, head + 1)
    cdef folio_t *s0 = pfn_folio(mem, head + 2)
    cdef folio_t *s1 = pfn_folio(mem, head + 3)
    cdef int32_t before = t1.pincount
    t1.pincount += d
    if s0.refcount == mmid:
        s0.pincount += d
    elif s1.refcount == mmid:
        s1.pincount += d
    elif s0.refcount == 0:
        s0.refcount = mmid
        s0.pincount = d
        if before != 0:
            pfn_folio(mem, head).flags |= PG_mm_shared
    elif s1.refcount == 0:
        s1.refcount = mmid
        s1.pincount = d
        pfn_folio(mem, head).flags |= PG_mm_shared


cdef void thp_mm_sub(mem_map_t *mem, uint32_t head, int32_t mmid, int32_t d) noexcept nogil:
    """folio_sub_return_large_mapcount: d mappings fewer by mm mmid; a slot whose count
    drops to 0 (or below) is freed; one slot owning all mappings (or none left) clears
    the shared bit."""
    cdef folio_t *t1 = pfn_folio(mem, head + 1)
    cdef folio_t *s0 = pfn_folio(mem, head + 2)
    cdef folio_t *s1 = pfn_folio(mem, head + 3)
    t1.pincount -= d
    if s0.refcount == mmid:
        s0.pincount -= d
        if s0.pincount > 0:
            return
        s0.pincount = 0
        s0.refcount = 0
    elif s1.refcount == mmid:
        s1.pincount -= d
        if s1.pincount > 0:
            return
        s1.pincount = 0
        s1.refcount = 0
    if s0.pincount == t1.pincount or s1.pincount == t1.pincount:
        pfn_folio(mem, head).flags &= ~(<uint32_t>PG_mm_shared)
