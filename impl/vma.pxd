# vma: a process's VMAs as a C array sorted by start, with binary-search lookup
# (the role of the maple tree), split (__split_vma), the merge pass (vma_merge)
# and anon_vma_prepare.

ctypedef struct vma_t:
    int64_t start       # first page (vpn)
    int64_t end         # one past the last page
    int64_t pgoff       # file offset of start in pages; private anon: unused (0)
    int64_t anon_vma    # anon_vma id, 0 = none
    int32_t file        # index into machine.files (named file or hidden shmem), NO_FILE for private anon
    uint8_t prot        # PROT_NONE / PROT_R / PROT_RW
    uint8_t shared      # VM_SHARED
    uint8_t madv        # VM_DONTCOPY | VM_WIPEONFORK
    uint8_t forked      # the anon_vma chain is not singular (a fork child's VMA)
    uint8_t softdirty   # VM_SOFTDIRTY: set by mmap, copied by fork/split, cleared by clear_refs
    uint8_t pfnmap      # VM_PFNMAP|VM_IO|VM_DONTEXPAND: a devmem BO mapping (devmem.pyx)

cdef inline bint vma_is_anon_private(vma_t *v) noexcept nogil:
    return v.file == NO_FILE

cdef inline int64_t linear_page_index(vma_t *v, int64_t vpn) noexcept nogil:
    return v.pgoff + (vpn - v.start)

cdef inline bint vma_soft_dirty_enabled(vma_t *v) noexcept nogil:
    # vma_soft_dirty_enabled: tracking is on once clear_refs cleared VM_SOFTDIRTY
    return not v.softdirty

cdef inline bint pte_needs_soft_dirty_wp(vma_t *v, bint soft_dirty) noexcept nogil:
    # pte_needs_soft_dirty_wp (mm/internal.h): a write must fault to set soft-dirty
    return not v.softdirty and not soft_dirty

cdef inline bint vma_wants_writenotify(vma_t *v) noexcept nogil:
    # vma_wants_writenotify for shmem: shared + VM_WRITE, and only soft-dirty tracking
    # asks (no page_mkwrite, no writeback); vma_set_page_prot drops the write bit then
    return v.shared and v.prot == PROT_RW and not v.softdirty

cdef int32_t find_vma(mm_t *mm, int64_t vpn) noexcept nogil
cdef int32_t find_vma_from(mm_t *mm, int64_t vpn) noexcept nogil
cdef int vma_insert(machine_t *m, mm_t *mm, int32_t idx, vma_t *v) noexcept nogil
cdef void vma_remove(machine_t *m, mm_t *mm, int32_t idx) noexcept nogil
cdef int vma_split(machine_t *m, mm_t *mm, int32_t idx, int64_t at) noexcept nogil
cdef bint vma_can_merge(vma_t *a, vma_t *b) noexcept nogil
cdef void vma_merge_range(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil
cdef void anon_vma_prepare(machine_t *m, mm_t *mm, int32_t idx) noexcept nogil
cdef int vma_range_split(machine_t *m, mm_t *mm, int64_t start, int64_t end,
                         int32_t *first, int32_t *last) noexcept nogil
