# fork: the child's address space (dup_mmap) and the entry copy (copy_present_ptes).
#
# Rules (rules.md "fork"): VM_DONTCOPY VMAs are skipped; VM_WIPEONFORK VMAs are
# copied without anon_vma or entries; otherwise the child VMA gets a new forked
# anon_vma iff the parent's has one, and entries are copied only then
# (vma_needs_copy). Copied anon pages lose AnonExclusive and both sides become
# read-only; page-cache pages are shared read-only; the zero page is copied as is.
# A pinned AnonExclusive page is copied for the child at once (copy_present_page).
# Each VMA whose entries are copied fires PROTECTION_PAGE over it in the parent first.
# A swap entry is copied: one more slot reference, and its exclusive marker is cleared
# in parent and child (copy_nonpresent_pte: pte_swp_clear_exclusive).
# A device-exclusive entry is restored in the parent (no event of its own: the
# PROTECTION_PAGE covers it) and then copied as present; if its folio is locked the
# fork fails (copy_nonpresent_pte -> try_restore_exclusive_pte: -EBUSY, which
# copy_pmd_range turns into -ENOMEM) and stops.
# A VM_PFNMAP VMA is always copied, with no event: a special PUD or PMD as is (old), a
# pfn PTE with pte_mkclean (devmem.md "fork", pud.md B).
# Every copied VMA gives the child a PMD table in each slot (1 GiB) where the parent has
# one, even an empty one (copy_pmd_range's unconditional pmd_alloc: pud.md A).


ctypedef struct copy_ctx_t:
    machine_t *m
    mm_t *src
    mm_t *dst
    vma_t *vma          # the parent VMA being copied (same prot as the child's)
    int err             # ENOMEM once a locked DX folio stopped the copy


cdef inline bint folio_needs_cow_for_dma(machine_t *m, mm_t *src, folio_t *folio) noexcept nogil:
    """MMF_HAS_PINNED && folio_maybe_dma_pinned (exact here: pincount > 0)."""
    if m.mutant == MUTANT_FORK_SHARES_PINNED_PAGE:
        return False                             # mutant: the child shares the pinned page
    return src.has_pinned and folio.pincount > 0


cdef uint64_t copy_present_page(machine_t *m, vma_t *v, folio_t *folio) noexcept nogil:
    """The child's private copy of a pinned exclusive page (the parent's entry stays):
    maybe_mkwrite(pte_mkdirty(mk_pte(new, vm_page_prot))); 0 on OOM."""
    cdef uint32_t pfn = _alloc_anon_folio(m, folio.value)
    if pfn == 0:
        return 0
    return maybe_mkwrite(v, pte_mkdirty(pfn_pte(pfn, 0)))


cdef void copy_pte_run(void *ctx, uint64_t *src, int64_t vpn, int64_t n) noexcept nogil:
    """Copy one run of parent PTEs into the child (copy_pte_range + copy_present_pte)."""
    cdef copy_ctx_t *c = <copy_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t *table = pte_table_of(src, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end)
    cdef uint64_t *dst = NULL
    cdef uint64_t pte
    cdef folio_t *folio
    # folio_try_dup_anon_rmap_pte clears PageAnonExclusive; a mutant keeps it
    cdef uint32_t keep = PG_anon_exclusive if m.mutant == MUTANT_FORK_KEEPS_EXCLUSIVE else 0
    # ptep_set_wrprotect(src) of a COW mapping; a mutant leaves the parent writable
    cdef bint wrprotect_src = m.mutant != MUTANT_FORK_NO_WRPROTECT
    if c.err:
        return                                   # copy_page_range already failed
    # copy_pte_range allocates the child's table wherever the parent has one, even an
    # empty one (checked on 6.18: the child then faults at PTE level there)
    dst = pte_alloc_map(c.dst.pgd, &m.kmem, vpn)
    if dst == NULL:
        return                                   # kmem.oom is set; the op is abandoned
    dst = pte_table_of(dst, vpn)
    while i < end:
        pte = table[i]
        if not pte_present(pte) and is_swap_pte(pte):   # copy_nonpresent_pte: swap_duplicate
            m.swap.slots[swp_offset(pte)].count += 1
            if m.mutant != MUTANT_FORK_KEEPS_SWAP_EXCLUSIVE:   # mutant: the marker stays
                pte &= ~(<uint64_t>_PAGE_SWP_EXCLUSIVE)      # shared now: in BOTH tables
                table[i] = pte
            table_set(dst, i, pte)               # soft-dirty copied
            i = next_used(table, i + 1, end)
            continue
        if not pte_present(pte):                 # copy_nonpresent_pte: a DX entry
            if folio_test_locked(page_folio(&m.mem, pte_pfn(pte))):
                c.err = ENOMEM                   # trylock failed: -EBUSY, fork sees -ENOMEM
                return
            restore_exclusive_pte(m, c.vma, &table[i])   # -ENOENT: copy it as present
            pte = table[i]
        if c.vma.pfnmap:                         # a pfn PTE: no page; shared -> pte_mkclean
            table_set(dst, i, pte_mkold(pte & ~(<uint64_t>_PAGE_DIRTY)))
            i = next_used(table, i + 1, end)
            continue
        if not pte_special(pte):                 # the zero page has no counts
            folio = pfn_folio(&m.mem, pte_pfn(pte))   # the page (a THP subpage: its own AE)
            if (folio.flags & PG_anon_exclusive) and folio_needs_cow_for_dma(
                    m, c.src, page_folio(&m.mem, pte_pfn(pte))):
                # __folio_try_dup_anon_rmap -> -EBUSY: copy_present_page for the child
                pte = copy_present_page(m, c.vma, folio)
                if pte == 0:
                    return                       # kmem.oom is set; the op is abandoned
                table_set(dst, i, pte)
                i = next_used(table, i + 1, end)
                continue
            if page_is_thp(folio):               # the THP's reference and MM id
                page_folio(&m.mem, pte_pfn(pte)).refcount += 1
                thp_mm_add(&m.mem, page_folio_pfn(&m.mem, pte_pfn(pte)), mm_id_of(c.dst), 1)
            else:
                folio.refcount += 1              # folio_get
            folio.mapcount += 1                  # folio_try_dup_anon_rmap_pte / dup_file_rmap
            folio.flags &= ~(<uint32_t>PG_anon_exclusive) | keep
            pte = pte_wrprotect(pte)             # is_cow_mapping: parent and child read-only
            if wrprotect_src:
                table[i] = pte
        table_set(dst, i, pte_mkold(pte))
        i = next_used(table, i + 1, end)


cdef void copy_huge_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                        int64_t hi) noexcept nogil:
    """copy_huge_pmd: the huge zero folio is mapped in the child too; a THP that is
    AnonExclusive and maybe pinned (folio-wide pincount > 0, MMF_HAS_PINNED) splits the
    PARENT's PMD (the walk then copies its PTEs); else the head loses AnonExclusive, both
    PMDs are read-only (child: same dirty/soft-dirty, old), refcount and entire + 1,
    MM id add(child, 1)."""
    cdef copy_ctx_t *c = <copy_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t pmd = pmdp[0]
    cdef uint32_t h = pte_pfn(pmd)
    cdef folio_t *head
    cdef uint64_t *dst
    if c.err or m.kmem.oom:
        return
    if not is_hzero_pfn(&m.mem, h) and not pte_is_dev(pmd):   # special PMD: copied as is
        head = pfn_folio(&m.mem, h)
        if (head.flags & PG_anon_exclusive) and folio_needs_cow_for_dma(m, c.src, head):
            split_huge_pmd(m, c.src, pmdp, haddr)    # -EAGAIN: copy_pte_range follows
            return
        head.flags &= ~(<uint32_t>PG_anon_exclusive)   # folio_try_dup_anon_rmap_pmd
        head.refcount += 1
        thp_entire(&m.mem, h)[0] += 1
        thp_mm_add(&m.mem, h, mm_id_of(c.dst), 1)
        pmd = pte_wrprotect(pmd)                 # pmdp_set_wrprotect
        pmdp[0] = pmd
    dst = pmd_alloc_map(c.dst.pgd, &m.kmem, haddr)
    if dst == NULL:
        return                                   # kmem.oom is set
    pmd_set(dst, haddr, pte_mkold(pmd))


cdef void copy_huge_pud(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                        int64_t hi) noexcept nogil:
    """copy_huge_pud of a special PUD (a shared pfnmap VMA: no write-protect, no
    notifier): the child gets the entry as it is (old), and no PMD table in the slot. A
    PUD straddling two VMAs is met once per VMA: the second copy rewrites the same entry."""
    cdef copy_ctx_t *c = <copy_ctx_t *>ctx
    cdef uint64_t *dst
    if c.err or c.m.kmem.oom:
        return
    dst = pud_alloc_map(c.dst.pgd, &c.m.kmem, base)
    if dst == NULL:
        return                                   # kmem.oom is set
    if dst[0] == 0:
        table_set(dst - level_index(base, PUD_SHIFT), level_index(base, PUD_SHIFT),
                  pte_mkold(pudp[0]))
    elif pud_trans_huge(dst[0]):
        dst[0] = pte_mkold(pudp[0])              # set_pud_at over the first copy
    else:
        c.m.kmem.oom = 1                         # a model bug: a PMD table beside a leaf


cdef mm_t *dup_mmap(machine_t *m, mm_t *parent, int *err) noexcept nogil:
    """The child address space of a fork of parent; NULL on OOM. *err = ENOMEM when
    copy_page_range failed (the caller tears the partial child down)."""
    cdef mm_t *child = mm_alloc(m)
    cdef vma_t cv
    cdef vma_t *pv
    cdef int32_t i
    cdef copy_ctx_t ctx
    cdef bint wipe
    if child == NULL:
        return NULL
    ctx.m = m
    ctx.src = parent
    ctx.dst = child
    ctx.err = 0
    for i in range(parent.nr_vmas):
        pv = &parent.vmas[i]
        if pv.madv & VM_DONTCOPY:
            continue
        cv = pv[0]
        cv.forked = 0
        # mutant wipeonfork_copies: a VM_WIPEONFORK VMA is copied like any other
        wipe = (pv.madv & VM_WIPEONFORK) != 0 and m.mutant != MUTANT_WIPEONFORK_COPIES
        if wipe:
            cv.anon_vma = 0
        elif pv.anon_vma != 0:
            m.last_anon_vma += 1                 # anon_vma_fork: a new anon_vma, chain of 2
            cv.anon_vma = m.last_anon_vma
            cv.forked = 1
        if vma_insert(m, child, child.nr_vmas, &cv) < 0:
            break
        if pv.pfnmap:                            # vma_needs_copy: VM_PFNMAP, always;
            ctx.vma = pv                         # shared: no PROTECTION_PAGE
            # copy_pmd_range's pmd_alloc: a PMD table wherever the parent has one
            if pmd_tables_copy(parent.pgd, child.pgd, &m.kmem, pv.start, pv.end) < 0:
                break
            walk_page_range_pud(parent.pgd, pv.start, pv.end, copy_pte_run, copy_huge_pmd,
                                copy_huge_pud, &ctx)
        elif not wipe and pv.anon_vma != 0:      # vma_needs_copy
            # copy_page_range of a COW mapping: MMU_NOTIFY_PROTECTION_PAGE over the VMA
            mmu_notifier_invalidate_range(m, parent, MMU_NOTIFY_PROTECTION_PAGE, pv.start,
                                          pv.end, NO_OWNER)
            ctx.vma = pv
            if pmd_tables_copy(parent.pgd, child.pgd, &m.kmem, pv.start, pv.end) < 0:
                break
            walk_page_range(parent.pgd, pv.start, pv.end, copy_pte_run, copy_huge_pmd, &ctx)
        if m.kmem.oom or ctx.err:
            break
    err[0] = ctx.err
    return child
