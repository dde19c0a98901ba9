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
    int64_t nr_free     # free frames: the order-0 list plus 512 per free THP block
    uint32_t huge_free_head # first free 512-frame block (its head pfn), 0 when none
    uint32_t hzero_pfn  # first pfn of the huge zero folio (512 reserved frames), 0 until used

cdef inline folio_t *pfn_folio(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    return &mem.sections[pfn >> SECTION_SHIFT][pfn & SECTION_MASK]

cdef int mem_map_init(mem_map_t *mem, kmem_t *k) noexcept nogil
cdef void mem_map_destroy(mem_map_t *mem, kmem_t *k) noexcept nogil
cdef uint32_t folio_alloc(mem_map_t *mem, kmem_t *k, uint32_t flags, uint64_t value) noexcept nogil
cdef void folio_free(mem_map_t *mem, uint32_t pfn) noexcept nogil
cdef uint32_t thp_alloc(mem_map_t *mem, kmem_t *k) noexcept nogil
cdef void thp_free(mem_map_t *mem, uint32_t head) noexcept nogil
cdef uint32_t hzero_get(mem_map_t *mem, kmem_t *k) noexcept nogil
cdef void thp_mm_add(mem_map_t *mem, uint32_t head, int32_t mmid, int32_t d) noexcept nogil
cdef void thp_mm_sub(mem_map_t *mem, uint32_t head, int32_t mmid, int32_t d) noexcept nogil

# --- THPs (order-9 anon folios), laid out like the kernel's compound folio: 512
# contiguous frames from a 512-aligned head pfn. Each record keeps its subpage's own
# value, PTE mapcount and PageAnonExclusive; the head's refcount, pincount and flags
# (locked, dirty, PG_mm_shared) are the folio's; the first tail records hold the
# folio-wide counters, as the kernel's folio keeps them in its tail pages:
#   tail 1: refcount = entire_mapcount (PMD mappings), pincount = large mapcount
#           (entire_mapcount + all subpage PTE mapcounts: the MM-id "total")
#   tail 2 / tail 3: MM-id slot 0 / 1: refcount = mm id (pid + 1; 0 free), pincount = its count

cdef inline bint page_is_thp(folio_t *f) noexcept nogil:
    return (f.flags & (PG_head | PG_tail)) != 0

cdef inline uint32_t page_folio_pfn(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    """The pfn of the folio record holding pfn's refcount/pincount/lock (page_folio)."""
    if pfn_folio(mem, pfn).flags & PG_tail:
        return pfn & ~(<uint32_t>HPAGE_PMD_MASK)
    return pfn

cdef inline folio_t *page_folio(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    return pfn_folio(mem, page_folio_pfn(mem, pfn))

cdef inline int32_t *thp_entire(mem_map_t *mem, uint32_t head) noexcept nogil:
    return &pfn_folio(mem, head + 1).refcount

cdef inline int32_t thp_large_mapcount(mem_map_t *mem, uint32_t head) noexcept nogil:
    return pfn_folio(mem, head + 1).pincount

cdef inline int32_t folio_total_mapcount(mem_map_t *mem, uint32_t fpfn) noexcept nogil:
    """folio_mapcount: an order-0 folio's mapcount, a THP's large mapcount."""
    if pfn_folio(mem, fpfn).flags & PG_head:
        return thp_large_mapcount(mem, fpfn)
    return pfn_folio(mem, fpfn).mapcount

cdef inline bint is_hzero_pfn(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    return mem.hzero_pfn != 0 and (pfn & ~(<uint32_t>HPAGE_PMD_MASK)) == mem.hzero_pfn

cdef inline bint page_is_reserved(mem_map_t *mem, uint32_t pfn) noexcept nogil:
    """The zero page or a frame of the huge zero folio: no counts, never pinned."""
    return pfn == 0 or is_hzero_pfn(mem, pfn)

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
