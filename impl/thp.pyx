# thp: huge PMD faults, split, zap, mprotect, the `split` and `set` ops and MADV_COLLAPSE.
#
# Rules (thp.md): a huge PMD maps an anon THP (AnonExclusive = the head's flag) or the
# huge zero folio (read-only, clean). Every split fires MMU_NOTIFY_CLEAR over the block
# first; so do a huge-zero write (new THP) and a collapse. A split leaves 512 PTEs with
# the PMD's write/dirty/soft-dirty bits (the zero page for the huge zero folio); the THP
# stays one folio (PTE-mapped). Faults that decline (FALLBACK) continue at PTE level.


cdef bint thp_vma_allowable(machine_t *m, vma_t *v, int64_t vpn) noexcept nogil:
    """thp_vma_allowable_order(vma, PMD_ORDER) for a fault: private anon, not
    VM_NOHUGEPAGE, `thp` always (or madvise with VM_HUGEPAGE), and the aligned block
    inside the VMA (thp_vma_suitable_order). No prot check."""
    cdef int64_t haddr = vpn & ~(<int64_t>HPAGE_PMD_MASK)
    if v.file != NO_FILE or v.shared or (v.madv & VM_NOHUGEPAGE):
        return False
    if m.thp_mode == THP_NEVER or (m.thp_mode == THP_MADVISE and not (v.madv & VM_HUGEPAGE)):
        return False
    return haddr >= v.start and haddr + HPAGE_PMD_NR <= v.end


cdef void split_huge_pmd(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t haddr) noexcept nogil:
    """__split_huge_pmd (freeze = false) of the huge PMD at pmdp: CLEAR over the block,
    then a PTE table: 512 zero-page PTEs for the huge zero folio; for a THP one PTE per
    subpage with the PMD's write/dirty/soft-dirty/young bits, every subpage mapcount + 1
    (AnonExclusive := the head's when the head has it), refcount + 511,
    entire_mapcount - 1, MM ids: add(mm, 512) then sub(mm, 1)."""
    cdef uint64_t pmd = pmdp[0]
    cdef uint32_t h = pte_pfn(pmd)
    cdef uint64_t *t
    cdef uint64_t bits
    cdef int32_t i
    cdef folio_t *head
    cdef folio_t *sub
    cdef bint ae
    if pte_is_dev(pmd):
        devmem_zap_pmd(m, mm, pmdp, haddr)       # a special VMA: zapped, not split
        return
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_NR, NO_OWNER)
    t = table_alloc(&m.kmem)
    if t == NULL:
        return
    if is_hzero_pfn(&m.mem, h):                  # __split_huge_zero_page_pmd
        for i in range(HPAGE_PMD_NR):
            t[i] = pfn_pte(0, _PAGE_SPECIAL | _PAGE_ACCESSED)
    else:
        head = pfn_folio(&m.mem, h)
        ae = (head.flags & PG_anon_exclusive) != 0
        if m.mutant == MUTANT_SPLIT_MARKS_SHARED_EXCLUSIVE:
            ae = True                            # mutant: RMAP_EXCLUSIVE for a shared THP
        bits = pmd & (_PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED)
        if m.mutant == MUTANT_SPLIT_DROPS_DIRTY:
            bits &= ~(<uint64_t>_PAGE_DIRTY)     # mutant: the PTEs come out clean
        for i in range(HPAGE_PMD_NR):
            t[i] = pfn_pte(h + i, bits)
            sub = pfn_folio(&m.mem, h + i)
            sub.mapcount += 1                    # folio_add_anon_rmap_ptes
            if ae:
                sub.flags |= PG_anon_exclusive   # RMAP_EXCLUSIVE: every subpage
        head.refcount += HPAGE_PMD_NR - 1        # folio_ref_add(folio, HPAGE_PMD_NR - 1)
        thp_mm_add(&m.mem, h, mm_id_of(mm), HPAGE_PMD_NR)
        thp_entire(&m.mem, h)[0] -= 1            # folio_remove_rmap_pmd
        thp_mm_sub(&m.mem, h, mm_id_of(mm), 1)
    for i in range(TABLE_HDR_WORDS):
        table_used(t)[i] = ~(<uint64_t>0)        # all 512 entries used
    pmdp[0] = (<uint64_t><uintptr_t>t) | _PAGE_TABLE    # pmd_populate (slot stays used)


cdef void split_huge_pmd_address(machine_t *m, mm_t *mm, int64_t vpn) noexcept nogil:
    """split_huge_pmd_address: mm_find_pmd finds a PMD slot whenever vpn's PUD entry is
    present (a PMD table, or a PUD leaf: pud_present), and __split_huge_pmd then fires
    MMU_NOTIFY_CLEAR over the block whatever is there, and splits a huge PMD if there is
    one (split_huge_pmd fires that CLEAR itself: one in all). A PUD leaf is not touched."""
    cdef int64_t haddr = vpn & ~(<int64_t>HPAGE_PMD_MASK)
    cdef uint64_t *pudp = pud_offset_map(mm.pgd, vpn)
    cdef uint64_t *pmdp
    if pudp == NULL or pudp[0] == 0:
        return                                   # mm_find_pmd: NULL
    pmdp = huge_pmd_at(mm.pgd, vpn)
    if pmdp != NULL:
        split_huge_pmd(m, mm, pmdp, haddr)
    else:
        mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_NR,
                                      NO_OWNER)


cdef void zap_huge_pmd(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t haddr) noexcept nogil:
    """zap_huge_pmd: clear the PMD; a THP loses the mapping (entire - 1, MM id sub,
    folio_put: freed at 0); the huge zero folio carries no counts."""
    cdef uint32_t h = pte_pfn(pmdp[0])
    cdef folio_t *head
    cdef bint dev = pte_is_dev(pmdp[0])
    pmd_clear(pmdp, haddr)
    if dev or is_hzero_pfn(&m.mem, h):
        return                                   # no counts: special PMD, huge zero
    head = pfn_folio(&m.mem, h)
    thp_entire(&m.mem, h)[0] -= 1
    thp_mm_sub(&m.mem, h, mm_id_of(mm), 1)
    folio_put(&m.mem, h, head)


cdef inline uint64_t _new_thp_pmd(vma_t *v, uint32_t h) noexcept nogil:
    # map_anon_folio_pmd: maybe_pmd_mkwrite(pmd_mkdirty(mk_huge_pmd(page, vm_page_prot)))
    return pfn_pte(h, _PAGE_PSE | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
                   | (_PAGE_RW if v.prot == PROT_RW else 0))


cdef void _map_new_thp(machine_t *m, mm_t *mm, vma_t *v, uint64_t *pmdp, int64_t haddr,
                       uint32_t h, bint replace) noexcept nogil:
    """folio_add_new_anon_rmap(RMAP_EXCLUSIVE) of a new THP at the PMD slot."""
    pfn_folio(&m.mem, h).flags |= PG_anon_exclusive
    thp_entire(&m.mem, h)[0] = 1
    thp_mm_add(&m.mem, h, mm_id_of(mm), 1)
    if replace:
        pmdp[0] = _new_thp_pmd(v, h)
    else:
        pmd_set(pmdp, haddr, _new_thp_pmd(v, h))


cdef int do_huge_pmd_anonymous_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                                    int flags) noexcept nogil:
    """pmd_none in an eligible VMA: a read fault maps the huge zero folio (thp_zero 1),
    anything else a new zeroed THP, or FALLBACK when the allocation fails."""
    cdef int64_t haddr = vpn & ~(<int64_t>HPAGE_PMD_MASK)
    cdef uint64_t *pmdp = pmd_alloc_map(mm.pgd, &m.kmem, vpn)
    cdef uint32_t h
    if pmdp == NULL:
        return VM_FAULT_OOM
    anon_vma_prepare(m, mm, idx)                 # vmf_anon_prepare, for the huge zero too
    if not (flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) and m.thp_zero:
        h = hzero_get(&m.mem, &m.kmem)           # set_huge_zero_folio: read-only, clean
        if h == 0:
            return VM_FAULT_OOM
        pmd_set(pmdp, haddr, pfn_pte(h, _PAGE_PSE | _PAGE_ACCESSED))
        return VM_FAULT_OK
    if m.thp_alloc_fail:
        return VM_FAULT_FALLBACK
    h = thp_alloc(&m.mem, &m.kmem)
    if h == 0:
        return VM_FAULT_OOM
    _map_new_thp(m, mm, &mm.vmas[idx], pmdp, haddr, h, False)
    return VM_FAULT_OK


cdef int do_huge_pmd_wp_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                             uint64_t *pmdp, int flags) noexcept nogil:
    """Write or unshare fault on a read-only huge PMD (wp_huge_pmd -> do_huge_pmd_wp_page).
    Huge zero: a new zeroed THP (CLEAR first), or split + FALLBACK when allocation fails.
    THP: reuse when AnonExclusive(head) or refcount == 1 (then set it); else split +
    FALLBACK. Reuse: unshare changes nothing more; a write makes the PMD dirty, soft-dirty
    and writable with VM_WRITE."""
    cdef int64_t haddr = vpn & ~(<int64_t>HPAGE_PMD_MASK)
    cdef vma_t *v = &mm.vmas[idx]
    cdef uint64_t pmd = pmdp[0]
    cdef uint32_t h = pte_pfn(pmd)
    cdef folio_t *head
    if is_hzero_pfn(&m.mem, h):                  # do_huge_zero_wp_pmd
        if m.mutant == MUTANT_HUGE_ZERO_WRITTEN_IN_PLACE and not (flags & FAULT_FLAG_UNSHARE):
            # mutant: the huge zero PMD itself is made writable and dirty
            pmdp[0] = pmd | _PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
            return VM_FAULT_OK
        if m.thp_alloc_fail:
            split_huge_pmd(m, mm, pmdp, haddr)
            return VM_FAULT_FALLBACK
        anon_vma_prepare(m, mm, idx)
        h = thp_alloc(&m.mem, &m.kmem)
        if h == 0:
            return VM_FAULT_OOM
        mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_NR,
                                      NO_OWNER)
        _map_new_thp(m, mm, &mm.vmas[idx], pmdp, haddr, h, True)
        return VM_FAULT_OK
    head = pfn_folio(&m.mem, h)
    if not (head.flags & PG_anon_exclusive):
        if head.refcount != 1:
            split_huge_pmd(m, mm, pmdp, haddr)   # fallback: do_wp_page on the subpage
            return VM_FAULT_FALLBACK
        head.flags |= PG_anon_exclusive          # folio_move_anon_rmap + SetPageAnonExclusive
    if flags & FAULT_FLAG_UNSHARE:
        return VM_FAULT_OK
    pmd |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
    if v.prot == PROT_RW:
        pmd |= _PAGE_RW                          # maybe_pmd_mkwrite
    pmdp[0] = pmd
    return VM_FAULT_OK


cdef void change_huge_pmd(machine_t *m, vma_t *v, uint64_t *pmdp) noexcept nogil:
    """change_huge_pmd for the VMA's new prot (private anon): read-only, then writable
    again only for an AnonExclusive THP when the prot has write and soft-dirty tracking
    does not want a fault (can_change_pmd_writable). Dirty/soft-dirty kept; the huge
    zero folio stays read-only."""
    cdef uint64_t pmd = pte_wrprotect(pmdp[0])
    cdef uint32_t h = pte_pfn(pmd)
    if pte_is_dev(pmd):
        devmem_change_pmd(v, pmdp)               # a special PMD (devmem.pyx)
        return
    if v.prot == PROT_RW and not v.shared and not is_hzero_pfn(&m.mem, h) \
            and (pfn_folio(&m.mem, h).flags & PG_anon_exclusive) \
            and not pte_needs_soft_dirty_wp(v, pte_soft_dirty(pmd)):
        pmd = pte_mkwrite(pmd)
    pmdp[0] = pmd


cdef uint64_t pmd_state_code(machine_t *m, uint64_t pmd) noexcept nogil:
    """STATE_* code of a huge PMD: hzero or anon (excl = AnonExclusive of the head)."""
    cdef uint64_t code
    if pte_is_dev(pmd):
        code = ENTRY_PFN                         # a special PMD of a pfnmap VMA
    elif is_huge_zero_pmd(&m.mem, pmd):
        code = ENTRY_HZERO
    else:
        code = ENTRY_ANON
        if pfn_folio(&m.mem, pte_pfn(pmd)).flags & PG_anon_exclusive:
            code |= STATE_EXCL
    code |= STATE_PMD
    return code | entry_state_bits(pmd)


cdef void sys_split(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil:
    """`split P VPN` (split_huge_pmd_address, forced): no VMA -> EFAULT, no huge PMD in
    the block -> EINVAL."""
    cdef uint64_t *pmdp
    if find_vma(mm, vpn) < 0:
        res_set(r, RES_ERRNO, EFAULT)
        return
    pmdp = huge_pmd_at(mm.pgd, vpn)
    if pmdp == NULL:
        res_set(r, RES_ERRNO, EINVAL)
        return
    split_huge_pmd(m, mm, pmdp, vpn & ~(<int64_t>HPAGE_PMD_MASK))
    if not m.kmem.oom:
        res_set(r, RES_OK, 0)


cdef void sys_set(machine_t *m, int64_t key, int64_t value, mm_res_t *r) noexcept nogil:
    """`set KEY VALUE` (value codes from the encoder)."""
    if key == SET_THP:
        m.thp_mode = <int32_t>value
    elif key == SET_THP_ZERO:
        m.thp_zero = <int32_t>value
    elif key == SET_THP_ALLOC:
        m.thp_alloc_fail = <int32_t>value
    elif key == SET_MAX_PTES_NONE:
        m.max_ptes_none = <int32_t>value
    res_set(r, RES_OK, 0)


# --- MADV_COLLAPSE (mm/khugepaged.c madvise_collapse -> hpage_collapse_scan_pmd,
# collapse_huge_page) ---------------------------------------------------------------------

cdef int _collapse_scan(machine_t *m, uint64_t *t) noexcept nogil:
    """hpage_collapse_scan_pmd for MADV_COLLAPSE over the 512 PTEs of table t: 0 or the
    errno of the first PTE that fails (DX / KSM: EINVAL; locked / extra refs: EAGAIN)."""
    cdef int64_t i = next_used(t, 0, PTRS_PER_TABLE)
    cdef uint64_t pte
    cdef uint32_t fp
    cdef folio_t *f
    while i < PTRS_PER_TABLE:
        pte = t[i]
        i = next_used(t, i + 1, PTRS_PER_TABLE)
        if not pte_present(pte):
            if is_swap_pte(pte):
                continue                         # swapped in before the collapse
            return EINVAL                        # a device-exclusive entry
        if pte_special(pte):
            continue                             # the zero page: like none
        fp = page_folio_pfn(&m.mem, pte_pfn(pte))
        f = pfn_folio(&m.mem, fp)
        if f.flags & PG_ksm:
            return EINVAL
        if folio_test_locked(f):
            return EAGAIN                        # SCAN_PAGE_LOCK
        if f.refcount != folio_total_mapcount(&m.mem, fp) + (1 if f.flags & PG_swapcache else 0):
            return EAGAIN                        # is_refcount_suitable: SCAN_PAGE_COUNT
    return 0


cdef int _collapse_block(machine_t *m, mm_t *mm, int32_t idx, int64_t haddr) noexcept nogil:
    """One 2 MiB block of MADV_COLLAPSE: 0 (PMD-mapped now), an errno, -1 on OOM."""
    cdef uint64_t *pmdp = pmd_offset_map(mm.pgd, haddr)
    cdef uint64_t *t
    cdef uint64_t pte
    cdef uint32_t h
    cdef int64_t i
    cdef int err
    cdef zap_ctx_t z
    if pmdp != NULL and pmd_trans_huge(pmdp[0]):
        return 0                                 # SCAN_PMD_MAPPED: success as is
    if pmdp == NULL or pmdp[0] == 0:
        return EINVAL                            # SCAN_PMD_NULL
    t = entry_table(pmdp[0])
    err = _collapse_scan(m, t)
    if err:
        return err
    if m.thp_alloc_fail:
        return ENOMEM                            # SCAN_ALLOC_HUGE_PAGE_FAIL
    h = thp_alloc(&m.mem, &m.kmem)
    if h == 0:
        return -1
    i = next_used(t, 0, PTRS_PER_TABLE)          # __collapse_huge_page_swapin: read faults
    while i < PTRS_PER_TABLE:
        if is_swap_pte(t[i]):
            if do_swap_page(m, mm, idx, haddr + i, &t[i], 0) != VM_FAULT_OK:
                folio_put(&m.mem, h, pfn_folio(&m.mem, h))
                return -1
        i = next_used(t, i + 1, PTRS_PER_TABLE)
    i = next_used(t, 0, PTRS_PER_TABLE)          # __collapse_huge_page_copy
    while i < PTRS_PER_TABLE:
        pte = t[i]
        if pte_present(pte) and not pte_special(pte):
            pfn_folio(&m.mem, h + <uint32_t>i).value = pfn_folio(&m.mem, pte_pfn(pte)).value
        i = next_used(t, i + 1, PTRS_PER_TABLE)
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_NR, NO_OWNER)
    z.m = m
    z.mm = mm
    zap_pte_run(&z, t, haddr, HPAGE_PMD_NR)      # the old pages lose these mappings
    pmd_clear(pmdp, haddr)                       # the table is replaced by the PMD
    table_free(&m.kmem, t)
    _map_new_thp(m, mm, &mm.vmas[idx], pmdp, haddr, h, False)
    return 0


cdef int madvise_collapse(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                          int64_t end) noexcept nogil:
    """MADV_COLLAPSE over [start, end) of the private anon VMA idx: VM_NOHUGEPAGE or no
    anon_vma -> EINVAL; each aligned block inside both, in order; ENOMEM (allocation) stops at once;
    else the errno of the last block that failed, 0 when all are PMD-mapped."""
    cdef vma_t *v = &mm.vmas[idx]
    cdef int64_t hstart, hend, haddr
    cdef int err, last = 0
    if v.madv & VM_NOHUGEPAGE or v.anon_vma == 0:
        return EINVAL                            # thp_vma_allowable_order: no anon_vma -> 0
    hstart = (max(start, v.start) + HPAGE_PMD_MASK) & ~(<int64_t>HPAGE_PMD_MASK)
    hend = min(end, v.end) & ~(<int64_t>HPAGE_PMD_MASK)
    haddr = hstart
    while haddr < hend:
        err = _collapse_block(m, mm, idx, haddr)
        if err < 0:
            return -1
        if err == ENOMEM:
            return ENOMEM
        if err:
            last = err
        haddr += HPAGE_PMD_NR
    return last
