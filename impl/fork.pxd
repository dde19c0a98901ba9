# fork: dup_mmap and copy_page_range.

cdef mm_t *dup_mmap(machine_t *m, mm_t *parent, int *err) noexcept nogil
