# fault: the page-fault handler below the access check (handle_mm_fault and the
# do_* paths of mm/memory.c), and GUP-style population of a range.

cdef int handle_mm_fault(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                         int flags) noexcept nogil
cdef void restore_exclusive_pte(machine_t *m, vma_t *v, uint64_t *ptep) noexcept nogil
cdef int populate_vma_page_range(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                                 int64_t end, bint write) noexcept nogil
