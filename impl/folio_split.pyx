# folio_split: split_folio of an anon THP to order 0 and the `split_folio` op.
#
# Rules (folio-split.md, Linux 6.18): __folio_split checks can_split_folio, then
# unmap_folio -> try_to_migrate walks every mapping (one MMU_NOTIFY_CLEAR per VMA that
# maps a subpage, over the folio's extent in it: try_to_migrate_one), a huge PMD is
# frozen straight into 512 migration entries (__split_huge_pmd_locked, freeze) without
# __split_huge_pmd's own notifier, then remap_page -> remove_migration_pte restores each
# entry as a PTE on the subpage's new order-0 folio, or maps the shared zero page for a
# subpage that reads 0 (RMP_USE_SHARED_ZEROPAGE: try_to_map_unused_to_zeropage). A THP
# is only ever mapped at the same vpns in every process (the model has no mremap), so
# each process is looked at in the one block [base, base + 512).


ctypedef struct split_acc_t:
    uint32_t h                        # head pfn of the THP being split
    int64_t found                     # mappings met (a PMD counts 1: the large mapcount)
    bint dirty                        # a PMD/PTE being unmapped was dirty (folio_mark_dirty)
    int32_t maps[HPAGE_PMD_NR]        # PTEs mapping subpage i after the remap
    uint8_t ae[HPAGE_PMD_NR]          # RMAP_EXCLUSIVE given by one of them


cdef inline bint _maps_thp(uint64_t pte, uint32_t h) noexcept nogil:
    """A present PTE or a device-exclusive entry mapping a subpage of the THP at h (what
    page_vma_mapped_walk finds without PVMW_MIGRATION)."""
    cdef uint32_t pfn
    if pte == 0 or is_swap_pte(pte) or (pte_present(pte) and pte_special(pte)):
        return False
    pfn = pte_pfn(pte)
    return pfn >= h and pfn - h < HPAGE_PMD_NR


cdef inline uint64_t _remap_pte(machine_t *m, split_acc_t *a, uint32_t pfn, uint64_t pte,
                                bint ae) noexcept nogil:
    """remove_migration_pte for subpage pfn: pte is the entry it restores (write, dirty,
    soft-dirty, young as the migration entry kept them); a subpage reading 0 gets the
    shared zero page instead (try_to_map_unused_to_zeropage: pte_mkspecial, read-only,
    clean, soft-dirty carried; no rmap, no reference)."""
    cdef uint32_t k = pfn - a.h
    if pfn_folio(&m.mem, pfn).value == 0:
        if m.mutant == MUTANT_ZERO_REMAP_DROPS_SOFT_DIRTY:
            pte &= ~(<uint64_t>_PAGE_SOFT_DIRTY)    # mutant: the bit is lost (pre-6.18)
        return pfn_pte(0, _PAGE_SPECIAL | _PAGE_ACCESSED | (pte & _PAGE_SOFT_DIRTY))
    a.maps[k] += 1                               # folio_get + folio_add_anon_rmap_pte
    if ae:
        a.ae[k] = 1                              # RMAP_EXCLUSIVE
    return pte


cdef int _split_pmd_mapping(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t base,
                            split_acc_t *a) noexcept nogil:
    """try_to_migrate_one on a huge PMD mapping the THP: CLEAR over the block (the VMA
    holds it whole), split_huge_pmd_locked(freeze): 512 migration entries with the PMD's
    write/dirty/soft-dirty/young and the head's AnonExclusive, restored as PTEs in a new
    PTE table. -1 on OOM."""
    cdef uint64_t pmd = pmdp[0]
    cdef uint64_t bits = pmd & (_PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED)
    cdef bint ae = (pfn_folio(&m.mem, a.h).flags & PG_anon_exclusive) != 0
    cdef uint64_t *t
    cdef int32_t i
    cdef int32_t idx = find_vma(mm, base)
    cdef vma_t *v = &mm.vmas[idx]
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, max(base, v.start),
                                  min(base + HPAGE_PMD_NR, v.end), NO_OWNER)
    t = table_alloc(&m.kmem)
    if t == NULL:
        return -1
    if pte_dirty(pmd):
        a.dirty = True                           # __split_huge_pmd_locked: folio_set_dirty
    for i in range(HPAGE_PMD_NR):
        t[i] = _remap_pte(m, a, a.h + i, pfn_pte(a.h + i, bits), ae)
    for i in range(TABLE_HDR_WORDS):
        table_used(t)[i] = ~(<uint64_t>0)        # all 512 entries used
    pmdp[0] = (<uint64_t><uintptr_t>t) | _PAGE_TABLE    # pmd_populate (slot stays used)
    a.found += 1
    return 0


cdef void _split_pte_mappings(machine_t *m, mm_t *mm, uint64_t *t, int64_t base,
                              split_acc_t *a) noexcept nogil:
    """try_to_migrate_one on each VMA of mm whose PTEs in the block's table t map a
    subpage: one CLEAR over the folio's extent clamped to that VMA, then every present
    PTE or device-exclusive entry of the THP becomes a migration entry and is restored:
    a present PTE keeps its bits and AnonExclusive; a device-exclusive entry comes back
    present, read-only, old and clean, soft-dirty carried, AnonExclusive (it was: the
    readable-exclusive migration entry)."""
    cdef int64_t i = next_used(t, 0, PTRS_PER_TABLE)
    cdef int64_t vma_end = base
    cdef int32_t idx
    cdef uint64_t pte
    cdef uint32_t pfn
    while i < PTRS_PER_TABLE:                    # the notifiers, one per VMA, in vpn order
        if _maps_thp(t[i], a.h) and base + i >= vma_end:
            idx = find_vma(mm, base + i)
            vma_end = mm.vmas[idx].end
            mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR,
                                          max(base, mm.vmas[idx].start),
                                          min(base + HPAGE_PMD_NR, vma_end), NO_OWNER)
        i = next_used(t, i + 1, PTRS_PER_TABLE)
    i = next_used(t, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        pte = t[i]
        if _maps_thp(pte, a.h):
            pfn = pte_pfn(pte)
            a.found += 1
            if pte_present(pte):
                if pte_dirty(pte):
                    a.dirty = True               # try_to_migrate_one: folio_mark_dirty
                t[i] = _remap_pte(m, a, pfn, pte,
                                  (pfn_folio(&m.mem, pfn).flags & PG_anon_exclusive) != 0)
            else:                                # device-exclusive (is_writable_device_private_entry false)
                t[i] = _remap_pte(m, a, pfn, pfn_pte(pfn, _PAGE_SOFT_DIRTY
                                                     if pte_swp_soft_dirty(pte) else 0), True)
        i = next_used(t, i + 1, PTRS_PER_TABLE)


cdef int64_t _count_mappings(machine_t *m, mm_t *mm, uint32_t h, int64_t base,
                             bint *pmd) noexcept nogil:
    """Mappings of the THP at h in mm's block base (a huge PMD counts 1: *pmd set)."""
    cdef uint64_t *pmdp = pmd_offset_map(mm.pgd, base)
    cdef uint64_t *t
    cdef int64_t i, n = 0
    pmd[0] = False
    if pmdp == NULL or pmdp[0] == 0:
        return 0
    if pmd_trans_huge(pmdp[0]):
        pmd[0] = not pte_is_dev(pmdp[0]) and pte_pfn(pmdp[0]) == h
        return 1 if pmd[0] else 0
    t = entry_table(pmdp[0])
    i = next_used(t, 0, PTRS_PER_TABLE)
    while i < PTRS_PER_TABLE:
        n += _maps_thp(t[i], h)
        i = next_used(t, i + 1, PTRS_PER_TABLE)
    return n


cdef int _mutant_walk_stops(machine_t *m, uint32_t h, int64_t base,
                            int64_t expected) noexcept nogil:
    """Mutant split_walk_stops_at_first_pmd (6.18 as released): the rmap walk ends at the
    first huge PMD it freezes. If mappings remain after it, the split fails: the
    processes walked so far had their CLEARs, their migration entries come back on the
    still-large folio (a device-exclusive entry as a read-only, clean, exclusive PTE;
    the frozen PMD as 512 PTEs with its bits, like __split_huge_pmd). Return EBUSY, 0
    when the walk met every mapping anyway (the split goes on), -1 on OOM."""
    cdef int32_t p, last = -1, i
    cdef int64_t seen = 0, j, vma_end
    cdef bint pmd
    cdef mm_t *mm
    cdef uint64_t *pmdp
    cdef uint64_t *t
    cdef uint64_t e, bits
    cdef folio_t *head = pfn_folio(&m.mem, h)
    cdef folio_t *sub
    cdef int32_t idx
    for p in range(m.nr_procs):
        if m.procs[p].alive:
            seen += _count_mappings(m, m.procs[p], h, base, &pmd)
            if pmd:
                last = p
                break
    if last < 0 or seen == expected:
        return 0
    for p in range(last + 1):
        mm = m.procs[p]
        if not mm.alive:
            continue
        pmdp = pmd_offset_map(mm.pgd, base)
        if pmdp == NULL or pmdp[0] == 0:
            continue
        if pmd_trans_huge(pmdp[0]):
            if p != last:
                continue
            e = pmdp[0]
            idx = find_vma(mm, base)
            mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, max(base, mm.vmas[idx].start),
                                          min(base + HPAGE_PMD_NR, mm.vmas[idx].end), NO_OWNER)
            t = table_alloc(&m.kmem)
            if t == NULL:
                return -1
            bits = e & (_PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED)
            for i in range(HPAGE_PMD_NR):
                t[i] = pfn_pte(h + i, bits)
                sub = pfn_folio(&m.mem, h + i)
                sub.mapcount += 1
                if head.flags & PG_anon_exclusive:
                    sub.flags |= PG_anon_exclusive
            for i in range(TABLE_HDR_WORDS):
                table_used(t)[i] = ~(<uint64_t>0)
            pmdp[0] = (<uint64_t><uintptr_t>t) | _PAGE_TABLE
            head.refcount += HPAGE_PMD_NR - 1
            thp_mm_add(&m.mem, h, mm_id_of(mm), HPAGE_PMD_NR)
            thp_entire(&m.mem, h)[0] -= 1
            thp_mm_sub(&m.mem, h, mm_id_of(mm), 1)
            if pte_dirty(e):
                head.flags |= PG_dirty
            continue
        t = entry_table(pmdp[0])
        vma_end = base
        j = next_used(t, 0, PTRS_PER_TABLE)
        while j < PTRS_PER_TABLE:
            e = t[j]
            if _maps_thp(e, h):
                if base + j >= vma_end:
                    idx = find_vma(mm, base + j)
                    vma_end = mm.vmas[idx].end
                    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR,
                                                  max(base, mm.vmas[idx].start),
                                                  min(base + HPAGE_PMD_NR, vma_end), NO_OWNER)
                if not pte_present(e):           # DX -> readable-exclusive -> present
                    t[j] = pfn_pte(pte_pfn(e), _PAGE_SOFT_DIRTY if pte_swp_soft_dirty(e) else 0)
            j = next_used(t, j + 1, PTRS_PER_TABLE)
    return EBUSY


cdef int split_folio(machine_t *m, uint32_t h, int64_t base) noexcept nogil:
    """split_folio (split_huge_page_to_list_to_order(page, NULL, 0)) of the THP at head h,
    mapped in block base. The caller took care of the folio lock. Return 0 (split),
    EBUSY (can_split_folio failed: nothing changed), -1 on OOM.

    After the remap each subpage is its own anon folio: mapcount = refcount = the PTEs
    now mapping it, AnonExclusive if one of them restored it so, PG_dirty = the THP's
    (or a dirty mapping's), the MM-id slots and tail records gone; a subpage nobody
    maps is freed (free_folio_and_swap_cache -> folio_put)."""
    cdef split_acc_t a
    cdef folio_t *f
    cdef int64_t expected = thp_large_mapcount(&m.mem, h)
    cdef int32_t p, i
    cdef mm_t *mm
    cdef uint64_t *pmdp
    cdef uint32_t flags
    cdef int err
    if not can_split_folio(&m.mem, h):
        return EBUSY                             # -EAGAIN before anything is unmapped
    if m.mutant == MUTANT_SPLIT_WALK_STOPS_AT_FIRST_PMD:
        err = _mutant_walk_stops(m, h, base, expected)
        if err:
            return err                           # mutant: EBUSY after a partial walk
    a.h = h
    a.found = 0
    a.dirty = False
    for i in range(HPAGE_PMD_NR):
        a.maps[i] = 0
        a.ae[i] = 0
    for p in range(m.nr_procs):                  # unmap_folio -> try_to_migrate (rmap walk)
        mm = m.procs[p]
        if not mm.alive:
            continue
        pmdp = pmd_offset_map(mm.pgd, base)
        if pmdp == NULL or pmdp[0] == 0:
            continue
        if pmd_trans_huge(pmdp[0]):
            if pte_is_dev(pmdp[0]) or pte_pfn(pmdp[0]) != h:
                continue                         # the huge zero folio, another THP
            if _split_pmd_mapping(m, mm, pmdp, base, &a) < 0:
                return -1
        else:
            _split_pte_mappings(m, mm, entry_table(pmdp[0]), base, &a)
    if a.found != expected:
        m.kmem.oom = 1                           # a model bug (a mapping outside the block)
        return -1
    # __split_folio_to_order + the unfreeze: 512 order-0 anon folios. The THP's PG_dirty:
    # stores into a subpage (folio_store) mark that subpage's record, so any record's.
    for i in range(HPAGE_PMD_NR):
        if pfn_folio(&m.mem, h + i).flags & PG_dirty:
            a.dirty = True
            break
    flags = PG_anon | (PG_dirty if a.dirty else 0)
    for i in range(HPAGE_PMD_NR):
        f = pfn_folio(&m.mem, h + i)
        f.flags = flags | (PG_anon_exclusive if a.ae[i] else 0)
        f.mapcount = a.maps[i]
        f.refcount = a.maps[i]
        f.pincount = 0
        if f.refcount == 0:
            folio_free(&m.mem, h + i)            # nobody maps it (zero page or unmapped)
    return 0


cdef void sys_split_folio(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil:
    """`split_folio P VPN` (split_huge_pages_pid over one page, new_order 0): no VMA ->
    EFAULT; no present mapping of an anon THP at vpn (none, swap, device-exclusive: the
    folio_walk_start without FW_MIGRATION; the (huge) zero page; an order-0, shmem or
    device page) -> EINVAL; folio_trylock or can_split_folio failing -> EBUSY."""
    cdef int32_t idx = find_vma(mm, vpn)
    cdef uint64_t *pmdp
    cdef uint64_t pte
    cdef uint32_t pfn, h
    cdef int err
    if idx < 0:
        res_set(r, RES_ERRNO, EFAULT)
        return
    if mm.vmas[idx].pfnmap:                      # vma_not_suitable_for_thp_split
        res_set(r, RES_ERRNO, EINVAL)
        return
    pmdp = huge_pmd_at(mm.pgd, vpn)
    if pmdp != NULL:
        pte = pmdp[0]
        if pte_is_dev(pte) or is_huge_zero_pmd(&m.mem, pte):
            res_set(r, RES_ERRNO, EINVAL)
            return
        h = pte_pfn(pte)
    else:
        pmdp = pte_offset_map(mm.pgd, vpn)
        pte = pmdp[0] if pmdp != NULL else 0
        if not pte_present(pte) or pte_special(pte):
            res_set(r, RES_ERRNO, EINVAL)        # none, swap, DX, zero page, device pfn
            return
        pfn = pte_pfn(pte)
        if not page_is_thp(pfn_folio(&m.mem, pfn)):
            res_set(r, RES_ERRNO, EINVAL)        # !is_transparent_hugepage
            return
        h = pfn & ~(<uint32_t>HPAGE_PMD_MASK)
    if not can_split_folio(&m.mem, h) or folio_test_locked(pfn_folio(&m.mem, h)):
        res_set(r, RES_ERRNO, EBUSY)
        return
    err = split_folio(m, h, vpn & ~(<int64_t>HPAGE_PMD_MASK))
    if err >= 0:
        res_status(r, err)
