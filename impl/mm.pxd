# mm: one process address space (mm_struct): its PGD and its VMA array.

cdef struct mm_s:
    uint64_t *pgd       # top-level table (PTRS_PER_TABLE entries)
    vma_t *vmas         # sorted by start, non-overlapping
    int32_t nr_vmas
    int32_t cap_vmas
    int32_t alive       # 0 once the process exited (ops on it return ESRCH)
    int32_t has_pinned  # MMF_HAS_PINNED: set by the first FOLL_PIN, never cleared, not inherited
    int32_t pid         # index k of "p{k}" (set when the process is registered)
    int32_t mm_id       # mm->mm_id for the THP MM-id slots (> 0, set by mm_alloc)
    itree_node_t *subs  # live interval-notifier subscriptions (notifier.pxd index); kept
    int32_t nr_subs     # after exit: a subscription outlives its mm's address space
    int32_t cap_subs

# Context of zap_pte_run: the machine and the mm whose entries go (THP MM ids).
ctypedef struct zap_ctx_t:
    machine_t *m
    mm_t *mm

cdef mm_t *mm_alloc(machine_t *m) noexcept nogil
cdef void zap_pte_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil
cdef void zap_page_range(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil
cdef int do_vmi_munmap(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil
cdef void exit_mmap(machine_t *m, mm_t *mm) noexcept nogil
cdef int64_t get_unmapped_area(mm_t *mm, int64_t npages, int64_t align) noexcept nogil
cdef int64_t get_unmapped_area_off(mm_t *mm, int64_t npages, int64_t off) noexcept nogil
