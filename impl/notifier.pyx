# notifier: interval index of an mm's subscriptions and the invalidation dispatch
# (mmu_interval_notifier_insert/remove, mn_itree_invalidate).
#
# Rules (device.md "Invalidation"): an invalidation of [start, end) in an mm reaches
# every LIVE subscription of that mm whose [start, end) intersects it, with the range
# clipped to the subscription; the device's callback (hmm.pyx
# dmirror_interval_invalidate) records it and, unless it is its own exclusive event,
# bumps seq and drops its mirror entries there. Order of delivery is not observable.
from libc.string cimport memmove


cdef int64_t _itree_build(itree_node_t *a, int32_t lo, int32_t hi) noexcept nogil:
    """Fill maxend over the implicit tree of a[lo, hi); return its max end (0: empty;
    every end is >= 1)."""
    cdef int32_t mid
    cdef int64_t mx
    if lo >= hi:
        return 0
    mid = (lo + hi) >> 1
    mx = max(a[mid].end, max(_itree_build(a, lo, mid), _itree_build(a, mid + 1, hi)))
    a[mid].maxend = mx
    return mx


cdef bint _itree_walk(itree_node_t *a, int32_t lo, int32_t hi, int64_t start, int64_t end,
                      itree_fn fn, void *ctx) noexcept nogil:
    """Call fn on each node of a[lo, hi) intersecting [start, end), in start order
    (interval_tree_iter_first/next); True as soon as fn returns True."""
    cdef int32_t mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid].maxend <= start:
            return False                         # nothing below reaches start
        if _itree_walk(a, lo, mid, start, end, fn, ctx):
            return True
        if a[mid].start >= end:
            return False                         # mid and everything right start too late
        if a[mid].end > start and fn(ctx, a[mid].sub):
            return True
        lo = mid + 1                             # the right subtree, iteratively
    return False


cdef bint itree_walk(mm_t *mm, int64_t start, int64_t end, itree_fn fn,
                     void *ctx) noexcept nogil:
    """Visit mm's live subscriptions intersecting [start, end) (see _itree_walk)."""
    if start >= end:
        return False
    return _itree_walk(mm.subs, 0, mm.nr_subs, start, end, fn, ctx)


cdef int mmu_interval_notifier_insert(machine_t *m, mm_t *mm, int32_t sub) noexcept nogil:
    """Add live subscription machine.subs[sub] to mm's index. -1 on OOM."""
    cdef mmu_interval_sub_t *s = &m.subs[sub]
    cdef int32_t i = mm.nr_subs
    if mm.nr_subs == mm.cap_subs and kgrow(&m.kmem, <void **>&mm.subs, &mm.cap_subs,
                                           sizeof(itree_node_t), 4) < 0:
        return -1
    while i > 0 and mm.subs[i - 1].start > s.start:    # after equal starts: sub order
        i -= 1
    memmove(&mm.subs[i + 1], &mm.subs[i], (mm.nr_subs - i) * sizeof(itree_node_t))
    mm.subs[i].start = s.start
    mm.subs[i].end = s.end
    mm.subs[i].sub = sub
    mm.nr_subs += 1
    _itree_build(mm.subs, 0, mm.nr_subs)
    return 0


cdef void mmu_interval_notifier_remove(machine_t *m, mm_t *mm, int32_t sub) noexcept nogil:
    """Take subscription sub out of mm's index (it must be there)."""
    cdef int32_t i
    for i in range(mm.nr_subs):
        if mm.subs[i].sub == sub:
            memmove(&mm.subs[i], &mm.subs[i + 1], (mm.nr_subs - i - 1) * sizeof(itree_node_t))
            mm.nr_subs -= 1
            _itree_build(mm.subs, 0, mm.nr_subs)
            return


ctypedef struct _inval_ctx_t:
    machine_t *m
    int64_t start
    int64_t end
    int32_t kind
    int32_t owner


cdef bint _invalidate_one(void *ctx, int32_t sub) noexcept nogil:
    cdef _inval_ctx_t *c = <_inval_ctx_t *>ctx
    cdef mmu_interval_sub_t *s = &c.m.subs[sub]
    # interval_sub->ops->invalidate(sub, range, cur_seq); the range clipped to the sub
    dmirror_interval_invalidate(c.m, sub, c.kind, max(c.start, s.start), min(c.end, s.end),
                                c.owner)
    return False


cdef void __mmu_notifier_invalidate_range(machine_t *m, mm_t *mm, int32_t kind,
                                          int64_t start, int64_t end,
                                          int32_t owner) noexcept nogil:
    """mn_itree_invalidate: the callback of every subscription of mm intersecting
    [start, end) (mm has at least one subscription)."""
    cdef _inval_ctx_t ctx
    ctx.m = m
    ctx.start = start
    ctx.end = end
    ctx.kind = kind
    ctx.owner = owner
    itree_walk(mm, start, end, _invalidate_one, &ctx)
