# fault: handle_mm_fault for one page of a VMA whose permissions were already checked
# (the arch access check lives in syscall.pyx: no VMA or wrong prot -> SIGSEGV).
#
# Rules (rules.md "Faults"):
# - private anon read of a none entry maps the zero page; no anon_vma needed.
# - every path that creates an anon page runs anon_vma_prepare first.
# - file/shmem paths: pgoff >= i_size -> SIGBUS; a hole gets a zeroed cache page;
#   a read fault first maps the resident pages of the fault-around window.
# - do_wp_page: shared -> make writable; zero page -> copy (zeroed); anon and
#   (AnonExclusive or refcount == 1) -> reuse; otherwise copy.
# - A dirty entry is always soft-dirty too (pte_mkdirty).
# - Write faults also come from GUP with FOLL_FORCE (poke) in a VMA without VM_WRITE:
#   maybe_mkwrite leaves those entries read-only. FAULT_FLAG_UNSHARE (R/O pins) reuses
#   by setting AnonExclusive only, or maps the copy read-only and clean.
# - Every wp_page_copy fires CLEAR over its page first (secondary MMUs drop the old
#   frame); reuse and the other paths fire nothing.
# - Any fault on a device-exclusive entry only restores it (CLEAR, owner NULL, first) and
#   returns: the access is retried on the restored entry (do_swap_page). The folio
#   lock is not looked at there; wp_can_reuse_anon_folio's trylock is.
# - Any fault on a swap entry swaps it in (do_swap_page, swap-ksm.md "Swap-in"): the
#   swap-cache folio, else for the last reference a fresh folio kept out of the cache
#   (zram bypass: certainly exclusive), else a new swap-cache folio; exclusive (writable
#   with VM_WRITE) when the entry's marker says so or nothing else references it; a
#   write fault then goes on to do_wp_page if the entry is still read-only.
# - A pfnmap VMA (devmem BO) has its own path: devmem.pyx devmem_fault (special PUDs and
#   PMDs, pfn PTEs, wp_pfn_shared); nothing below sees its entries.
# - Every fault that gets here gives its slot (1 GiB) a PMD table (pmd_alloc in
#   __handle_mm_fault, before ->fault: also when it ends in SIGBUS), unless it is
#   handled at PUD level (devmem); only munmap frees it (pud.md A, mm.pyx).
# - wp_can_reuse_anon_folio never reuses a KSM page; a swap-cache folio first leaves
#   the cache when no swap entry needs it (folio_free_swap).


cdef inline uint64_t maybe_mkwrite(vma_t *v, uint64_t pte) noexcept nogil:
    """maybe_mkwrite: the write bit only with VM_WRITE."""
    return pte_mkwrite(pte) if v.prot == PROT_RW else pte


cdef inline uint64_t _new_anon_pte(vma_t *v, uint32_t pfn) noexcept nogil:
    # mk_pte + maybe_mkwrite(pte_mkdirty()) (do_cow_fault's set_pte_range, wp_page_copy)
    return maybe_mkwrite(v, pte_mkdirty(pfn_pte(pfn, 0)))


cdef uint32_t _alloc_anon_folio(machine_t *m, uint64_t value) noexcept nogil:
    """A new exclusive anon page mapped once (folio_add_new_anon_rmap, RMAP_EXCLUSIVE)."""
    cdef uint32_t pfn = folio_alloc(&m.mem, &m.kmem, PG_anon | PG_anon_exclusive, value)
    if pfn != 0:
        pfn_folio(&m.mem, pfn).mapcount = 1
    return pfn


cdef int do_anonymous_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                           uint64_t *ptep, int flags) noexcept nogil:
    """None entry in a private anon VMA: zero page on read, new page on write."""
    cdef uint32_t pfn
    cdef uint64_t zero
    if not (flags & FAULT_FLAG_WRITE):
        # pte_mkspecial(pfn_pte(my_zero_pfn)): read-only, clean, no counts
        zero = pfn_pte(0, _PAGE_SPECIAL | _PAGE_ACCESSED)
        if m.mutant == MUTANT_ZERO_PAGE_WRITABLE and mm.vmas[idx].prot == PROT_RW:
            zero = pte_mkwrite(zero)             # mutant: the zero page mapped writable
        set_pte_at(ptep, vpn, zero)
        return VM_FAULT_OK
    anon_vma_prepare(m, mm, idx)
    pfn = _alloc_anon_folio(m, 0)
    if pfn == 0:
        return VM_FAULT_OOM
    # `if (vma->vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry))`: a
    # FOLL_FORCE write into a read-only VMA gets a clean read-only entry
    set_pte_at(ptep, vpn, pte_mkwrite(pte_mkdirty(pfn_pte(pfn, 0)))
               if mm.vmas[idx].prot == PROT_RW else pfn_pte(pfn, 0))
    return VM_FAULT_OK


cdef inline uint64_t _file_pte(vma_t *v, uint32_t pfn) noexcept nogil:
    # set_pte_range: vm_page_prot, writable only in a shared rw (shmem) mapping, clean
    # (vma_wants_writenotify: no write bit under soft-dirty tracking)
    return pfn_pte(pfn, _PAGE_ACCESSED | (_PAGE_RW if v.shared and v.prot == PROT_RW
                                          and not vma_wants_writenotify(v) else 0))


cdef void do_fault_around(machine_t *m, vma_t *v, shmem_t *f, int64_t vpn,
                          uint64_t *ptep) noexcept nogil:
    """Map the resident cache pages of the fault-around window (do_fault_around +
    filemap_map_pages): [from, to) with blk = vpn & ~511,
    from = max(vpn & ~15, vma start, blk), to = min(from + 16, blk + 512, vma end);
    only none entries of pages below EOF that are in the page cache."""
    cdef int64_t blk = vpn & ~(<int64_t>TABLE_MASK)
    cdef int64_t start = max(vpn & ~(<int64_t>FAULT_AROUND_PAGES - 1), max(v.start, blk))
    cdef int64_t end = min(start + FAULT_AROUND_PAGES, min(blk + PTRS_PER_TABLE, v.end))
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t p, pgoff
    cdef uint32_t pfn
    cdef folio_t *folio
    for p in range(start, end):
        if table[p - blk] != 0:
            continue
        pgoff = linear_page_index(v, p)
        if pgoff >= f.size:
            continue                             # end_pgoff = min(end_pgoff, file_end)
        pfn = xa_load(f, pgoff)
        if pfn == 0:
            if m.mutant != MUTANT_FAULT_AROUND_ALLOCATES:
                continue                         # next_uptodate_folio: resident only
            pfn = shmem_get_folio(m, f, pgoff)   # mutant: fault-around fills holes
            if pfn == 0:
                continue
        folio = pfn_folio(&m.mem, pfn)
        folio_get(folio)
        folio.mapcount += 1
        table_set(table, p - blk, _file_pte(v, pfn))


cdef int do_fault(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, uint64_t *ptep,
                  int flags) noexcept nogil:
    """None entry in a file or shared anon VMA: do_read_fault / do_cow_fault /
    do_shared_fault over the shmem page cache."""
    cdef vma_t *v = &mm.vmas[idx]
    cdef shmem_t *f = m.files[v.file]
    cdef int64_t pgoff = linear_page_index(v, vpn)
    cdef uint32_t pfn, anon
    cdef folio_t *folio
    if not (flags & FAULT_FLAG_WRITE):
        # do_read_fault calls ->map_pages before ->fault: the window is mapped even
        # when vpn itself turns out to be beyond EOF below.
        do_fault_around(m, v, f, vpn, ptep)
        if ptep[0] != 0:
            return VM_FAULT_OK                   # VM_FAULT_NOPAGE: mapped by fault-around
    if pgoff >= f.size:
        return VM_FAULT_SIGBUS                   # shmem_fault beyond i_size
    pfn = shmem_get_folio(m, f, pgoff)
    if pfn == 0:
        return VM_FAULT_OOM
    folio = pfn_folio(&m.mem, pfn)
    if (flags & FAULT_FLAG_WRITE) and not v.shared:
        # do_cow_fault: private copy of the cache page, exclusive and writable
        anon_vma_prepare(m, mm, idx)
        anon = _alloc_anon_folio(m, folio.value)
        if anon == 0:
            return VM_FAULT_OOM
        set_pte_at(ptep, vpn, _new_anon_pte(v, anon))
        return VM_FAULT_OK
    folio_get(folio)                             # finish_fault -> set_pte_range
    folio.mapcount += 1                          # folio_add_file_rmap_pte
    set_pte_at(ptep, vpn, _file_pte(v, pfn))
    if flags & FAULT_FLAG_WRITE:                 # do_shared_fault
        ptep[0] = pte_mkdirty(pte_mkwrite(ptep[0]))
        folio.flags |= PG_dirty                  # fault_dirty_shared_page
    return VM_FAULT_OK


cdef int wp_page_copy(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, uint64_t *ptep,
                      int flags) noexcept nogil:
    """Replace a read-only entry by a private exclusive copy (zeroed for the zero page);
    the old frame loses this mapping (folio_remove_rmap_pte + folio_put). Unshare:
    the copy is read-only and clean and inherits soft-dirty. Secondary MMUs are told
    first: MMU_NOTIFY_CLEAR over the page (mmu_notifier_invalidate_range_start)."""
    cdef uint64_t pte = ptep[0]
    cdef uint32_t old = pte_pfn(pte), pfn
    cdef folio_t *old_folio = NULL
    cdef uint64_t value = 0
    if m.mutant != MUTANT_COW_WITHOUT_INVALIDATION:  # mutant: devices keep the old frame
        mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, vpn, vpn + 1, NO_OWNER)
    if not pte_special(pte):
        old_folio = pfn_folio(&m.mem, old)
        value = old_folio.value                  # __wp_page_copy_user
    anon_vma_prepare(m, mm, idx)
    pfn = _alloc_anon_folio(m, value)
    if pfn == 0:
        return VM_FAULT_OOM
    if flags & FAULT_FLAG_UNSHARE:
        ptep[0] = pfn_pte(pfn, pte & _PAGE_SOFT_DIRTY)
    else:
        ptep[0] = _new_anon_pte(&mm.vmas[idx], pfn)
    if old_folio != NULL and page_is_thp(old_folio):   # a THP subpage: the folio's ref
        old_folio.mapcount -= 1
        thp_mm_sub(&m.mem, old & ~(<uint32_t>HPAGE_PMD_MASK), mm_id_of(mm), 1)
        old = old & ~(<uint32_t>HPAGE_PMD_MASK)
        folio_put(&m.mem, old, pfn_folio(&m.mem, old))
    elif old_folio != NULL:
        old_folio.mapcount -= 1
        if m.mutant == MUTANT_COW_KEEPS_EXCLUSIVE and (old_folio.flags & PG_anon) \
                and old_folio.refcount > 1:
            old_folio.flags |= PG_anon_exclusive     # mutant: the old frame stays exclusive
        folio_put(&m.mem, old, old_folio)
    return VM_FAULT_OK


cdef bint wp_can_reuse_large_anon_folio(machine_t *m, uint32_t pfn) noexcept nogil:
    """__wp_can_reuse_large_anon_folio for a PTE-mapped THP subpage: more than one
    mapping, not "maybe mapped shared", and large mapcount == refcount (no pins or
    other references)."""
    cdef uint32_t h = pfn & ~(<uint32_t>HPAGE_PMD_MASK)
    cdef folio_t *head = pfn_folio(&m.mem, h)
    cdef int32_t lm = thp_large_mapcount(&m.mem, h)
    return lm > 1 and not (head.flags & PG_mm_shared) and lm == head.refcount


cdef bint wp_can_reuse_anon_folio(machine_t *m, uint32_t pfn, folio_t *folio) noexcept nogil:
    """Order 0: never a KSM page; no references besides this PTE and the swap cache's;
    folio_trylock succeeds (a `lock` held on it: no reuse); a swap-cache folio leaves the
    cache if no swap entry needs it (folio_free_swap); then refcount == 1."""
    cdef int32_t cached = 1 if folio.flags & PG_swapcache else 0
    if (folio.flags & PG_ksm) or folio.refcount > 1 + cached or folio_test_locked(folio):
        return False
    if cached:
        folio_free_swap(m, pfn)
    return folio.refcount == 1


cdef int do_wp_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, uint64_t *ptep,
                    int flags) noexcept nogil:
    """Write (or unshare) fault on a present read-only entry (do_wp_page)."""
    cdef vma_t *v = &mm.vmas[idx]
    cdef uint64_t pte = ptep[0]
    cdef folio_t *folio
    cdef bint excl
    if v.shared:
        # wp_page_shared: never copy (only reached with VM_WRITE: GUP refuses FOLL_FORCE
        # writes and never unshares in a shared mapping); fault_dirty_shared_page
        ptep[0] = pte_mkwrite(pte_mkdirty(pte))
        pfn_folio(&m.mem, pte_pfn(pte)).flags |= PG_dirty
        return VM_FAULT_OK
    if pte_special(pte):
        return wp_page_copy(m, mm, idx, vpn, ptep, flags)   # zero page: vm_normal_page() is NULL
    folio = pfn_folio(&m.mem, pte_pfn(pte))
    if folio.flags & PG_anon:
        excl = (folio.flags & PG_anon_exclusive) != 0
        if m.mutant == MUTANT_NO_ANON_EXCLUSIVE_REUSE:
            excl = False                         # mutant: reuse decided by refcount alone
        # PageAnonExclusive || wp_can_reuse_anon_folio
        if excl or (wp_can_reuse_large_anon_folio(m, pte_pfn(pte)) if page_is_thp(folio)
                    else wp_can_reuse_anon_folio(m, pte_pfn(pte), folio)) \
                or m.mutant == MUTANT_REUSE_IGNORES_REFCOUNT:
            folio.flags |= PG_anon_exclusive
            if not (flags & FAULT_FLAG_UNSHARE):     # unshare: the entry stays read-only
                ptep[0] = maybe_mkwrite(v, pte_mkdirty(pte))   # wp_page_reuse
            return VM_FAULT_OK
    elif m.mutant == MUTANT_PRIVATE_FILE_WRITE_TO_PAGECACHE and v.prot == PROT_RW:
        ptep[0] = pte_mkwrite(pte_mkdirty(pte))  # mutant: Dirty COW, the cache page is written
        return VM_FAULT_OK
    return wp_page_copy(m, mm, idx, vpn, ptep, flags)   # shared anon or a page-cache page


cdef void restore_exclusive_pte(machine_t *m, vma_t *v, uint64_t *ptep) noexcept nogil:
    """Turn the device-exclusive entry at ptep back into a present one
    (restore_exclusive_pte, 6.15+): pte_mkold(mk_pte(page, vm_page_prot)) (read-only in
    a private mapping, the only kind holding DX entries), soft-dirty carried; with
    VM_WRITE and can_change_pte_writable (an AnonExclusive anon page) writable, and
    dirty because the folio is (make_device_exclusive's GUP dirtied it); else
    read-only and clean. Mapcount and reference stay as they are."""
    cdef uint64_t orig = ptep[0]
    cdef uint32_t pfn = pte_pfn(orig)
    cdef folio_t *folio = pfn_folio(&m.mem, pfn)
    cdef uint64_t pte = pfn_pte(pfn, _PAGE_SOFT_DIRTY if pte_swp_soft_dirty(orig) else 0)
    # can_change_pte_writable: not while soft-dirty tracking wants a write fault
    if v.prot == PROT_RW and not pte_needs_soft_dirty_wp(v, pte_soft_dirty(pte)) \
            and (folio.flags & (PG_anon | PG_anon_exclusive)) == (PG_anon | PG_anon_exclusive):
        pte = pte_mkwrite(pte_mkdirty(pte))     # folio_test_dirty: always, see above
    ptep[0] = pte                                # the slot stays used: set_pte_at over it


cdef void remove_device_exclusive_entry(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                                        uint64_t *ptep) noexcept nogil:
    """do_swap_page on a device-exclusive entry: MMU_NOTIFY_CLEAR with owner NULL over
    the page (6.15+; every device drops its atomic mapping), then restore_exclusive_pte.
    (The kernel takes the folio lock here, waiting for the device; the model does not
    look at it: sequential ops cannot wait.)"""
    if m.mutant != MUTANT_RESTORE_WITHOUT_NOTIFIER:  # mutant: devices keep atomic access
        mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, vpn, vpn + 1, NO_OWNER)
    restore_exclusive_pte(m, &mm.vmas[idx], ptep)


cdef int do_swap_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, uint64_t *ptep,
                      int flags) noexcept nogil:
    """Swap in the swap entry at ptep (zram: SWP_SYNCHRONOUS_IO) and map it; a write
    fault that leaves the entry read-only goes on to do_wp_page (FAULT_FLAG_UNSHARE is
    a read here: GUP only unshares present entries).
    1. the folio: the slot's swap-cache folio; else, for the last reference, a fresh one
       kept out of the cache (folio != swapcache: certainly exclusive); else a new one
       added to the cache. exclusive = pte_swp_exclusive otherwise.
    2. swap_free; 3. should_try_to_free_swap: a swap-cache folio on a write fault with
       refcount 2 (cache + ours) leaves the cache if no entry needs the slot;
    4. not KSM and (exclusive or ours is the only reference): RMAP_EXCLUSIVE, writable
       with VM_WRITE and then dirty for a write; else read-only and clean. Soft-dirty
       comes from the swap entry. 6. the slot is freed when nothing needs it.
    No MMU notifier fires (the entry was not present)."""
    cdef uint64_t orig = ptep[0], pte
    cdef uint32_t s = swp_offset(orig), pfn
    cdef swap_slot_t *slot = swap_slot(&m.swap, s)
    cdef bint write = (flags & FAULT_FLAG_WRITE) != 0
    cdef bint exclusive = pte_swp_exclusive(orig)
    cdef folio_t *folio
    if slot.cache != 0:                          # swap_cache_get_folio
        pfn = slot.cache
        folio = pfn_folio(&m.mem, pfn)
        folio_get(folio)                         # the fault's reference: the PTE's
    else:
        pfn = folio_alloc(&m.mem, &m.kmem, PG_anon, slot.value)   # swapin_read_folio
        if pfn == 0:
            return VM_FAULT_OOM
        folio = pfn_folio(&m.mem, pfn)
        if slot.count == 1:
            exclusive = True                     # skip the swap cache: a fresh page
        elif swap_cache_add(m, s, pfn) < 0:
            return VM_FAULT_OOM
    slot.count -= 1                              # swap_free_nr
    if (folio.flags & PG_swapcache) and write and folio.refcount == 2 and slot.count == 0:
        swap_cache_del(m, pfn)                   # should_try_to_free_swap + folio_free_swap
    pte = pfn_pte(pfn, _PAGE_ACCESSED | (_PAGE_SOFT_DIRTY if pte_swp_soft_dirty(orig) else 0))
    if not (folio.flags & PG_ksm) and (exclusive or folio.refcount == 1):
        folio.flags |= PG_anon_exclusive         # RMAP_EXCLUSIVE
        # VM_WRITE && !pte_needs_soft_dirty_wp (the swap entry's soft-dirty bit)
        if mm.vmas[idx].prot == PROT_RW and \
                not pte_needs_soft_dirty_wp(&mm.vmas[idx], pte_soft_dirty(pte)):
            pte = pte_mkwrite(pte)
            if write:
                pte = pte_mkdirty(pte)
    folio.mapcount += 1                          # folio_add_anon_rmap_pte
    ptep[0] = pte                                # the slot stays used: set_pte_at over it
    swap_slot_release(m, s)                      # nothing needs it any more: freed
    if write and not pte_write(pte):
        return do_wp_page(m, mm, idx, vpn, ptep, flags)
    return VM_FAULT_OK


cdef int handle_mm_fault(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                         int flags) noexcept nogil:
    """Resolve a fault at vpn inside VMA idx (handle_pte_fault).

    Note: FAULT_FLAG_WRITE on a present writable entry only marks it dirty. A
    device-exclusive entry is only restored (whatever the flags): the caller retries
    the access, which may fault again (a write on a restored read-only entry).
    Return: VM_FAULT_OK (the entry is present, and writable for a write, unless a DX
    entry was restored), VM_FAULT_SIGBUS or VM_FAULT_OOM.
    """
    cdef uint64_t *pmdp
    cdef uint64_t *ptep
    cdef uint64_t pte
    cdef int rc
    if mm.vmas[idx].pfnmap:
        return devmem_fault(m, mm, idx, vpn, flags)   # huge_fault / vmf_insert_pfn
    pmdp = pmd_offset_map(mm.pgd, vpn)
    if pmdp != NULL and pmd_trans_huge(pmdp[0]):
        if (flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) and not pte_write(pmdp[0]):
            rc = do_huge_pmd_wp_page(m, mm, idx, vpn, pmdp, flags)   # wp_huge_pmd
            if rc != VM_FAULT_FALLBACK:
                return rc                        # else split: on to the PTE level
        else:
            if flags & FAULT_FLAG_WRITE:         # huge_pmd_set_accessed (+ dirty)
                pmdp[0] |= _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED
            return VM_FAULT_OK
    elif (pmdp == NULL or pmdp[0] == 0) and thp_vma_allowable(m, &mm.vmas[idx], vpn):
        rc = do_huge_pmd_anonymous_page(m, mm, idx, vpn, flags)    # create_huge_pmd
        if rc != VM_FAULT_FALLBACK:
            return rc
    ptep = pte_alloc_map(mm.pgd, &m.kmem, vpn)
    if ptep == NULL:
        return VM_FAULT_OOM
    pte = ptep[0]
    if pte == 0:                                 # do_pte_missing
        if vma_is_anon_private(&mm.vmas[idx]):
            return do_anonymous_page(m, mm, idx, vpn, ptep, flags)
        return do_fault(m, mm, idx, vpn, ptep, flags)
    if not pte_present(pte):                     # do_swap_page
        if is_swap_pte(pte):
            return do_swap_page(m, mm, idx, vpn, ptep, flags)
        remove_device_exclusive_entry(m, mm, idx, vpn, ptep)
        return VM_FAULT_OK
    if flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE):
        if not pte_write(pte):
            return do_wp_page(m, mm, idx, vpn, ptep, flags)
        if flags & FAULT_FLAG_WRITE:
            ptep[0] = pte_mkdirty(pte)
    return VM_FAULT_OK


cdef int populate_vma_page_range(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                                 int64_t end, bint write) noexcept nogil:
    """Fault in [start, end) of VMA idx as GUP does (FOLL_WRITE when write): a page
    that already allows the access is left alone; a write fault breaks COW without
    storing (a device-exclusive entry is restored, then retried).
    Return: the first failing fault's VM_FAULT_* code, else VM_FAULT_OK."""
    cdef int64_t vpn
    cdef uint64_t pte
    cdef int rc, tries
    cdef int flags = FAULT_FLAG_WRITE if write else 0   # faults never store: sys_write does
    for vpn in range(start, end):
        for tries in range(3):                   # a DX restore, then a write fault
            pte = pte_lookup(mm.pgd, vpn)        # a PTE or a huge PMD's subpage
            if pte_present(pte) and (not write or pte_write(pte)):
                break                            # follow_page_pte succeeds: no fault
            rc = handle_mm_fault(m, mm, idx, vpn, flags)
            if rc != VM_FAULT_OK:
                return rc
        else:
            m.kmem.oom = 1                       # a model bug: report it, never loop
            return VM_FAULT_OOM
    return VM_FAULT_OK
