# hmm: mirroring devices (lib/test_hmm.c's dmirror shape): each device keeps one
# device page table per process it mirrors, fills it through hmm_range_fault
# (mm/hmm.c) or make_device_exclusive (mm/rmap.c), and empties it from its interval
# notifier callback. Devices "d{k}" exist implicitly; the encoder gives each name a
# slot (machine.devs) on first sight.

cdef enum:
    # Mirror entry: pfn << PTE_PFN_SHIFT | permission bits, kept in radix tables of the
    # same shape as the CPU's (pagetable.pxd), one tree per (device, process).
    MIRROR_VALID = 1 << 0       # the device maps the frame: perm r
    MIRROR_WRITE = 1 << 1       # ... and may write it: perm rw
    MIRROR_ATOMIC = 1 << 2      # ... atomically: the CPU entry is device-exclusive
    MIRROR_R = MIRROR_VALID
    MIRROR_RW = MIRROR_VALID | MIRROR_WRITE
    MIRROR_ATOMIC_RW = MIRROR_VALID | MIRROR_WRITE | MIRROR_ATOMIC
    MIRROR_PERM_MASK = 7

ctypedef struct hmm_dev_t:
    uint64_t **pt           # pt[proc]: the device page table (PGD) for process proc, or NULL
    int32_t cap_pt          # slots in pt
    int64_t nr_mirror       # mirror entries over all processes
    mmu_event_t *events     # invalidations received since the last devents (pending)
    int32_t nr_events
    int32_t cap_events

cdef int32_t hmm_dev_new(machine_t *m) noexcept nogil
cdef void hmm_destroy(machine_t *m) noexcept nogil
cdef void dmirror_interval_invalidate(machine_t *m, int32_t sub, int32_t kind, int64_t start,
                                      int64_t end, int32_t owner) noexcept nogil
cdef uint64_t mirror_lookup(hmm_dev_t *d, int32_t proc, int64_t vpn) noexcept nogil
cdef void sys_mirror(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn, int64_t npages,
                     mm_res_t *r) noexcept nogil
cdef void sys_unmirror(machine_t *m, int64_t k, mm_res_t *r) noexcept nogil
cdef void sys_daccess(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn, bint write,
                      uint64_t value, mm_res_t *r) noexcept nogil
cdef void sys_dexcl(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn,
                    mm_res_t *r) noexcept nogil
cdef void sys_datomic(machine_t *m, mm_t *mm, int32_t dev, int64_t vpn, uint64_t add,
                      mm_res_t *r) noexcept nogil
cdef void sys_devents(machine_t *m, int32_t dev, mm_res_t *r) noexcept nogil
