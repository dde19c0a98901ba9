# dirty: dirty tracking of shared file mappings (mm/mapping_dirty_helpers.c), the
# helpers a graphics driver uses on its buffer objects (seed 000).
#
# Rules (reference/dirty.py has the same list):
# - walk_page_mapping visits the VMAs of the file's i_mmap tree that map a pgoff in
#   [first, first + nr), in ascending vm_pgoff (ties: process, then address -- the
#   kernel's insertion order is not kept), clipped to that range.
# - wp_clean_test_walk refuses a private VMA and walk_page_mapping then STOPS the walk
#   (`if (err > 0) { err = 0; break; }`): later VMAs are not visited.
# - Per visited VMA part: wp_clean_pre_vma fires PROTECTION_PAGE over it, always.
# - wp_pte: present + writable -> wrprotect, counted. clean_record_pte: dirty ->
#   mkclean (write and soft-dirty kept), counted, bit pgoff - first set.
# - Huge PMDs and PUD leaves are skipped (wp_clean_pmd_entry / wp_clean_pud_entry:
#   ACTION_CONTINUE, never split): the walk passes over them; a skipped one that is
#   writable or dirty hits the kernel's WARN_ON: machine.warnings + 1 (devmem.md, pud.md),
#   once per VMA part that meets it.
# - A devmem BO becomes tracked (devmem.pyx) at its first wp_range / clean_record.
# - nr == 0: nothing (the kernel's interval query would wrap; callers never pass 0).
from libc.stdlib cimport qsort


ctypedef struct dirty_ctx_t:
    machine_t *m
    int64_t total       # PTEs changed
    int64_t vma_start   # the walked VMA's start and vm_pgoff (clean_record's pgoff)
    int64_t vma_pgoff
    int64_t first       # bitmap_pgoff
    bint oom


cdef void _wp_pte_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    """wp_pte over one run: present writable PTEs become read-only."""
    cdef dirty_ctx_t *c = <dirty_ctx_t *>ctx
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t end = (vpn & TABLE_MASK) + n
    cdef int64_t i = next_used(table, vpn & TABLE_MASK, end)
    while i < end:
        if pte_present(table[i]) and pte_write(table[i]):
            table[i] = pte_wrprotect(table[i])
            c.total += 1
        i = next_used(table, i + 1, end)


cdef void _clean_record_pte_run(void *ctx, uint64_t *ptep, int64_t vpn,
                                int64_t n) noexcept nogil:
    """clean_record_pte over one run: dirty PTEs become clean, their bit is recorded
    (appended to machine.bits; sorted and deduplicated by the caller)."""
    cdef dirty_ctx_t *c = <dirty_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t base = vpn - (vpn & TABLE_MASK)
    cdef int64_t end = (vpn & TABLE_MASK) + n
    cdef int64_t i = next_used(table, vpn & TABLE_MASK, end)
    while i < end:
        if pte_present(table[i]) and pte_dirty(table[i]):
            table[i] = table[i] & ~(<uint64_t>_PAGE_DIRTY)     # pte_mkclean
            c.total += 1
            if m.nr_bits == m.cap_bits and kgrow(&m.kmem, <void **>&m.bits, &m.cap_bits,
                                                 sizeof(int64_t), 16) < 0:
                c.oom = True
                return
            m.bits[m.nr_bits] = c.vma_pgoff + (base + i - c.vma_start) - c.first
            m.nr_bits += 1
        i = next_used(table, i + 1, end)


cdef void _wp_clean_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                        int64_t hi) noexcept nogil:
    """wp_clean_pmd_entry: a huge PMD is skipped, never split;
    WARN_ON(pmd_write || pmd_dirty) is counted in machine.warnings."""
    cdef dirty_ctx_t *c = <dirty_ctx_t *>ctx
    if pte_write(pmdp[0]) or pte_dirty(pmdp[0]):
        c.m.warnings += 1


cdef void _wp_clean_pud(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                        int64_t hi) noexcept nogil:
    """wp_clean_pud_entry: a PUD leaf is skipped, never split, not counted;
    WARN_ON(pud_write || pud_dirty) is counted in machine.warnings."""
    cdef dirty_ctx_t *c = <dirty_ctx_t *>ctx
    if pte_write(pudp[0]) or pte_dirty(pudp[0]):
        c.m.warnings += 1


cdef inline bint _key_less(int64_t pa, int32_t ka, int64_t sa, int64_t pb, int32_t kb,
                           int64_t sb) noexcept nogil:
    return pa < pb or (pa == pb and (ka < kb or (ka == kb and sa < sb)))


cdef void _mapping_walk(machine_t *m, int32_t file, int64_t first, int64_t nr,
                        pte_run_fn fn, dirty_ctx_t *c) noexcept nogil:
    """walk_page_mapping with the wp/clean ops: the VMAs of `file` mapping a pgoff in
    [first, first + nr) in (vm_pgoff, process, start) order, each found by a selection
    pass (no allocation), until the first private one."""
    cdef int64_t last = first + nr
    cdef int64_t cur_pgoff = -1, cur_start = -1, best_pgoff, best_start, cba, cea, s, e
    cdef int32_t cur_k = -1, best_k, best_i, k, i
    cdef mm_t *mm
    cdef vma_t *v
    if nr == 0:
        return
    while True:
        best_k = -1
        best_i = -1
        best_pgoff = 0
        best_start = 0
        for k in range(m.nr_procs):
            mm = m.procs[k]
            if not mm.alive:
                continue
            for i in range(mm.nr_vmas):
                v = &mm.vmas[i]
                if v.file != file or v.pgoff >= last or v.pgoff + (v.end - v.start) <= first:
                    continue
                if cur_k >= 0 and not _key_less(cur_pgoff, cur_k, cur_start, v.pgoff, k, v.start):
                    continue                       # visited already
                if best_k < 0 or _key_less(v.pgoff, k, v.start, best_pgoff, best_k, best_start):
                    best_k, best_i, best_pgoff, best_start = k, i, v.pgoff, v.start
        if best_k < 0:
            return
        cur_k, cur_pgoff, cur_start = best_k, best_pgoff, best_start
        mm = m.procs[best_k]
        v = &mm.vmas[best_i]
        if not v.shared:
            return                                 # wp_clean_test_walk -> 1: break
        cba = max(first, v.pgoff)                  # clip to the vma
        cea = min(last, v.pgoff + (v.end - v.start))
        s = v.start + (cba - v.pgoff)
        e = v.start + (cea - v.pgoff)
        # wp_clean_pre_vma: MMU_NOTIFY_PROTECTION_PAGE over the part, whatever changes
        mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_PROTECTION_PAGE, s, e, NO_OWNER)
        c.vma_start = v.start
        c.vma_pgoff = v.pgoff
        walk_page_range_pud(mm.pgd, s, e, fn, _wp_clean_pmd, _wp_clean_pud, c)   # huge
                                                   # PMDs and PUD leaves passed over
        if c.oom:
            return


cdef void sys_wp_range(machine_t *m, int32_t file, int64_t first, int64_t nr,
                       mm_res_t *r) noexcept nogil:
    """`wp_range F PGOFF N`: wp_shared_mapping_range; EBADF for a file never created."""
    cdef dirty_ctx_t c
    if not m.files[file].live:
        res_set(r, RES_ERRNO, EBADF)
        return
    if m.files[file].devmem:
        m.files[file].tracked = 1                  # vmwgfx: VMW_BO_DIRTY_MKWRITE from now on
    c.m = m
    c.total = 0
    c.first = first
    c.oom = False
    _mapping_walk(m, file, first, nr, _wp_pte_run, &c)
    res_set(r, RES_VALUE, <uint64_t>c.total)


cdef int _cmp_i64(const void *a, const void *b) noexcept nogil:
    cdef int64_t x = (<const int64_t *>a)[0], y = (<const int64_t *>b)[0]
    return (x > y) - (x < y)


cdef void sys_clean_record(machine_t *m, int32_t file, int64_t first, int64_t nr,
                           mm_res_t *r) noexcept nogil:
    """`clean_record F PGOFF N`: clean_record_shared_mapping_range with bitmap_pgoff =
    PGOFF and a fresh bitmap; the result (RES_BITS) names machine.bits[start..]: the
    count, then the set bits ascending."""
    cdef dirty_ctx_t c
    cdef int32_t start, i, j, n
    if not m.files[file].live:
        res_set(r, RES_ERRNO, EBADF)
        return
    if m.files[file].devmem:
        m.files[file].tracked = 1                  # vmwgfx: VMW_BO_DIRTY_MKWRITE from now on
    if m.nr_bits == m.cap_bits and kgrow(&m.kmem, <void **>&m.bits, &m.cap_bits,
                                         sizeof(int64_t), 16) < 0:
        return
    start = m.nr_bits
    m.nr_bits += 1                                 # the count's slot
    c.m = m
    c.total = 0
    c.first = first
    c.oom = False
    _mapping_walk(m, file, first, nr, _clean_record_pte_run, &c)
    if c.oom:
        return
    m.bits[start] = c.total
    n = m.nr_bits - start - 1
    if n > 1:
        qsort(&m.bits[start + 1], n, sizeof(int64_t), _cmp_i64)
        j = 1                                      # deduplicate (__set_bit twice)
        for i in range(1, n):
            if m.bits[start + 1 + i] != m.bits[start + j]:
                m.bits[start + 1 + j] = m.bits[start + 1 + i]
                j += 1
        m.nr_bits = start + 1 + j
    res_set(r, RES_BITS, ((<uint64_t>start) << 32) | <uint64_t>(m.nr_bits - start))
