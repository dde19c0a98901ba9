# syscall: the op dispatcher (one entry per op code) and the small ops: CPU
# read/write with the arch access check, fork, exit, shmem file I/O and the probes.
#
# Rules: an op naming an exited (or never created) process returns ESRCH before
# anything else; ops no model rule covers yet are encoded as OP_ENOSYS. Pins and
# poke live in gup.pyx, the device ops in hmm.pyx, ksm_scan in ksm.pyx. Every store
# into a folio (CPU write, write(2), poke, pwrite, dwrite, datomic) marks it dirty
# (folio_store).


cdef extern from *:
    """
    #define MMDIFF_DEV_FRAME_KEY (((int64_t)1) << 62)
    """
    # _frame_at of a device page: this bit | file index << 51 | pgoff (`same` compares them)
    const int64_t DEV_FRAME_KEY "MMDIFF_DEV_FRAME_KEY"


cdef mm_t *proc_lookup(machine_t *m, int32_t proc) noexcept nogil:
    """The live address space of process index proc, NULL -> ESRCH."""
    if proc < 0 or proc >= m.nr_procs or not m.procs[proc].alive:
        return NULL
    return m.procs[proc]


cdef int32_t _proc_add(machine_t *m, mm_t *mm) noexcept nogil:
    """Register a new process; its index k names it "p{k}". -1 on OOM."""
    if m.nr_procs == m.cap_procs and kgrow(&m.kmem, <void **>&m.procs, &m.cap_procs,
                                           sizeof(mm_t *), 8) < 0:
        return -1
    m.procs[m.nr_procs] = mm
    mm.pid = m.nr_procs
    m.nr_procs += 1
    return m.nr_procs - 1


cdef bint fault_in(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, int flags,
                   mm_res_t *r) noexcept nogil:
    """handle_mm_fault for a CPU access (the caller looks the entry up again). False when
    the fault failed: SIGBUS is set as the result; VM_FAULT_OOM leaves the result unset,
    which run_batch turns into MemoryError (a model failure, not a kernel result)."""
    cdef int rc = handle_mm_fault(m, mm, idx, vpn, flags)
    if rc == VM_FAULT_SIGBUS:
        res_set(r, RES_SIGNAL, SIGBUS)
        return False
    return rc == VM_FAULT_OK


cdef void sys_read(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil:
    """CPU load: no VMA or no read permission -> SEGV; else fault in if needed."""
    cdef int32_t idx = find_vma(mm, vpn)
    cdef uint64_t pte
    if idx < 0 or mm.vmas[idx].prot == PROT_NONE:
        res_set(r, RES_SIGNAL, SIGSEGV)          # do_user_addr_fault: bad_area / access_error
        return
    pte = pte_lookup(mm.pgd, vpn)                # a PTE or a huge PMD's subpage
    if not pte_present(pte):                     # none, swap, or a DX entry to restore
        if not fault_in(m, mm, idx, vpn, 0, r):
            return
        pte = pte_lookup(mm.pgd, vpn)
    if mm.vmas[idx].pfnmap:                      # a device page: the BO's value
        res_set(r, RES_VALUE, devmem_load(m.files[mm.vmas[idx].file],
                                          linear_page_index(&mm.vmas[idx], vpn)))
        return
    res_set(r, RES_VALUE, pfn_folio(&m.mem, pte_pfn(pte)).value)


cdef void sys_write(machine_t *m, mm_t *mm, int64_t vpn, uint64_t value,
                    mm_res_t *r) noexcept nogil:
    """CPU store: needs an rw VMA; a missing or read-only entry faults first (a DX
    entry: the fault restores it, and the store is retried on the restored entry)."""
    cdef int32_t idx = find_vma(mm, vpn)
    cdef uint64_t *ptep
    cdef uint64_t pte
    cdef int tries
    if idx < 0 or mm.vmas[idx].prot != PROT_RW:
        res_set(r, RES_SIGNAL, SIGSEGV)
        return
    for tries in range(4):
        pte = pte_lookup(mm.pgd, vpn)            # a PTE or a huge PMD's subpage
        if pte_write(pte):                       # never true for none or DX entries
            break
        if not fault_in(m, mm, idx, vpn, FAULT_FLAG_WRITE, r):
            return
    else:
        m.kmem.oom = 1                           # a model bug: report it, never loop
        return
    ptep = huge_pud_at(mm.pgd, vpn)              # the hardware sets dirty on a store
    if ptep == NULL:
        ptep = huge_pmd_at(mm.pgd, vpn)
    if ptep == NULL:
        ptep = pte_offset_map(mm.pgd, vpn)
    ptep[0] = pte_mkdirty(ptep[0])
    if mm.vmas[idx].pfnmap:                      # a device page: into the BO
        if devmem_store(m, m.files[mm.vmas[idx].file],
                        linear_page_index(&mm.vmas[idx], vpn), value) == 0:
            res_set(r, RES_OK, 0)
        return
    folio_store(pfn_folio(&m.mem, pte_pfn(pte)), value)
    res_set(r, RES_OK, 0)


cdef void sys_fork(machine_t *m, mm_t *mm, mm_res_t *r) noexcept nogil:
    """fork: dup_mmap; when it fails (ENOMEM: a locked device-exclusive folio) the
    child is torn down (mmput -> exit_mmap) and gets no name; what the parent's
    address space went through stays."""
    cdef int err = 0
    cdef mm_t *child = dup_mmap(m, mm, &err)
    cdef int32_t k
    if child == NULL:
        return
    if err:
        exit_mmap(m, child)
        kfree(&m.kmem, child, sizeof(mm_t))
        if not m.kmem.oom:
            res_set(r, RES_ERRNO, <uint64_t>err)
        return
    k = _proc_add(m, child)
    if k < 0 or m.kmem.oom:
        return
    res_set(r, RES_PROC, <uint64_t>k)


cdef void sys_file(machine_t *m, mm_op_t *op, mm_res_t *r) noexcept nogil:
    """`file F N [devmem]`: a shmem file of N pages, or a devmem BO (devmem.pyx) of N
    pages; an existing name -> EEXIST; N beyond the file size limit -> EINVAL (both
    kinds: shmem_file_setup's checks, devmem.md)."""
    cdef shmem_t *f = m.files[op.a0]
    if f.live:
        res_set(r, RES_ERRNO, EEXIST)
        return
    if op.a1 >= FILE_LIMIT_PAGES:        # ftruncate to a negative length
        res_set(r, RES_ERRNO, EINVAL)
        return
    f.live = 1
    f.size = op.a1
    f.devmem = 1 if op.a2 else 0
    res_set(r, RES_OK, 0)


cdef shmem_t *file_for_io(machine_t *m, mm_op_t *op, mm_res_t *r) noexcept nogil:
    """fdget + rw_verify_area for read(2)/write(2): the file, or NULL with the errno set."""
    cdef shmem_t *f = m.files[op.a0]
    if not f.live:
        res_set(r, RES_ERRNO, EBADF)
        return NULL
    if op.a1 >= FILE_LIMIT_PAGES:        # pos < 0 as a loff_t
        res_set(r, RES_ERRNO, EINVAL)
        return NULL
    return f


cdef void sys_fread(machine_t *m, mm_op_t *op, mm_res_t *r) noexcept nogil:
    """read(2) of one page: a hole or beyond EOF reads 0 and allocates nothing; a
    swapped page is swapped in (shmem_get_folio)."""
    cdef shmem_t *f = file_for_io(m, op, r)
    cdef uint64_t e
    cdef uint32_t pfn
    if f == NULL:
        return
    if f.devmem:                                 # a BO page (0 past the end)
        res_set(r, RES_VALUE, devmem_load(f, op.a1))
        return
    e = xa_load_entry(f, op.a1)
    if e == 0 or op.a1 >= f.size:
        res_set(r, RES_VALUE, 0)
        return
    pfn = shmem_get_folio(m, f, op.a1) if xa_is_swap(e) else <uint32_t>e
    if pfn == 0:
        return                                   # kmem.oom is set
    res_set(r, RES_VALUE, pfn_folio(&m.mem, pfn).value)


cdef void sys_fwrite(machine_t *m, mm_op_t *op, mm_res_t *r) noexcept nogil:
    """write(2) of one page: fills a hole with a new cache page, extends i_size."""
    cdef shmem_t *f = file_for_io(m, op, r)
    cdef uint32_t pfn
    if f == NULL:
        return
    if f.devmem:                                 # a BO page; past the end: as shmem,
        if devmem_store(m, f, op.a1, <uint64_t>op.a2) == 0:   # the size grows (devmem.md)
            if op.a1 >= f.size:
                f.size = op.a1 + 1
            res_set(r, RES_OK, 0)
        return
    pfn = shmem_get_folio(m, f, op.a1)
    if pfn == 0:
        return
    folio_store(pfn_folio(&m.mem, pfn), <uint64_t>op.a2)
    if op.a1 >= f.size:
        f.size = op.a1 + 1
    res_set(r, RES_OK, 0)


cdef uint64_t entry_state(machine_t *m, mm_t *mm, int64_t vpn) noexcept nogil:
    """STATE_* code of the entry at vpn (ENTRY_NONE without a VMA or an entry)."""
    cdef uint64_t *ptep
    if find_vma(mm, vpn) < 0:
        return ENTRY_NONE
    ptep = huge_pud_at(mm.pgd, vpn)
    if ptep != NULL:
        return pud_state_code(ptep[0])           # a PUD leaf: one entry for the slot
    ptep = huge_pmd_at(mm.pgd, vpn)
    if ptep != NULL:
        return pmd_state_code(m, ptep[0])        # the PMD's description
    ptep = pte_offset_map(mm.pgd, vpn)
    if ptep == NULL or ptep[0] == 0:
        return ENTRY_NONE
    return pte_state_code(m, ptep[0])


cdef uint64_t pte_state_code(machine_t *m, uint64_t pte) noexcept nogil:
    """STATE_* code of a non-none entry: kind (zero/anon/file/devexcl/swap) and the
    reported bits. A device-exclusive entry is never writable or dirty; it reports the
    soft-dirty bit it carries and PageAnonExclusive of its page. A swap entry reports
    its soft-dirty bit and its exclusive marker."""
    cdef uint64_t code
    cdef folio_t *folio
    if not pte_present(pte):
        if is_swap_pte(pte):
            code = ENTRY_SWAP
            if pte_swp_soft_dirty(pte):
                code |= STATE_SOFT_DIRTY
            if pte_swp_exclusive(pte):
                code |= STATE_EXCL
            return code
        code = ENTRY_DEVEXCL
        if pte_swp_soft_dirty(pte):
            code |= STATE_SOFT_DIRTY
        if pfn_folio(&m.mem, pte_pfn(pte)).flags & PG_anon_exclusive:
            code |= STATE_EXCL
        return code
    if pte_is_dev(pte):
        code = ENTRY_PFN                         # a pfn PTE of a pfnmap VMA
    elif pte_special(pte):
        code = ENTRY_ZERO
    else:
        folio = pfn_folio(&m.mem, pte_pfn(pte))
        if folio.flags & PG_anon:
            code = ENTRY_ANON
            if folio.flags & PG_anon_exclusive:
                code |= STATE_EXCL
        else:
            code = ENTRY_FILE
    return code | entry_state_bits(pte)


cdef int64_t _frame_at(machine_t *m, mm_t *mm, int64_t vpn) noexcept nogil:
    """The pfn mapped at vpn now (present or device-exclusive entry; a huge PMD's
    subpage; the huge zero folio as one frame), -1 for none or a swap entry (no frame;
    never faults)."""
    cdef uint64_t *ptep
    cdef uint32_t pfn
    cdef int32_t idx = find_vma(mm, vpn)
    cdef uint64_t pte
    if idx < 0:
        return -1
    if mm.vmas[idx].pfnmap:                      # a device page: named by (F, pgoff)
        pte = pte_lookup(mm.pgd, vpn)
        if pte == 0:
            return -1
        return DEV_FRAME_KEY | ((<int64_t>mm.vmas[idx].file) << 51) \
            | linear_page_index(&mm.vmas[idx], vpn)
    ptep = huge_pmd_at(mm.pgd, vpn)
    if ptep != NULL:
        pfn = pte_pfn(ptep[0])
        return pfn if is_hzero_pfn(&m.mem, pfn) else pfn + (vpn & HPAGE_PMD_MASK)
    ptep = pte_offset_map(mm.pgd, vpn)
    if ptep == NULL or ptep[0] == 0 or is_swap_pte(ptep[0]):
        return -1
    return pte_pfn(ptep[0])


cdef folio_t *_folio_at(machine_t *m, mm_t *mm, int64_t vpn) noexcept nogil:
    """The folio mapped at vpn (present or DX entry), NULL for none or the zero page."""
    cdef int64_t pfn = _frame_at(m, mm, vpn)
    if pfn < 0 or pfn >= DEV_FRAME_KEY:
        return NULL                              # none, or a device page: no folio
    if page_is_reserved(&m.mem, <uint32_t>pfn):
        return NULL
    return page_folio(&m.mem, <uint32_t>pfn)     # the lock is the folio's


cdef void sys_lock(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil:
    """`lock`: take the folio lock of the page mapped at vpn for the caller (the way a
    driver holds it between make_device_exclusive and folio_unlock). No frame -> EFAULT,
    already locked -> EBUSY."""
    cdef folio_t *folio = _folio_at(m, mm, vpn)
    if folio == NULL:
        res_set(r, RES_ERRNO, EFAULT)
    elif not folio_trylock(folio):
        res_set(r, RES_ERRNO, EBUSY)
    else:
        res_set(r, RES_OK, 0)


cdef void sys_unlock(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil:
    """`unlock`: folio_unlock of the page mapped at vpn; no frame or not locked -> EINVAL."""
    cdef folio_t *folio = _folio_at(m, mm, vpn)
    if folio == NULL or not folio_test_locked(folio):
        res_set(r, RES_ERRNO, EINVAL)
    else:
        folio_unlock(folio)
        res_set(r, RES_OK, 0)


cdef void do_op(machine_t *m, mm_op_t *op, mm_res_t *r) noexcept nogil:
    """Execute one encoded op into *r (an OOM leaves kmem.oom set)."""
    cdef mm_t *mm = NULL
    cdef mm_t *mm2
    cdef int64_t f1, f2
    cdef pin_t *h
    res_set(r, RES_ERRNO, ENOSYS)
    if op.code == OP_ENOSYS:
        return
    if op.proc >= 0:                                    # the ops that name a process
        mm = proc_lookup(m, op.proc)
        if mm == NULL:
            res_set(r, RES_ERRNO, ESRCH)
            return
    if op.code == OP_READ:
        sys_read(m, mm, op.a0, r)
    elif op.code == OP_WRITE:
        sys_write(m, mm, op.a0, <uint64_t>op.a1, r)
    elif op.code == OP_MMAP:
        sys_mmap(m, mm, op, r)
    elif op.code == OP_MUNMAP:
        sys_munmap(m, mm, op, r)
    elif op.code == OP_MPROTECT:
        sys_mprotect(m, mm, op, r)
    elif op.code == OP_MADVISE:
        sys_madvise(m, mm, op, r)
    elif op.code == OP_FORK:
        sys_fork(m, mm, r)
    elif op.code == OP_EXIT:
        exit_mmap(m, mm)
        res_set(r, RES_OK, 0)
    elif op.code == OP_FILE:
        sys_file(m, op, r)
    elif op.code == OP_FREAD:
        sys_fread(m, op, r)
    elif op.code == OP_FWRITE:
        sys_fwrite(m, op, r)
    elif op.code == OP_STATE:
        res_set(r, RES_STATE, entry_state(m, mm, op.a0))
    elif op.code == OP_SAME:
        mm2 = proc_lookup(m, <int32_t>op.a1)
        if mm2 == NULL:
            res_set(r, RES_ERRNO, ESRCH)
            return
        f1 = _frame_at(m, mm, op.a0)
        f2 = _frame_at(m, mm2, op.a2)
        res_set(r, RES_SAME, 1 if f1 >= 0 and f1 == f2 else 0)
    elif op.code == OP_PIN:
        sys_pin(m, mm, op.a0, op.a1, <int32_t>op.a2, r)
    elif op.code == OP_POKE:
        sys_poke(m, mm, op.a0, <uint64_t>op.a1, r)
    elif op.code == OP_UNPIN:
        sys_unpin(m, op.a0, r)
    elif op.code == OP_PREAD or op.code == OP_PWRITE:
        h = pin_lookup(m, op.a0, op.a1)
        if h == NULL:
            res_set(r, RES_ERRNO, EINVAL)               # no such pin, or index out of range
        elif op.code == OP_PREAD:
            res_set(r, RES_VALUE, pfn_folio(&m.mem, h.pfns[op.a1]).value)
        elif not h.write:
            res_set(r, RES_ERRNO, EPERM)                # DMA write through a read-only pin
        else:
            folio_store(pfn_folio(&m.mem, h.pfns[op.a1]), <uint64_t>op.a2)
            res_set(r, RES_OK, 0)
    elif op.code == OP_MIRROR:
        sys_mirror(m, mm, <int32_t>op.a0, op.a1, op.a2, r)
    elif op.code == OP_UNMIRROR:
        sys_unmirror(m, op.a0, r)
    elif op.code == OP_DREAD or op.code == OP_DWRITE:
        sys_daccess(m, mm, <int32_t>op.a0, op.a1, op.code == OP_DWRITE, <uint64_t>op.a2, r)
    elif op.code == OP_DEXCL:
        sys_dexcl(m, mm, <int32_t>op.a0, op.a1, r)
    elif op.code == OP_DATOMIC:
        sys_datomic(m, mm, <int32_t>op.a0, op.a1, <uint64_t>op.a2, r)
    elif op.code == OP_DEVENTS:
        sys_devents(m, <int32_t>op.a0, r)
    elif op.code == OP_LOCK:
        sys_lock(m, mm, op.a0, r)
    elif op.code == OP_UNLOCK:
        sys_unlock(m, mm, op.a0, r)
    elif op.code == OP_KSM_SCAN:
        sys_ksm_scan(m, r)
    elif op.code == OP_SET:
        sys_set(m, op.a0, op.a1, r)
    elif op.code == OP_SPLIT:
        sys_split(m, mm, op.a0, r)
    elif op.code == OP_SPLIT_FOLIO:                     # folio_split.pyx
        sys_split_folio(m, mm, op.a0, r)
    elif op.code == OP_WP_RANGE:                        # dirty.pyx
        sys_wp_range(m, <int32_t>op.a0, op.a1, op.a2, r)
    elif op.code == OP_CLEAN_RECORD:
        sys_clean_record(m, <int32_t>op.a0, op.a1, op.a2, r)
    elif op.code == OP_CLEAR_REFS:                      # softdirty.pyx
        sys_clear_refs(m, mm, r)


cdef int64_t run_ops(machine_t *m, mm_op_t *ops, mm_res_t *res, int64_t n) noexcept nogil:
    """Execute n ops in order; stop early on OOM. Return: ops completed."""
    cdef int64_t i
    for i in range(n):
        do_op(m, &ops[i], &res[i])
        if m.kmem.oom:
            return i
    return n
