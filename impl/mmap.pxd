# mmap: the mmap and munmap system calls (do_mmap, do_vmi_munmap).

cdef void sys_mmap(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil
cdef void sys_munmap(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil
cdef int32_t shmem_new(machine_t *m, int64_t npages, bint hidden) noexcept nogil
