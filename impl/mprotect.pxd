# mprotect: mprotect_fixup and change_protection.

cdef void sys_mprotect(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil
