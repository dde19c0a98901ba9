# softdirty: clear_refs_write(CLEAR_REFS_SOFT_DIRTY) (fs/proc/task_mmu.c).

cdef void sys_clear_refs(machine_t *m, mm_t *mm, mm_res_t *r) noexcept nogil
