# madvise: dontneed, the fork-related flags and MADV_POPULATE_(READ|WRITE).

cdef void sys_madvise(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil
