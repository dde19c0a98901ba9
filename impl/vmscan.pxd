# vmscan: MADV_PAGEOUT reclaim of the pages one VMA piece maps.

cdef void pageout_range(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                        int64_t end) noexcept nogil
