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
# - PUD level first (pud.md B; __handle_mm_fault's retry_pud), slot S = the 1 GiB slot:
#   a PUD leaf in S: read / write to a writable one: no change (a write dirties it); a
#   write to a read-only one: BO not tracked -> upgraded in place (insert_pud write:
#   dirty, writable iff VM_WRITE); tracked -> wp_huge_pud's split: CLEAR over S, the PUD
#   is cleared, and the fault goes on below. PUD none (no leaf, no PMD table), THP
#   allowed, S inside the VMA, pgoff(S) % 2^18 == 0, the BO holds all of S, not tracked:
#   a special PUD (read: read-only clean; write: dirty, writable iff VM_WRITE), no PMD
#   table. Else pmd_alloc: the slot gets its PMD table, then the PMD / PTE levels.
# - A PUD leaf wholly inside a zap goes (zap_huge_pud); partly inside, or partly inside
#   an mprotect'ed piece, __split_huge_pud clears all of it (CLEAR over the slot first).
#   A whole-slot mprotect: change_huge_pud takes vm_page_prot's write bit (pfnmap VMAs
#   want write-notify: read-only), dirty and soft-dirty kept. A VMA split leaves it.


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


cdef inline void _pud_set(uint64_t *pudp, int64_t base, uint64_t pud) noexcept nogil:
    table_set(pudp - level_index(base, PUD_SHIFT), level_index(base, PUD_SHIFT), pud)


cdef void devmem_zap_pud(uint64_t *pudp, int64_t base) noexcept nogil:
    """zap_huge_pud of a special PUD: cleared, no counts, no notifier of its own."""
    table_clear(pudp - level_index(base, PUD_SHIFT), level_index(base, PUD_SHIFT))


cdef void devmem_split_pud(machine_t *m, mm_t *mm, uint64_t *pudp, int64_t base) noexcept nogil:
    """__split_huge_pud of a special PUD: MMU_NOTIFY_CLEAR over the slot, then the PUD is
    cleared whole (__split_huge_pud_locked: not DAX, nothing populated, no PMD table)."""
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, base, base + HPAGE_PUD_NR, NO_OWNER)
    devmem_zap_pud(pudp, base)


cdef uint64_t pud_state_code(uint64_t pud) noexcept nogil:
    """STATE_* code of a special PUD (level pud)."""
    return ENTRY_PFN | STATE_PUD | entry_state_bits(pud)


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
    cdef int64_t base = vpn & ~(<int64_t>HPAGE_PUD_MASK)
    cdef bint write = (flags & FAULT_FLAG_WRITE) != 0
    cdef uint64_t *pudp = pud_offset_map(mm.pgd, vpn)
    cdef uint64_t *pmdp
    cdef uint64_t *ptep
    cdef uint64_t bits
    if pudp != NULL and pud_trans_huge(pudp[0]):
        if not write:
            return VM_FAULT_OK                   # huge_pud_set_accessed
        if pte_write(pudp[0]):                   # ... with pud_mkdirty
            pudp[0] |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
            return VM_FAULT_OK
        if not f.tracked and base >= v.start and base + HPAGE_PUD_NR <= v.end:
            # wp_huge_pud -> huge_fault -> insert_pud (the driver checks the slot lies in
            # the VMA: a PUD straddling two VMAs falls back and is split)
            pudp[0] |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED \
                | (_PAGE_RW if v.prot == PROT_RW else 0)
            return VM_FAULT_OK
        devmem_split_pud(m, mm, pudp, base)      # FALLBACK: __split_huge_pud, then below
    elif (pudp == NULL or pudp[0] == 0) and base >= v.start and base + HPAGE_PUD_NR <= v.end \
            and (linear_page_index(v, base) & HPAGE_PUD_MASK) == 0 \
            and linear_page_index(v, base) + HPAGE_PUD_NR <= f.size and not f.tracked \
            and _huge_fault_allowed(m, v):
        pudp = pud_alloc_map(mm.pgd, &m.kmem, vpn)   # create_huge_pud -> huge_fault
        if pudp == NULL:
            return VM_FAULT_OOM
        bits = _PAGE_PSE | _PAGE_SPECIAL | _PAGE_ACCESSED     # vmf_insert_pfn_pud
        if write:
            bits |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | (_PAGE_RW if v.prot == PROT_RW else 0)
        _pud_set(pudp, base, pfn_pte(dev_pfn(linear_page_index(v, base)), bits))
        return VM_FAULT_OK
    pmdp = pmd_alloc_map(mm.pgd, &m.kmem, vpn)   # pmd_alloc: the slot's PMD table
    if pmdp == NULL:
        return VM_FAULT_OOM
    if pmd_trans_huge(pmdp[0]):
        if not write:
            return VM_FAULT_OK                   # huge_pmd_set_accessed
        if pte_write(pmdp[0]):
            pmdp[0] |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
            return VM_FAULT_OK
        if not f.tracked:                        # wp_huge_pmd -> huge_fault: in place
            pmdp[0] = _special_pmd(v, linear_page_index(v, haddr), True)
            return VM_FAULT_OK
        devmem_zap_pmd(m, mm, pmdp, haddr)       # FALLBACK: __split_huge_pmd zaps it
    elif pmdp[0] == 0 and haddr >= v.start \
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
