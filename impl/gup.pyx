# gup: get_user_pages for pins (FOLL_PIN) and for /proc/pid/mem writes (FOLL_FORCE),
# mm/gup.c __get_user_pages one page at a time: check_vma_flags, then follow_page_pte,
# and when the entry cannot be used a fault (read / write / FAULT_FLAG_UNSHARE) and a
# retry. A grabbed FOLL_PIN page gets pincount + 1 and one reference (the zero page is
# not accounted, >= 6.5); the pinned anon page is AnonExclusive (I3).

cdef enum:
    GUP_WRITE = 1 << 0          # FOLL_WRITE
    GUP_FORCE = 1 << 1          # FOLL_FORCE
    GUP_PIN = 1 << 2            # FOLL_PIN
    GUP_LONGTERM = 1 << 3       # FOLL_LONGTERM
    GUP_SPLIT = 1 << 4          # FOLL_SPLIT_PMD: a huge PMD met is split first
    GUP_EFAULT = -1             # follow_page result: the page cannot be had


cdef inline bint _check_vma_flags(vma_t *v, int gup) noexcept nogil:
    """check_vma_flags: FOLL_WRITE needs VM_WRITE, or FOLL_FORCE in a COW mapping (every
    private mapping: VM_MAYWRITE is always set); a read needs VM_READ unless FOLL_FORCE.
    VM_IO | VM_PFNMAP (a devmem mapping) is refused first."""
    if v.pfnmap:
        return False
    if gup & GUP_WRITE:
        return v.prot == PROT_RW or ((gup & GUP_FORCE) != 0 and not v.shared)
    return v.prot != PROT_NONE or (gup & GUP_FORCE) != 0


cdef inline bint _can_follow_write_pte(machine_t *m, vma_t *v, uint64_t pte,
                                       int gup) noexcept nogil:
    """Writable, or FOLL_FORCE in a private VMA without VM_WRITE on an AnonExclusive
    anon page (COW already broken) that needs no soft-dirty write fault."""
    cdef folio_t *folio
    if pte_write(pte):
        return True
    if pte_special(pte):
        return False                             # the zero page: vm_normal_page() is NULL
    if m.mutant == MUTANT_RW_PIN_SKIPS_COW_BREAK and (gup & GUP_PIN):
        return True                              # mutant: FOLL_WRITE pins skip the COW break
    if not (gup & GUP_FORCE) or v.shared or v.prot == PROT_RW:
        return False
    if m.mutant == MUTANT_POKE_WRITES_PAGECACHE:
        return True                              # mutant: Dirty COW, any page is followed
    folio = pfn_folio(&m.mem, pte_pfn(pte))
    if (folio.flags & (PG_anon | PG_anon_exclusive)) != (PG_anon | PG_anon_exclusive):
        return False
    # "... and a write-fault isn't required for other reasons": pte_needs_soft_dirty_wp
    return not pte_needs_soft_dirty_wp(v, pte_soft_dirty(pte))


cdef inline bint _gup_must_unshare(machine_t *m, vma_t *v, uint64_t pte, int gup) noexcept nogil:
    """R/O pins only: an anon page that is not AnonExclusive; with FOLL_LONGTERM also the
    zero page and page-cache pages of a COW (private) mapping."""
    cdef folio_t *folio
    if (gup & (GUP_WRITE | GUP_PIN)) != GUP_PIN:
        return False
    if not pte_special(pte):
        folio = pfn_folio(&m.mem, pte_pfn(pte))
        if folio.flags & PG_anon:
            if m.mutant == MUTANT_RO_PIN_SKIPS_UNSHARE:
                return False                     # mutant: pins the shared page as it is
            return not (folio.flags & PG_anon_exclusive)
    return (gup & GUP_LONGTERM) != 0 and not v.shared


cdef inline bint _can_follow_write_pmd(machine_t *m, vma_t *v, uint64_t pmd,
                                       int gup) noexcept nogil:
    """can_follow_write_pmd: writable, or FOLL_FORCE in a private VMA without VM_WRITE on a
    dirty PMD whose head is AnonExclusive (and no soft-dirty write fault wanted)."""
    if pte_write(pmd):
        return True
    if is_huge_zero_pmd(&m.mem, pmd) or not (gup & GUP_FORCE) or v.shared \
            or v.prot == PROT_RW or not pte_dirty(pmd):
        return False
    if not (pfn_folio(&m.mem, pte_pfn(pmd)).flags & PG_anon_exclusive):
        return False
    return not pte_needs_soft_dirty_wp(v, pte_soft_dirty(pmd))


cdef inline bint _gup_must_unshare_pmd(machine_t *m, vma_t *v, uint64_t pmd,
                                       int gup) noexcept nogil:
    """gup_must_unshare(head page) for a R/O pin of a huge PMD: a THP whose head is not
    AnonExclusive; the huge zero folio with FOLL_LONGTERM in a COW mapping."""
    if (gup & (GUP_WRITE | GUP_PIN)) != GUP_PIN:
        return False
    if is_huge_zero_pmd(&m.mem, pmd):
        return (gup & GUP_LONGTERM) != 0 and not v.shared
    return not (pfn_folio(&m.mem, pte_pfn(pmd)).flags & PG_anon_exclusive)


cdef int64_t _follow_page(machine_t *m, mm_t *mm, int64_t vpn, int gup) noexcept nogil:
    """One __get_user_pages step: the pfn to grab, or GUP_EFAULT (no VMA, refused by
    check_vma_flags, or a fault that SIGBUSes). VM_FAULT_OOM sets kmem.oom."""
    cdef int32_t idx = find_vma(mm, vpn)
    cdef uint64_t *ptep
    cdef int rc, tries
    if idx < 0 or not _check_vma_flags(&mm.vmas[idx], gup):
        return GUP_EFAULT
    cdef uint64_t *pmdp
    for tries in range(5):                       # each fault makes the next follow succeed
                                                 # (a DX restore or a split may need more)
        pmdp = huge_pmd_at(mm.pgd, vpn)
        if pmdp != NULL:                         # follow_huge_pmd
            if gup & GUP_SPLIT:
                split_huge_pmd(m, mm, pmdp, vpn & ~(<int64_t>HPAGE_PMD_MASK))
                if m.kmem.oom:
                    return GUP_EFAULT
                continue
            if (gup & GUP_WRITE) and not _can_follow_write_pmd(m, &mm.vmas[idx], pmdp[0], gup):
                rc = handle_mm_fault(m, mm, idx, vpn, FAULT_FLAG_WRITE)
            elif not pte_write(pmdp[0]) and _gup_must_unshare_pmd(m, &mm.vmas[idx], pmdp[0], gup):
                rc = handle_mm_fault(m, mm, idx, vpn, FAULT_FLAG_UNSHARE)
            else:
                return pte_pfn(pmdp[0]) + (vpn & HPAGE_PMD_MASK)   # the subpage
            if rc != VM_FAULT_OK:
                if rc == VM_FAULT_OOM:
                    m.kmem.oom = 1
                return GUP_EFAULT
            continue
        ptep = pte_offset_map(mm.pgd, vpn)
        # none, swap or device-exclusive (follow_page_pte: !pte_present) -> fault
        if ptep == NULL or not pte_present(ptep[0]) or (
                (gup & GUP_WRITE) and not _can_follow_write_pte(m, &mm.vmas[idx], ptep[0], gup)):
            rc = handle_mm_fault(m, mm, idx, vpn, FAULT_FLAG_WRITE if gup & GUP_WRITE else 0)
        elif not pte_write(ptep[0]) and _gup_must_unshare(m, &mm.vmas[idx], ptep[0], gup):
            rc = handle_mm_fault(m, mm, idx, vpn, FAULT_FLAG_UNSHARE)   # -EMLINK
        else:
            return pte_pfn(ptep[0])
        if rc != VM_FAULT_OK:
            if rc == VM_FAULT_OOM:
                m.kmem.oom = 1
            return GUP_EFAULT                    # VM_FAULT_SIGBUS -> -EFAULT
    m.kmem.oom = 1                               # a model bug: report it, never loop
    return GUP_EFAULT


cdef inline void _unpin_pfn(machine_t *m, uint32_t pfn) noexcept nogil:
    """unpin_user_page: drop the pin and its reference (the zero page has neither)."""
    cdef folio_t *folio
    if not page_is_reserved(&m.mem, pfn):        # (a THP subpage: its folio's counts)
        pfn = page_folio_pfn(&m.mem, pfn)
        folio = pfn_folio(&m.mem, pfn)
        folio.pincount -= 1
        folio_put(&m.mem, pfn, folio)


cdef void sys_pin(machine_t *m, mm_t *mm, int64_t vpn, int64_t npages, int32_t mode,
                  mm_res_t *r) noexcept nogil:
    """pin_user_pages over [vpn, vpn + npages), all or nothing (mode: GUP_WRITE |
    GUP_LONGTERM bits). The faults of a failed pin stay; its pins are dropped."""
    cdef int gup = GUP_PIN | mode
    cdef uint32_t *pfns
    cdef int64_t i, pfn
    cdef pin_t *h
    if npages == 0 or npages > PIN_MAX_PAGES:
        res_set(r, RES_ERRNO, EFAULT)            # io_sqe_buffer_register: !ulen || > SZ_1G
        return
    if m.nr_pins == m.cap_pins and kgrow(&m.kmem, <void **>&m.pins, &m.cap_pins,
                                         sizeof(pin_t), 8) < 0:
        return
    pfns = <uint32_t *>kzalloc(&m.kmem, npages * sizeof(uint32_t))
    if pfns == NULL:
        return
    mm.has_pinned = 1                            # mm_set_has_pinned_flag, before the walk
    for i in range(npages):
        pfn = _follow_page(m, mm, vpn + i, gup)
        if pfn == GUP_EFAULT:
            while i > 0:
                i -= 1
                _unpin_pfn(m, pfns[i])
            kfree(&m.kmem, pfns, npages * sizeof(uint32_t))
            if not m.kmem.oom:
                res_set(r, RES_ERRNO, EFAULT)
            return
        if not page_is_reserved(&m.mem, <uint32_t>pfn):   # try_grab_folio(FOLL_PIN)
            page_folio(&m.mem, <uint32_t>pfn).pincount += 1
            folio_get(page_folio(&m.mem, <uint32_t>pfn))
        pfns[i] = <uint32_t>pfn
    h = &m.pins[m.nr_pins]
    h.pfns = pfns
    h.npages = npages
    h.write = (mode & GUP_WRITE) != 0
    h.live = 1
    m.nr_pins += 1
    res_set(r, RES_PIN, <uint64_t>m.nr_pins)


cdef pin_t *pin_lookup(machine_t *m, int64_t handle, int64_t index) noexcept nogil:
    """The live pin "h{handle}" when index < its npages (index -1: any), else NULL."""
    cdef pin_t *h
    if handle < 1 or handle > m.nr_pins:
        return NULL
    h = &m.pins[handle - 1]
    if not h.live or index >= h.npages:
        return NULL
    return h


cdef void sys_unpin(machine_t *m, int64_t handle, mm_res_t *r) noexcept nogil:
    """unpin_user_pages; frames nothing else references are freed."""
    cdef pin_t *h = pin_lookup(m, handle, -1)
    cdef int64_t i
    if h == NULL:
        res_set(r, RES_ERRNO, EINVAL)
        return
    for i in range(h.npages):
        _unpin_pfn(m, h.pfns[i])
    kfree(&m.kmem, h.pfns, h.npages * sizeof(uint32_t))
    h.pfns = NULL
    h.live = 0
    res_set(r, RES_OK, 0)


cdef void sys_poke(machine_t *m, mm_t *mm, int64_t vpn, uint64_t value,
                   mm_res_t *r) noexcept nogil:
    """mem_rw write: access_remote_vm with FOLL_FORCE|FOLL_WRITE; nothing copied -> EIO."""
    cdef int64_t pfn = _follow_page(m, mm, vpn, GUP_WRITE | GUP_FORCE)
    cdef int32_t idx
    if pfn == GUP_EFAULT:
        idx = find_vma(mm, vpn)
        if not m.kmem.oom and idx >= 0 and mm.vmas[idx].pfnmap:
            # __access_remote_vm: GUP failed, vm_ops->access (ttm_bo_vm_access) writes
            # the BO page; no fault, no entry change
            if devmem_store(m, m.files[mm.vmas[idx].file],
                            linear_page_index(&mm.vmas[idx], vpn), value) == 0:
                res_set(r, RES_OK, 0)
            return
        if not m.kmem.oom:
            res_set(r, RES_ERRNO, EIO)
        return
    folio_store(pfn_folio(&m.mem, <uint32_t>pfn), value)   # copy_to_user_page + set_page_dirty_lock
    res_set(r, RES_OK, 0)


cdef void pins_destroy(machine_t *m) noexcept nogil:
    """Free every pin record (the machine is going away; frames are not touched)."""
    cdef int32_t i
    for i in range(m.nr_pins):
        if m.pins[i].live:
            kfree(&m.kmem, m.pins[i].pfns, m.pins[i].npages * sizeof(uint32_t))
    kfree(&m.kmem, m.pins, m.cap_pins * sizeof(pin_t))
    m.pins = NULL
    m.nr_pins = m.cap_pins = 0
