# ksm: MADV_MERGEABLE scanning (one deterministic ksmd pass) and unmerging.

cdef void sys_ksm_scan(machine_t *m, mm_res_t *r) noexcept nogil
cdef void break_ksm(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                    int64_t end) noexcept nogil
