# dirty: mm/mapping_dirty_helpers.c (wp_shared_mapping_range,
# clean_record_shared_mapping_range) over every mm mapping a shmem file.

cdef void sys_wp_range(machine_t *m, int32_t file, int64_t first, int64_t nr,
                       mm_res_t *r) noexcept nogil
cdef void sys_clean_record(machine_t *m, int32_t file, int64_t first, int64_t nr,
                           mm_res_t *r) noexcept nogil
