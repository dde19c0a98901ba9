# devmem: BO page values, the mmap checks of a pfnmap mapping, the pfnmap fault path
# (vmwgfx/ttm huge_fault + vmf_insert_pfn, wp_pfn_shared), the zap of a special PMD
# that the kernel would split, and change_huge_pmd for a special PMD.
#
# Rules (devmem.md; the reference has the same list):
# - mmap: pfnmap needs shared + a devmem file= (private: ttm_bo_mmap_obj "Enforce no
#   COW" -EINVAL); pfnmap on anon / a shmem file -> EINVAL; a devmem file without
#   pfnmap -> EINVAL; off + N > BO pages -> EINVAL (drm_gem_mmap).
# - fault, idx = the 2 MiB block: a special PMD: read / write to a writable one: no
#   change (a write dirties it); a write to a read-only one: BO not tracked -> upgraded
#   in place (insert_pfn_pmd write: dirty, writable iff VM_WRITE); tracked ->
#   FALLBACK: the PMD is zapped (CLEAR first), then the PTE level.
#   pmd_none, block inside the VMA, pgoff(haddr) % 512 == 0, BO not tracked, and THP
#   allowed for the VMA (sysfs `enabled` enforced for page faults, VM_NOHUGEPAGE): a special
#   PMD (read: read-only clean; write: dirty, writable iff VM_WRITE).
#   Else the PTE level: a none PTE gets a read-only clean pfn PTE; a write then goes
#   through wp_pfn_shared: writable (VM_WRITE) and dirty + soft-dirty. No notifier.
# - No PUD-level special entries (not modelled).


cdef uint64_t devmem_load(shmem_t *f, int64_t pgoff) noexcept nogil:
    """The value of BO page pgoff (0 past the end or never stored)."""
    if pgoff >= f.size:
        return 0
    return xa_load_entry(f, pgoff)


cdef int devmem_store(machine_t *m, shmem_t *f, int64_t pgoff, uint64_t value) noexcept nogil:
    """Store into BO page pgoff (< f.size); -1 on OOM."""
    cdef uint64_t old = xa_load_entry(f, pgoff)
    if old == value:
        return 0
    if xa_store(f, &m.kmem, pgoff, value) < 0:
        m.kmem.oom = 1
        return -1
    if old == 0:
        f.nr_vals += 1
    elif value == 0:
        f.nr_vals -= 1
    return 0


cdef int devmem_mmap_check(machine_t *m, int64_t flags, int32_t file, int64_t off,
                           int64_t npages) noexcept nogil:
    """The pfnmap / devmem checks of mmap (after N, private xor shared, anon xor file):
    0 or EINVAL."""
    cdef bint pfnmap = (flags & MAPF_PFNMAP) != 0
    cdef bint devmem = file >= 0 and m.files[file].devmem
    if not pfnmap and not devmem:
        return 0
    if not pfnmap or not devmem:
        return EINVAL                            # pfnmap on anon / shmem; a BO without it
    if not (flags & MAPF_SHARED):
        return EINVAL                            # ttm_bo_mmap_obj: is_cow_mapping
    if off < 0:
        off = 0
    if off + npages > m.files[file].size:
        return EINVAL                            # drm_gem_mmap: the node is smaller
    return 0


cdef inline uint64_t _special_pmd(vma_t *v, int64_t pgoff, bint write) noexcept nogil:
    # vmf_insert_pfn_pmd -> insert_pfn_pmd: pmd_mkspecial(pmd_mkhuge(pfn_pmd(pfn, prot)));
    # write: pmd_mkyoung(pmd_mkdirty()) + maybe_pmd_mkwrite
    cdef uint64_t bits = _PAGE_PSE | _PAGE_SPECIAL | _PAGE_ACCESSED
    if write:
        bits |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | (_PAGE_RW if v.prot == PROT_RW else 0)
    return pfn_pte(dev_pfn(pgoff), bits)


cdef void devmem_zap_pmd(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t haddr) noexcept nogil:
    """__split_huge_pmd of a special PMD in a VM_SPECIAL VMA: MMU_NOTIFY_CLEAR over the
    block, then the PMD is zapped (no PTE table: the next fault rebuilds)."""
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_NR, NO_OWNER)
    pmd_clear(pmdp, haddr)


cdef void devmem_change_pmd(vma_t *v, uint64_t *pmdp) noexcept nogil:
    """change_huge_pmd of a special PMD: read-only, then writable again only when the new
    prot has write and can_change_pmd_writable: no soft-dirty write fault wanted and
    (shared) already dirty."""
    cdef uint64_t pmd = pte_wrprotect(pmdp[0])
    if v.prot == PROT_RW and pte_dirty(pmd) and not pte_needs_soft_dirty_wp(v, pte_soft_dirty(pmd)):
        pmd = pte_mkwrite(pmd)
    pmdp[0] = pmd


cdef inline bint _huge_fault_allowed(machine_t *m, vma_t *v) noexcept nogil:
    """__thp_vma_allowable_orders for a non-anon VMA in a page fault: the sysfs `enabled`
    setting is enforced (always, or madvise with VM_HUGEPAGE), VM_NOHUGEPAGE forbids."""
    if v.madv & VM_NOHUGEPAGE:
        return False
    return m.thp_mode == THP_ALWAYS or (m.thp_mode == THP_MADVISE and (v.madv & VM_HUGEPAGE) != 0)


cdef int devmem_fault(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, int flags) noexcept nogil:
    """handle_mm_fault in a pfnmap VMA (see the rules above). VM_FAULT_OK or VM_FAULT_OOM."""
    cdef vma_t *v = &mm.vmas[idx]
    cdef shmem_t *f = m.files[v.file]
    cdef int64_t haddr = vpn & ~(<int64_t>HPAGE_PMD_MASK)
    cdef bint write = (flags & FAULT_FLAG_WRITE) != 0
    cdef uint64_t *pmdp = pmd_offset_map(mm.pgd, vpn)
    cdef uint64_t *ptep
    if pmdp != NULL and pmd_trans_huge(pmdp[0]):
        if not write:
            return VM_FAULT_OK                   # huge_pmd_set_accessed
        if pte_write(pmdp[0]):
            pmdp[0] |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
            return VM_FAULT_OK
        if not f.tracked:                        # wp_huge_pmd -> huge_fault: in place
            pmdp[0] = _special_pmd(v, linear_page_index(v, haddr), True)
            return VM_FAULT_OK
        devmem_zap_pmd(m, mm, pmdp, haddr)       # FALLBACK: __split_huge_pmd zaps it
    elif (pmdp == NULL or pmdp[0] == 0) and haddr >= v.start \
            and haddr + HPAGE_PMD_NR <= v.end \
            and (linear_page_index(v, haddr) & HPAGE_PMD_MASK) == 0 and not f.tracked \
            and _huge_fault_allowed(m, v):
        pmdp = pmd_alloc_map(mm.pgd, &m.kmem, vpn)   # create_huge_pmd -> huge_fault
        if pmdp == NULL:
            return VM_FAULT_OOM
        pmd_set(pmdp, haddr, _special_pmd(v, linear_page_index(v, haddr), write))
        return VM_FAULT_OK
    ptep = pte_alloc_map(mm.pgd, &m.kmem, vpn)
    if ptep == NULL:
        return VM_FAULT_OOM
    if ptep[0] == 0:                             # vmf_insert_pfn: vm_page_prot, no write
        set_pte_at(ptep, vpn, pfn_pte(dev_pfn(linear_page_index(v, vpn)),
                                      _PAGE_SPECIAL | _PAGE_ACCESSED))
    if write:                                    # do_wp_page -> wp_pfn_shared
        ptep[0] = pte_mkdirty(ptep[0])
        if v.prot == PROT_RW:
            ptep[0] = pte_mkwrite(ptep[0])
    return VM_FAULT_OK


cdef int64_t _dev_collect(uint64_t *node, int shift, int64_t base, int64_t *pgoffs,
                          uint64_t *vals, int64_t n, int64_t cap) noexcept nogil:
    cdef int i
    for i in range(PTRS_PER_TABLE):
        if node[i] == 0:
            continue
        if shift > 0:
            n = _dev_collect(<uint64_t *><uintptr_t>node[i], shift - XA_CHUNK_SHIFT,
                             base + ((<int64_t>i) << shift), pgoffs, vals, n, cap)
        elif n < cap:
            pgoffs[n] = base + i
            vals[n] = node[i]
            n += 1
    return n


cdef int64_t devmem_collect(shmem_t *f, int64_t *pgoffs, uint64_t *vals, int64_t cap) noexcept nogil:
    """The non-zero page values of BO f, ascending pgoff (up to cap); return how many."""
    if f.xa_head == NULL:
        return 0
    return _dev_collect(f.xa_head, f.xa_shift, 0, pgoffs, vals, 0, cap)
