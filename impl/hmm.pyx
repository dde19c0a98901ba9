# hmm: device mirrors over interval notifiers, device faults (hmm_range_fault),
# device-exclusive access (make_device_exclusive) and the device ops.
#
# Rules (device.md):
# - `mirror` inserts a subscription (EOVERFLOW: empty, or the byte end wraps); names
#   m1, m2, ... count successful inserts only. `unmirror` removes a live one and drops
#   the device's mirror entries of its range; events it already received stay pending
#   (only live subscriptions receive events: the index holds only those).
# - A device op needs a live subscription of that device covering the page (EINVAL).
#   A usable mirror entry serves it without a fault; otherwise hmm_range_fault faults
#   the page like the CPU would and the device mirrors it r or rw (as the CPU entry).
# - make_device_exclusive: a FOLL_WRITE GUP (COW broken, DX restored), anon only
#   (EOPNOTSUPP), the folio lock must be free (EBUSY), then EXCLUSIVE(owner) and the
#   entry becomes device-exclusive; the owner mirrors it atomic.
# - The notifier callback (dmirror_interval_invalidate) logs every event; unless it is
#   the device's own exclusive event it bumps seq and drops the mirror entries there.
from libc.string cimport memcpy


cdef int32_t hmm_dev_new(machine_t *m) noexcept nogil:
    """A new device slot; return its index, -1 on OOM."""
    cdef hmm_dev_t *d
    if m.nr_devs == m.cap_devs and kgrow(&m.kmem, <void **>&m.devs, &m.cap_devs,
                                         sizeof(hmm_dev_t *), 4) < 0:
        return -1
    d = <hmm_dev_t *>kzalloc(&m.kmem, sizeof(hmm_dev_t))
    if d == NULL:
        return -1
    m.devs[m.nr_devs] = d
    m.nr_devs += 1
    return m.nr_devs - 1


# --- the device page tables ------------------------------------------------------------

cdef uint64_t mirror_lookup(hmm_dev_t *d, int32_t proc, int64_t vpn) noexcept nogil:
    """The mirror entry of (proc, vpn), 0 when the device does not map it."""
    cdef uint64_t *ptep
    if proc >= d.cap_pt or d.pt[proc] == NULL:
        return 0
    ptep = pte_offset_map(d.pt[proc], vpn)
    return ptep[0] if ptep != NULL else 0


cdef int _mirror_set(machine_t *m, hmm_dev_t *d, int32_t proc, int64_t vpn, uint32_t pfn,
                     uint64_t perm) noexcept nogil:
    """Map (proc, vpn) -> (pfn, perm) in the device (dmirror_do_fault's xa_store).
    Return: 0, or -1 on OOM."""
    cdef uint64_t *ptep
    while proc >= d.cap_pt:
        if kgrow(&m.kmem, <void **>&d.pt, &d.cap_pt, sizeof(uint64_t *), 8) < 0:
            return -1
    if d.pt[proc] == NULL:
        d.pt[proc] = table_alloc(&m.kmem)
        if d.pt[proc] == NULL:
            return -1
    ptep = pte_alloc_map(d.pt[proc], &m.kmem, vpn)
    if ptep == NULL:
        return -1
    if ptep[0] == 0:
        d.nr_mirror += 1
    set_pte_at(ptep, vpn, ((<uint64_t>pfn) << PTE_PFN_SHIFT) | perm)
    return 0


cdef void _mirror_clear_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef hmm_dev_t *d = <hmm_dev_t *>ctx
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end)
    while i < end:
        table_clear(table, i)
        d.nr_mirror -= 1
        i = next_used(table, i + 1, end)


cdef void _mirror_drop(machine_t *m, hmm_dev_t *d, int32_t proc, int64_t start,
                       int64_t end) noexcept nogil:
    """Unmap [start, end) of proc from the device, atomic entries included
    (dmirror_do_update), and free its emptied tables."""
    if d.nr_mirror == 0 or proc >= d.cap_pt or d.pt[proc] == NULL:
        return
    walk_pte_runs(d.pt[proc], start, end, _mirror_clear_run, d)
    free_pgtables(d.pt[proc], &m.kmem, start, end)


# --- notifier callback and event log ------------------------------------------------------

cdef int _dev_log_event(machine_t *m, hmm_dev_t *d, int32_t sub, int32_t kind, int64_t start,
                        int64_t end, int32_t owner) noexcept nogil:
    cdef mmu_event_t *e
    if d.nr_events == d.cap_events and kgrow(&m.kmem, <void **>&d.events, &d.cap_events,
                                             sizeof(mmu_event_t), 8) < 0:
        return -1
    e = &d.events[d.nr_events]
    e.start = start
    e.end = end
    e.sub = sub
    e.kind = kind
    e.owner = owner
    d.nr_events += 1
    return 0


cdef void dmirror_interval_invalidate(machine_t *m, int32_t sub, int32_t kind, int64_t start,
                                      int64_t end, int32_t owner) noexcept nogil:
    """ops->invalidate of a device subscription for [start, end) (already clipped to it):
    log the event; the device's own exclusive conversion is skipped (test_hmm/nouveau
    filter range->event == MMU_NOTIFY_EXCLUSIVE && range->owner == self), anything else
    bumps seq (mmu_interval_set_seq) and unmaps the range from the device."""
    cdef mmu_interval_sub_t *s = &m.subs[sub]
    cdef hmm_dev_t *d = m.devs[s.dev]
    if _dev_log_event(m, d, sub, kind, start, end, owner) < 0:
        return
    if kind == MMU_NOTIFY_EXCLUSIVE and owner == s.dev:
        return
    s.seq += 1
    _mirror_drop(m, d, s.proc, start, end)


ctypedef struct _subscribed_ctx_t:
    machine_t *m
    int32_t dev


cdef bint _sub_of_dev(void *ctx, int32_t sub) noexcept nogil:
    cdef _subscribed_ctx_t *c = <_subscribed_ctx_t *>ctx
    return c.m.subs[sub].dev == c.dev


cdef bint dmirror_subscribed(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn) noexcept nogil:
    """Does a live subscription of dev on mm cover vpn? (the device only mirrors what its
    notifier watches: otherwise nobody would tell it when the entry changes)"""
    cdef _subscribed_ctx_t ctx
    if mm.nr_subs == 0:
        return False
    ctx.m = m
    ctx.dev = dev
    return itree_walk(mm, vpn, vpn + 1, _sub_of_dev, &ctx)


# --- ops ------------------------------------------------------------------------------------

cdef void sys_mirror(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn, int64_t npages,
                     mm_res_t *r) noexcept nogil:
    """mmu_interval_notifier_insert(sub, mm, start, length): `length == 0 ||
    check_add_overflow(start, length)` -> EOVERFLOW (device.md: VPN + N > 2^52)."""
    cdef mmu_interval_sub_t *s
    if npages == 0 or vpn + npages > ADDR_LIMIT_PAGES:
        res_set(r, RES_ERRNO, EOVERFLOW)
        return
    if m.nr_subs == m.cap_subs and kgrow(&m.kmem, <void **>&m.subs, &m.cap_subs,
                                         sizeof(mmu_interval_sub_t), 8) < 0:
        return
    s = &m.subs[m.nr_subs]
    s.start = vpn
    s.end = vpn + npages
    s.seq = 0
    s.dev = dev
    s.proc = mm.pid
    s.live = 1
    if mmu_interval_notifier_insert(m, mm, m.nr_subs) < 0:
        return
    m.nr_subs += 1
    res_set(r, RES_SUB, <uint64_t>m.nr_subs)


cdef void sys_unmirror(machine_t *m, int64_t k, mm_res_t *r) noexcept nogil:
    """mmu_interval_notifier_remove of "m{k}"; a name never created (its mirror failed)
    or already removed -> EINVAL. The device unmaps the range (its pending events stay)."""
    cdef mmu_interval_sub_t *s
    cdef hmm_dev_t *d
    cdef int32_t sub
    if k < 1 or k > m.nr_subs or not m.subs[k - 1].live:
        res_set(r, RES_ERRNO, EINVAL)
        return
    sub = <int32_t>(k - 1)
    s = &m.subs[sub]
    d = m.devs[s.dev]
    mmu_interval_notifier_remove(m, m.procs[s.proc], sub)
    s.live = 0
    _mirror_drop(m, d, s.proc, s.start, s.end)
    res_set(r, RES_OK, 0)


cdef int hmm_range_fault(machine_t *m, mm_t *mm, int64_t vpn, bint write,
                         uint64_t *pte_out) noexcept nogil:
    """hmm_range_fault over one page with HMM_PFN_REQ_FAULT [| HMM_PFN_REQ_WRITE]: walk,
    and fault what the device cannot use as it is (none, device-exclusive, or read-only
    for a write), then walk again.
    Return: 0 with *pte_out the present CPU entry; EFAULT (no VMA: hmm_vma_walk_hole;
    no VM_READ: hmm_vma_walk_test; a fault with VM_FAULT_ERROR), EPERM (a write fault
    without VM_WRITE: hmm_vma_fault); -1 on OOM."""
    cdef int32_t idx = find_vma(mm, vpn)
    cdef uint64_t pte
    cdef int rc, tries
    if idx < 0 or mm.vmas[idx].prot == PROT_NONE or mm.vmas[idx].pfnmap:
        return EFAULT                            # hmm_vma_walk_test: VM_IO | VM_PFNMAP too
    for tries in range(3):                       # a DX restore, then a write fault
        pte = pte_lookup(mm.pgd, vpn)            # a PTE or a huge PMD's subpage
        if pte_present(pte) and (not write or pte_write(pte)):
            pte_out[0] = pte
            return 0
        if write and mm.vmas[idx].prot != PROT_RW:
            return EPERM
        rc = handle_mm_fault(m, mm, idx, vpn, FAULT_FLAG_WRITE if write else 0)
        if rc == VM_FAULT_SIGBUS:
            return EFAULT
        if rc != VM_FAULT_OK:
            return -1
    m.kmem.oom = 1                               # a model bug: report it, never loop
    return -1


cdef void sys_daccess(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn, bint write,
                      uint64_t value, mm_res_t *r) noexcept nogil:
    """`dread` / `dwrite`: through the mirror entry when it allows the access, else
    hmm_range_fault and a new mirror entry (rw iff the CPU entry is writable)."""
    cdef hmm_dev_t *d = m.devs[dev]
    cdef uint64_t e, pte
    cdef uint32_t pfn
    cdef int err
    cdef folio_t *folio
    if not dmirror_subscribed(m, mm, dev, vpn):
        res_set(r, RES_ERRNO, EINVAL)
        return
    e = mirror_lookup(d, mm.pid, vpn)
    if e != 0 and (not write or (e & MIRROR_WRITE)):
        pfn = pte_pfn(e)
    else:
        err = hmm_range_fault(m, mm, vpn, write, &pte)
        if err < 0:
            return
        if err:
            res_set(r, RES_ERRNO, <uint64_t>err)
            return
        pfn = pte_pfn(pte)
        if _mirror_set(m, d, mm.pid, vpn, pfn, MIRROR_RW if pte_write(pte) else MIRROR_R) < 0:
            return
    folio = pfn_folio(&m.mem, pfn)
    if write:
        folio_store(folio, value)
        res_set(r, RES_OK, 0)
    else:
        res_set(r, RES_VALUE, folio.value)


cdef int make_device_exclusive(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn,
                               uint32_t *pfn_out) noexcept nogil:
    """make_device_exclusive(mm, addr, owner = dev) (mm/rmap.c, 6.15+ folio_walk version)
    plus the owner's atomic mapping (dmirror_atomic_map).

    GUP(FOLL_GET | FOLL_WRITE) faults the page in writable: COW broken, a DX entry
    restored (its own EXCLUSIVE(NULL) event). Then the entry is cleared and replaced by a
    device-exclusive one carrying soft-dirty; mapcount and reference stay with it
    ("treat device-exclusive entries as present"). The folio is dirty from here on (GUP
    with FOLL_TOUCH marks it; the dirty PTE's folio_mark_dirty): nothing to remember.
    Return: 0 (*pfn_out the frame), EFAULT (GUP), EOPNOTSUPP (not anon), EBUSY (the folio
    lock is held: folio_lock_killable would sleep, the model refuses), -1 on OOM."""
    cdef int64_t pfn = _follow_page(m, mm, vpn, GUP_WRITE | GUP_SPLIT)   # FOLL_SPLIT_PMD
    cdef folio_t *folio
    cdef uint64_t *ptep
    cdef uint64_t pte
    if pfn == GUP_EFAULT:
        return -1 if m.kmem.oom else EFAULT
    folio = pfn_folio(&m.mem, <uint32_t>pfn)
    if pfn == 0 or not (folio.flags & PG_anon):
        return EOPNOTSUPP                        # !folio_test_anon: shmem / page cache
    if folio_test_locked(page_folio(&m.mem, <uint32_t>pfn)):
        return EBUSY
    # MMU_NOTIFY_EXCLUSIVE with owner: every other device unmaps the page now
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_EXCLUSIVE, vpn, vpn + 1, dev)
    ptep = pte_offset_map(mm.pgd, vpn)
    pte = ptep[0]                                # ptep_clear_flush: present, writable
    ptep[0] = make_device_exclusive_entry(<uint32_t>pfn, pte_soft_dirty(pte))
    if _mirror_set(m, m.devs[dev], mm.pid, vpn, <uint32_t>pfn, MIRROR_ATOMIC_RW) < 0:
        return -1
    pfn_out[0] = <uint32_t>pfn
    return 0


cdef void sys_dexcl(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn,
                    mm_res_t *r) noexcept nogil:
    cdef uint32_t pfn
    if not dmirror_subscribed(m, mm, dev, vpn):
        res_set(r, RES_ERRNO, EINVAL)
        return
    res_status(r, make_device_exclusive(m, mm, dev, vpn, &pfn))


cdef void sys_datomic(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn, uint64_t add,
                      mm_res_t *r) noexcept nogil:
    """Device atomic add (wrapping): through an atomic mirror entry, else take exclusive
    access first (a dexcl failure is the result). Return the old value."""
    cdef uint64_t e = mirror_lookup(m.devs[dev], mm.pid, vpn)
    cdef uint32_t pfn
    cdef int err
    cdef folio_t *folio
    if e & MIRROR_ATOMIC:
        pfn = pte_pfn(e)
    else:
        if not dmirror_subscribed(m, mm, dev, vpn):
            res_set(r, RES_ERRNO, EINVAL)
            return
        err = make_device_exclusive(m, mm, dev, vpn, &pfn)
        if err < 0:
            return
        if err:
            res_set(r, RES_ERRNO, <uint64_t>err)
            return
    folio = pfn_folio(&m.mem, pfn)
    res_set(r, RES_VALUE, folio.value)
    folio_store(folio, folio.value + add)


cdef void sys_devents(machine_t *m, int32_t dev, mm_res_t *r) noexcept nogil:
    """Hand the device's pending events to the result (machine.drained, decoded at the
    API boundary) and clear them."""
    cdef hmm_dev_t *d = m.devs[dev]
    cdef int32_t first = m.nr_drained
    while m.nr_drained + d.nr_events > m.cap_drained:
        if kgrow(&m.kmem, <void **>&m.drained, &m.cap_drained, sizeof(mmu_event_t), 16) < 0:
            return
    if d.nr_events:
        memcpy(&m.drained[first], d.events, d.nr_events * sizeof(mmu_event_t))
    m.nr_drained += d.nr_events
    res_set(r, RES_EVENTS, ((<uint64_t>first) << 32) | <uint32_t>d.nr_events)
    d.nr_events = 0


cdef void hmm_destroy(machine_t *m) noexcept nogil:
    """Free every device, subscription and mm index (the machine is going away)."""
    cdef int32_t i, p
    cdef hmm_dev_t *d
    cdef mm_t *mm
    for i in range(m.nr_devs):
        d = m.devs[i]
        for p in range(d.cap_pt):
            if d.pt[p] != NULL:
                _mirror_drop(m, d, p, 0, PGTABLE_SPAN)   # tables go back empty
                pgd_free_all(d.pt[p], &m.kmem)
        kfree(&m.kmem, d.pt, d.cap_pt * sizeof(uint64_t *))
        kfree(&m.kmem, d.events, d.cap_events * sizeof(mmu_event_t))
        kfree(&m.kmem, d, sizeof(hmm_dev_t))
    kfree(&m.kmem, m.devs, m.cap_devs * sizeof(hmm_dev_t *))
    m.devs = NULL
    m.nr_devs = m.cap_devs = 0
    for p in range(m.nr_procs):
        mm = m.procs[p]
        kfree(&m.kmem, mm.subs, mm.cap_subs * sizeof(itree_node_t))
        mm.subs = NULL
        mm.nr_subs = mm.cap_subs = 0
    kfree(&m.kmem, m.subs, m.cap_subs * sizeof(mmu_interval_sub_t))
    m.subs = NULL
    m.nr_subs = m.cap_subs = 0
    kfree(&m.kmem, m.drained, m.cap_drained * sizeof(mmu_event_t))
    m.drained = NULL
    m.nr_drained = m.cap_drained = 0
