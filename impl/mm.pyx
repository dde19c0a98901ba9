# mm: address-space primitives shared by munmap, mmap (MAP_FIXED), madvise and exit.


cdef mm_t *mm_alloc(machine_t *m) noexcept nogil:
    """An empty address space with its PGD (mm_alloc + pgd_alloc); NULL on OOM."""
    cdef mm_t *mm = <mm_t *>kzalloc(&m.kmem, sizeof(mm_t))
    if mm == NULL:
        return NULL
    mm.pgd = table_alloc(&m.kmem)
    if mm.pgd == NULL:
        kfree(&m.kmem, mm, sizeof(mm_t))
        return NULL
    mm.alive = 1
    m.last_mm_id += 1
    mm.mm_id = m.last_mm_id
    return mm


cdef void zap_pte_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    """Clear n PTEs, dropping each mapped frame's mapcount and reference
    (zap_pte_range); the zero page carries no counts (pte_special). A device-exclusive
    entry goes the same way (zap_nonpresent_ptes: rss--, folio_remove_rmap_pte, folio_put).
    The last mapping of a swap-cache folio may take it out of the cache (free_swap_cache);
    a swap entry drops its slot reference (free_swap_and_cache). A THP subpage loses its
    PTE mapcount; its folio the reference and one MM-id mapping."""
    cdef zap_ctx_t *z = <zap_ctx_t *>ctx
    cdef machine_t *m = z.m
    cdef uint32_t h
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end)
    cdef uint64_t pte
    cdef uint32_t pfn
    cdef folio_t *folio
    while i < end:
        pte = table[i]
        table_clear(table, i)
        i = next_used(table, i + 1, end)
        if (pte & (_PAGE_PRESENT | _PAGE_SPECIAL)) != _PAGE_PRESENT:    # the rare kinds
            if pte_special(pte):
                continue                     # the zero page: no counts
            if is_swap_pte(pte):
                free_swap_and_cache(m, swp_offset(pte))
                continue                     # (a DX entry goes on like a present one)
        pfn = pte_pfn(pte)
        folio = pfn_folio(&m.mem, pfn)
        folio.mapcount -= 1                  # folio_remove_rmap_pte
        if folio.flags & (PG_head | PG_tail):    # a THP subpage
            h = pfn & ~(<uint32_t>HPAGE_PMD_MASK)
            thp_mm_sub(&m.mem, h, mm_id_of(z.mm), 1)
            folio_put(&m.mem, h, pfn_folio(&m.mem, h))
            continue
        folio.refcount -= 1                  # tlb_remove_page -> folio_put
        if folio.refcount == 0:
            folio_free(&m.mem, pfn)
        elif m.swap.nr_cached != 0 and (folio.flags & PG_swapcache) and folio.mapcount == 0:
            free_swap_cache(m, pfn, folio)   # free_pages_and_swap_cache: the cache's ref


cdef void _zap_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                   int64_t hi) noexcept nogil:
    """zap_pmd_range on a huge PMD: zap_huge_pmd when the block is wholly in the range,
    else __split_huge_pmd (the walk then zaps the covered PTEs)."""
    cdef zap_ctx_t *z = <zap_ctx_t *>ctx
    if lo == haddr and hi == haddr + HPAGE_PMD_NR:
        zap_huge_pmd(z.m, z.mm, pmdp, haddr)
    else:
        split_huge_pmd(z.m, z.mm, pmdp, haddr)


cdef void _zap_pud(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                   int64_t hi) noexcept nogil:
    """zap_pud_range on a PUD leaf: zap_huge_pud when the slot is wholly in the range
    and in one VMA (unmap_single_vma clamps the zap to each VMA: a PUD straddling two
    is met partly), else __split_huge_pud (CLEAR over the slot, the whole PUD cleared)."""
    cdef zap_ctx_t *z = <zap_ctx_t *>ctx
    cdef int32_t i = find_vma(z.mm, base)
    if lo == base and hi == base + HPAGE_PUD_NR and i >= 0 \
            and z.mm.vmas[i].end >= base + HPAGE_PUD_NR:
        devmem_zap_pud(pudp, base)
    else:
        devmem_split_pud(z.m, z.mm, pudp, base)


cdef void zap_page_range(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil:
    """Zap every entry of [start, end) (zap_page_range_single / MADV_DONTNEED)."""
    cdef zap_ctx_t z
    z.m = m
    z.mm = mm
    walk_page_range_pud(mm.pgd, start, end, zap_pte_run, _zap_pmd, _zap_pud, &z)


cdef bint _no_vma_in(void *ctx, int64_t base, int64_t npages) noexcept nogil:
    """free_pgtables (floor / ceiling): the table below [base, base + npages) (a block's
    PTE table, a slot's PMD table) goes when no VMA is left there."""
    cdef mm_t *mm = <mm_t *>ctx
    cdef int32_t i = find_vma_from(mm, base)
    return i >= mm.nr_vmas or mm.vmas[i].start >= base + npages


cdef int do_vmi_munmap(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil:
    """Unmap [start, end): split the VMAs at the boundaries, zap the entries, free
    emptied tables, remove the covered VMAs; holes are fine. -1 on OOM."""
    cdef int32_t first, last, i
    if vma_range_split(m, mm, start, end, &first, &last) < 0:
        return -1
    if first == last:
        return 0
    # unmap_vmas: MMU_NOTIFY_UNMAP over the requested range, before the zap
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_UNMAP, start, end, NO_OWNER)
    # mutant munmap_leaves_last_page: the zap stops one page short of the range end
    zap_page_range(m, mm, start, end - 1 if m.mutant == MUTANT_MUNMAP_LEAVES_LAST_PAGE else end)
    for i in range(last - 1, first - 1, -1):
        vma_remove(m, mm, i)
    # free_pgtables: every block of the range in which no VMA is left loses its PTE
    # table, every slot (1 GiB) of the range in which no VMA is left its PMD table
    free_pgtables_if(mm.pgd, &m.kmem, start, end, _no_vma_in, mm)
    return 0


cdef void exit_mmap(machine_t *m, mm_t *mm) noexcept nogil:
    """Tear the address space down: zap everything, free tables and VMAs (exit_mmap).
    Subscriptions stay (the driver removes them): each sees RELEASE over its whole range
    (mmu_notifier_release -> mn_itree_release, VMAs or not), then, if anything was
    mapped, one UNMAP of the user range (unmap_vmas)."""
    cdef int32_t i
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_RELEASE, 0, ADDR_LIMIT_PAGES, NO_OWNER)
    if mm.nr_vmas > 0:                           # unmap_vmas(..., 0, ULONG_MAX)
        mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_UNMAP, 0, ADDR_LIMIT_PAGES, NO_OWNER)
    # one zap of the whole user range (a PUD leaf straddling two VMAs is split, CLEAR
    # over its slot, as the kernel's unmap_single_vma, clamped to each VMA, does)
    zap_page_range(m, mm, 0, TASK_SIZE_PAGES)
    pgd_free_all(mm.pgd, &m.kmem)
    mm.pgd = NULL
    for i in range(mm.nr_vmas - 1, -1, -1):
        vma_remove(m, mm, i)
    kfree(&m.kmem, mm.vmas, mm.cap_vmas * sizeof(vma_t))
    mm.vmas = NULL
    mm.cap_vmas = 0
    mm.alive = 0


cdef inline int64_t _align_up(int64_t x, int64_t align) noexcept nogil:
    return (x + align - 1) & ~(align - 1)


cdef int64_t _unmapped_area(mm_t *mm, int64_t npages, int64_t align,
                            int64_t off) noexcept nogil:
    """Lowest free range of npages starting at >= MMAP_MIN_PAGES whose start is off
    modulo align pages (rules.md: bottom-up, not the kernel's top-down search). -1 if
    none."""
    cdef int64_t cand = _align_up(MMAP_MIN_PAGES - off, align) + off
    cdef int32_t i
    for i in range(mm.nr_vmas):
        if mm.vmas[i].end <= cand:
            continue
        if cand + npages <= mm.vmas[i].start:
            break
        cand = _align_up(mm.vmas[i].end - off, align) + off
    if cand + npages > TASK_SIZE_PAGES:
        return -1
    return cand


cdef int64_t get_unmapped_area(mm_t *mm, int64_t npages, int64_t align) noexcept nogil:
    """The lowest free range aligned to align pages (private anon THP-sized mappings)."""
    return _unmapped_area(mm, npages, align, 0)


cdef int64_t get_unmapped_area_off(mm_t *mm, int64_t npages, int64_t off) noexcept nogil:
    """The lowest free range whose start is off modulo HPAGE_PMD_NR (a pfnmap of >= 512
    pages: drm_get_unmapped_area keeps the file offset's position within 2 MiB)."""
    return _unmapped_area(mm, npages, HPAGE_PMD_NR, off)
