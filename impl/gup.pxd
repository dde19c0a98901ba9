# gup: pin_user_pages / unpin_user_pages and the FOLL_FORCE write of /proc/pid/mem.

ctypedef struct pin_t:
    uint32_t *pfns      # the pinned frames in page order (pfn 0: the zero page, uncounted)
    int64_t npages
    int32_t write       # FOLL_WRITE: the device may write through it
    int32_t live        # 0 once unpinned

cdef void sys_pin(machine_t *m, mm_t *mm, int64_t vpn, int64_t npages, int32_t mode,
                  mm_res_t *r) noexcept nogil
cdef void sys_unpin(machine_t *m, int64_t handle, mm_res_t *r) noexcept nogil
cdef pin_t *pin_lookup(machine_t *m, int64_t handle, int64_t index) noexcept nogil
cdef void sys_poke(machine_t *m, mm_t *mm, int64_t vpn, uint64_t value,
                   mm_res_t *r) noexcept nogil
cdef void pins_destroy(machine_t *m) noexcept nogil
