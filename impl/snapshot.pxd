# snapshot: collect a process's non-none entries in vpn order for RawSnapshot.

ctypedef struct entry_t:
    int64_t vpn
    uint64_t pte
    int32_t level            # 0 a PTE, 1 a huge PMD (at its block's first vpn), 2 a PUD leaf

ctypedef struct entry_buf_t:
    entry_t *items           # malloc'd, owned by the caller (free with entry_buf_free)
    int64_t n
    int64_t cap
    int32_t oom

cdef void collect_entries(mm_t *mm, entry_buf_t *buf) noexcept nogil
cdef void entry_buf_free(entry_buf_t *buf) noexcept nogil
