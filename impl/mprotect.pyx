# mprotect: per-VMA fixup and the PTE pass (change_pte_range).
#
# Rules (rules.md "mprotect"): private mappings make every entry read-only and
# upgrade it back only for an AnonExclusive anon page when the new prot is rw
# (can_change_pte_writable); shared (shmem) mappings follow the prot directly. A
# hole stops the walk with ENOMEM, keeping the pieces already changed. A range whose
# byte end wraps (vpn+N > 2^52) is ENOMEM up front; TASK_SIZE itself is not checked.
# A piece whose prot does not change is left alone (mprotect_fixup returns early); a
# changing one fires PROTECTION_VMA first, where page tables exist (change_pud_range,
# see _notify_protection_vma). Swap and device-exclusive entries are left as they are
# (no write bit to take away; swap-ksm.md, device.md).


ctypedef struct prot_ctx_t:
    machine_t *m
    uint8_t prot
    uint8_t shared
    uint8_t writenotify     # vma_wants_writenotify (soft-dirty tracking on a shared rw VMA)
    uint8_t tracking        # vma_soft_dirty_enabled
    uint8_t pfnmap          # a pfnmap VMA: always write-notify (pfn_mkwrite)
    vma_t *v                # the VMA (change_huge_pmd)
    mm_t *mm                # its mm (__split_huge_pud's notifier)


cdef void change_pte_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef prot_ctx_t *c = <prot_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef bint rw = c.prot == PROT_RW
    cdef bint upgrade_excl = rw and m.mutant != MUTANT_NO_ANON_EXCLUSIVE_REUSE
    # can_change_pte_writable: anon and PageAnonExclusive; a mutant drops the AE test
    cdef uint32_t need = PG_anon if m.mutant == MUTANT_MPROTECT_UPGRADES_COW_PAGE \
        else PG_anon | PG_anon_exclusive
    cdef uint64_t pte
    cdef folio_t *folio
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t end = (vpn & TABLE_MASK) + n
    cdef int64_t i = next_used(table, vpn & TABLE_MASK, end)
    while i < end:
        pte = table[i]
        if not pte_present(pte):                 # swap or DX entry: newpte == oldpte
            i = next_used(table, i + 1, end)
            continue
        if c.pfnmap:
            # vm_page_prot without write; MM_CP_TRY_CHANGE_WRITABLE (VM_WRITE) ->
            # can_change_pte_writable (shared): no soft-dirty fault wanted, and dirty
            pte = pte_wrprotect(pte)
            if rw and pte_dirty(pte) and not (c.tracking and not pte_soft_dirty(pte)):
                pte = pte_mkwrite(pte)
        elif c.shared and not c.writenotify:
            pte = pte_mkwrite(pte) if rw else pte_wrprotect(pte)
        elif c.shared:
            # vm_page_prot without write (vma_wants_writenotify: soft-dirty tracking);
            # MM_CP_TRY_CHANGE_WRITABLE -> can_change_pte_writable: soft-dirty and dirty
            pte = pte_wrprotect(pte)
            if pte_soft_dirty(pte) and pte_dirty(pte):
                pte = pte_mkwrite(pte)
        else:
            pte = pte_wrprotect(pte)
            # can_change_pte_writable: pte_needs_soft_dirty_wp first
            if upgrade_excl and not pte_special(pte) \
                    and not (c.tracking and not pte_soft_dirty(pte)):
                folio = pfn_folio(&m.mem, pte_pfn(pte))
                if (folio.flags & need) == need:
                    pte = pte_mkwrite(pte)
        table[i] = pte
        i = next_used(table, i + 1, end)


cdef void _change_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                      int64_t hi) noexcept nogil:
    """change_pmd_range on a huge PMD (wholly inside: the VMA split split any other)."""
    cdef prot_ctx_t *c = <prot_ctx_t *>ctx
    change_huge_pmd(c.m, c.v, pmdp)


cdef void _notify_protection_vma(machine_t *m, mm_t *mm, int64_t start,
                                 int64_t end) noexcept nogil:
    """change_protection's MMU_NOTIFY_PROTECTION_VMA for the piece [start, end).
    change_pud_range (6.12+) runs once per PGD entry (512 GiB: 2^27 pages) of the range
    and starts the notifier at the first PUD entry (1 GiB slot: 2^18 pages) that is not
    none (a PMD table or a PUD leaf: pud.md A), over [max(start, that slot's first vpn),
    end of the PGD chunk's part)."""
    cdef int64_t a = start, b, first
    if mm.nr_subs == 0:
        return                                   # nobody listens: skip the table search
    while a < end:
        b = min(end, ((a >> PGDIR_SHIFT) + 1) << PGDIR_SHIFT)
        first = pud_first_present(mm.pgd, (a >> PUD_SHIFT) << PUD_SHIFT, b)
        if first >= 0:
            mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_PROTECTION_VMA, max(a, first), b,
                                          NO_OWNER)
        a = b


cdef void _change_pud(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                      int64_t hi) noexcept nogil:
    """change_pud_range on a PUD leaf: the whole slot in the piece -> change_huge_pud
    (pud_modify: the write bit of the new vm_page_prot, read-only for a pfnmap VMA that
    wants write-notify; dirty and soft-dirty kept); partly -> __split_huge_pud."""
    cdef prot_ctx_t *c = <prot_ctx_t *>ctx
    if lo == base and hi == base + HPAGE_PUD_NR:
        pudp[0] = pte_wrprotect(pudp[0])
    else:
        devmem_split_pud(c.m, c.mm, pudp, base)


cdef void change_protection(machine_t *m, mm_t *mm, vma_t *v) noexcept nogil:
    cdef prot_ctx_t ctx
    ctx.m = m
    ctx.prot = v.prot
    ctx.shared = v.shared
    ctx.writenotify = vma_wants_writenotify(v)
    ctx.tracking = vma_soft_dirty_enabled(v)
    ctx.pfnmap = v.pfnmap
    ctx.v = v
    ctx.mm = mm
    walk_page_range_pud(mm.pgd, v.start, v.end, change_pte_run, _change_pmd, _change_pud, &ctx)


cdef void sys_mprotect(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil:
    cdef int64_t start = op.a0, end = op.a0 + op.a1
    cdef uint8_t prot = <uint8_t>op.a2
    cdef int32_t idx
    cdef int err = 0
    if op.a1 == 0:
        res_set(r, RES_OK, 0)
        return
    if end > ADDR_LIMIT_PAGES:
        res_set(r, RES_ERRNO, ENOMEM)            # the byte range wraps
        return
    # no TASK_SIZE check: the space past it is a hole like any other
    idx = find_vma(mm, start)
    if idx < 0:
        res_set(r, RES_ERRNO, ENOMEM)
        return
    while True:
        # mprotect_fixup: newflags == oldflags -> 0 before vma_modify_flags, so an
        # unchanged VMA is not split (nor a huge PMD in it: vma_adjust_trans_huge)
        if mm.vmas[idx].prot != prot:
            if mm.vmas[idx].start < start:
                if vma_split(m, mm, idx, start) < 0:
                    return
                idx += 1
            if mm.vmas[idx].end > end and vma_split(m, mm, idx, end) < 0:
                return
            _notify_protection_vma(m, mm, mm.vmas[idx].start, mm.vmas[idx].end)
            mm.vmas[idx].prot = prot
            change_protection(m, mm, &mm.vmas[idx])
        if mm.vmas[idx].end >= end:
            break
        idx += 1
        if idx >= mm.nr_vmas or mm.vmas[idx].start != mm.vmas[idx - 1].end:
            err = ENOMEM                         # a hole before the end of the range
            break
    vma_merge_range(m, mm, start, end)
    if err:
        res_set(r, RES_ERRNO, err)
    else:
        res_set(r, RES_OK, 0)
