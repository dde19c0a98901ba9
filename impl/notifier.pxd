# notifier: MMU interval notifiers (mm/mmu_notifier.c). A subscription watches
# [start, end) of one mm for one device; each mm keeps its live subscriptions in an
# interval index (the kernel's itree) so that an invalidation visits only the ones it
# intersects (issue 6: dispatch must not scan every subscription per op).

cdef enum:
    # enum mmu_notifier_event (include/linux/mmu_notifier.h), the kinds the model fires
    MMU_NOTIFY_UNMAP = 0
    MMU_NOTIFY_CLEAR = 1
    MMU_NOTIFY_PROTECTION_VMA = 2
    MMU_NOTIFY_PROTECTION_PAGE = 3
    MMU_NOTIFY_EXCLUSIVE = 4
    MMU_NOTIFY_RELEASE = 5      # mn_itree_release at exit: every subscription, whole range
    MMU_NOTIFY_SOFT_DIRTY = 16  # clear_refs_write (softdirty.pyx): whole address space
    NO_OWNER = -1               # range->owner == NULL

# struct mmu_interval_notifier: subscription "m{k}" is machine.subs[k - 1]. A removed
# one stays in the array with live = 0 (its name is never reused).
ctypedef struct mmu_interval_sub_t:
    int64_t start       # first page (vpn)
    int64_t end         # one past the last page
    int64_t seq         # invalidations the device processed for it (mmu_interval_set_seq)
    int32_t dev         # device index (machine.devs)
    int32_t proc        # process index of the watched mm
    int32_t live        # 0 after unmirror

# One node of an mm's interval index: the live subscriptions sorted by (start, sub),
# read as an implicit balanced tree (the root of [lo, hi) is (lo + hi) >> 1) whose
# maxend is the largest end in that subtree; rebuilt on insert/remove (rare), queried
# in O(log n + hits) per invalidation (common).
cdef struct itree_node_s:
    int64_t start
    int64_t end
    int64_t maxend      # max end of the subtree rooted here
    int32_t sub         # index into machine.subs

# One invalidation as a device received it (range clipped to the subscription).
ctypedef struct mmu_event_t:
    int64_t start
    int64_t end
    int32_t sub         # index into machine.subs
    int32_t kind        # MMU_NOTIFY_*
    int32_t owner       # device index of an exclusive event's owner, NO_OWNER

# Visit callback of itree_walk: return True to stop the walk.
ctypedef bint (*itree_fn)(void *ctx, int32_t sub) noexcept nogil

cdef int mmu_interval_notifier_insert(machine_t *m, mm_t *mm, int32_t sub) noexcept nogil
cdef void mmu_interval_notifier_remove(machine_t *m, mm_t *mm, int32_t sub) noexcept nogil
cdef bint itree_walk(mm_t *mm, int64_t start, int64_t end, itree_fn fn,
                     void *ctx) noexcept nogil
cdef void __mmu_notifier_invalidate_range(machine_t *m, mm_t *mm, int32_t kind,
                                          int64_t start, int64_t end,
                                          int32_t owner) noexcept nogil

cdef inline void mmu_notifier_invalidate_range(machine_t *m, mm_t *mm, int32_t kind,
                                               int64_t start, int64_t end,
                                               int32_t owner) noexcept nogil:
    """mmu_notifier_invalidate_range_start over [start, end) of mm (pages). The fast
    path is one test: an mm nobody subscribed to has no notifiers (mm_has_notifiers)."""
    if mm.nr_subs == 0:
        return
    __mmu_notifier_invalidate_range(m, mm, kind, start, end, owner)
