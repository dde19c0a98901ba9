# pagetable: the 4-level radix page table (PGD -> PUD -> PMD -> PTE), 512 uint64_t
# entries per level, tables allocated on demand.
#
# Leaf (PTE) entry: _PAGE_* bits in 0..11, the pfn in bits 12..51 (pfn_pte).
# Upper entry (pgd/pud/pmd): the next table's address | _PAGE_TABLE (pmd_populate).
# A table is 512 entries preceded by a bitmap of its used entries (kmem.pxd).
# An entry of 0 is none. A non-present nonzero leaf is a swap-type entry
# (constants.pxi): a device-exclusive entry keeps the pfn in bits 12..51 like a
# present entry, so pte_pfn() reads both; a swap entry keeps its swap slot there
# (swp_offset), and pte_pfn() of it means nothing: test is_swap_pte first.

# Callback over one run of PTEs inside a single PTE table: ptep[0..n) map
# vpn .. vpn+n-1 (mm_walk_ops.pte_entry, batched per table). Callbacks visit the
# used entries with next_used(pte_table_of(ptep, vpn), ...).
ctypedef void (*pte_run_fn)(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil
# Callback over one huge PMD (pmd_entry of a walk): pmdp is its slot, haddr the block's
# first vpn, [lo, hi) the part of the walked range inside the block. It may zap the
# entry, keep it, or split it: after a split the walk goes on with the PTE run of
# [lo, hi) in the new table.
ctypedef void (*pmd_fn_t)(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                          int64_t hi) noexcept nogil
# Callback over one PUD leaf (a special PUD of device memory): pudp is its slot in the
# PUD table, base the slot's first vpn, [lo, hi) the part of the walked range inside the
# slot. It may zap the entry or keep it (never split it into a table): the walk goes on
# with the next slot either way.
ctypedef void (*pud_fn_t)(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                          int64_t hi) noexcept nogil
# Predicate of free_pgtables_if: may the table below the range [base, base + npages)
# go (npages 512: an empty PTE table; 2^18: the slot's PMD table with every table below)?
ctypedef bint (*table_pred_fn)(void *ctx, int64_t base, int64_t npages) noexcept nogil

cdef inline bint pte_none(uint64_t pte) noexcept nogil:
    return pte == 0

cdef inline bint pte_present(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_PRESENT) != 0

cdef inline bint pte_write(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_RW) != 0

cdef inline bint pte_dirty(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_DIRTY) != 0

cdef inline bint pte_soft_dirty(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_SOFT_DIRTY) != 0

cdef inline bint pte_special(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_SPECIAL) != 0

cdef inline uint32_t pte_pfn(uint64_t pte) noexcept nogil:
    return <uint32_t>(pte >> PTE_PFN_SHIFT)

cdef inline bint pte_is_dev(uint64_t pte) noexcept nogil:
    """A special entry mapping a device pfn (a pfn PTE or special huge PMD of a VM_PFNMAP
    VMA: devmem.pyx); the other special entry is the zero page (pfn 0)."""
    return (pte & (_PAGE_PRESENT | _PAGE_SPECIAL)) == (_PAGE_PRESENT | _PAGE_SPECIAL) \
        and (pte_pfn(pte) & DEV_PFN_BIT) != 0

cdef inline uint64_t pfn_pte(uint32_t pfn, uint64_t bits) noexcept nogil:
    return ((<uint64_t>pfn) << PTE_PFN_SHIFT) | bits | _PAGE_PRESENT

cdef inline uint64_t pte_mkwrite(uint64_t pte) noexcept nogil:
    return pte | _PAGE_RW

cdef inline uint64_t pte_wrprotect(uint64_t pte) noexcept nogil:
    return pte & ~(<uint64_t>_PAGE_RW)

cdef inline uint64_t pte_mkdirty(uint64_t pte) noexcept nogil:
    # x86 pte_mkdirty sets soft-dirty too (arch/x86/include/asm/pgtable.h)
    return pte | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED

cdef inline uint64_t entry_state_bits(uint64_t e) noexcept nogil:
    """The `state` probe's write/dirty/soft-dirty bits of a PTE or huge PMD entry."""
    return ((STATE_WRITABLE if pte_write(e) else 0) | (STATE_DIRTY if pte_dirty(e) else 0)
            | (STATE_SOFT_DIRTY if pte_soft_dirty(e) else 0))

cdef inline uint64_t pte_mkold(uint64_t pte) noexcept nogil:
    return pte & ~(<uint64_t>_PAGE_ACCESSED)

# --- device-exclusive entries (include/linux/swapops.h; 6.15+: one non-writable type
# that counts as a mapping: mapcount and reference stay with the entry)

cdef inline bint is_device_exclusive_entry(uint64_t pte) noexcept nogil:
    return (pte != 0 and not pte_present(pte)
            and ((pte >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK) == SWP_DEVICE_EXCLUSIVE)

cdef inline uint64_t make_device_exclusive_entry(uint32_t pfn, bint soft_dirty) noexcept nogil:
    """swp_entry_to_pte(make_device_exclusive_entry(pfn)) [+ pte_swp_mksoft_dirty]."""
    return (((<uint64_t>pfn) << PTE_PFN_SHIFT)
            | ((<uint64_t>SWP_DEVICE_EXCLUSIVE) << SWP_TYPE_SHIFT)
            | (_PAGE_SWP_SOFT_DIRTY if soft_dirty else 0))

cdef inline bint pte_swp_soft_dirty(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_SWP_SOFT_DIRTY) != 0

# --- swap entries of the zram device (include/linux/swapops.h: swp_entry_to_pte,
# pte_swp_exclusive; offset = the swap slot, swap.pxd)

cdef inline bint is_swap_pte(uint64_t pte) noexcept nogil:
    """A swap entry (non_swap_entry() false): not none, not present, type ZRAM."""
    return (pte != 0 and not pte_present(pte)
            and ((pte >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK) == SWP_TYPE_ZRAM)

cdef inline uint64_t swp_entry_to_pte(uint32_t slot, bint exclusive,
                                      bint soft_dirty) noexcept nogil:
    """swp_entry_to_pte(swp_entry(ZRAM, slot)) [+ pte_swp_mkexclusive] [+ soft-dirty]."""
    return (((<uint64_t>slot) << PTE_PFN_SHIFT)
            | ((<uint64_t>SWP_TYPE_ZRAM) << SWP_TYPE_SHIFT)
            | (_PAGE_SWP_EXCLUSIVE if exclusive else 0)
            | (_PAGE_SWP_SOFT_DIRTY if soft_dirty else 0))

cdef inline uint32_t swp_offset(uint64_t pte) noexcept nogil:
    return <uint32_t>(pte >> PTE_PFN_SHIFT)

cdef inline bint pte_swp_exclusive(uint64_t pte) noexcept nogil:
    return (pte & _PAGE_SWP_EXCLUSIVE) != 0

# --- huge PMDs (anon THP and the huge zero folio): a leaf in the PMD table with
# _PAGE_PSE, the head pfn in bits 12..51 like a PTE (pmd_trans_huge, pmd_pfn)

cdef inline bint pmd_trans_huge(uint64_t pmd) noexcept nogil:
    return (pmd & (_PAGE_PRESENT | _PAGE_PSE)) == (_PAGE_PRESENT | _PAGE_PSE)

cdef inline uint64_t pmd_subpage_pte(uint64_t pmd, int64_t vpn) noexcept nogil:
    """The PTE-shaped view of subpage vpn & 511 of a huge PMD: its pfn, the PMD's bits."""
    return (pmd & ~(<uint64_t>_PAGE_PSE)) + ((<uint64_t>(vpn & HPAGE_PMD_MASK)) << PTE_PFN_SHIFT)

# --- PUD leaves (special PUDs of device memory: vmf_insert_pfn_pud): a leaf in the PUD
# table with _PAGE_PSE, the pfn in bits 12..51 like a huge PMD (pud_trans_huge). A slot
# (1 GiB) whose PUD entry is a leaf has no PMD table: every helper below that looks for
# a PMD or PTE slot answers "none" there (pmd_offset_map, pte_offset_map, huge_pmd_at;
# walks pass over the leaf unless given a pud_fn); pud_offset_map / huge_pud_at see it.
# Table pointers never have _PAGE_PSE (TABLE_BASE_ALIGN), so the test is exact.

cdef inline bint pud_trans_huge(uint64_t pud) noexcept nogil:
    return (pud & (_PAGE_PRESENT | _PAGE_PSE)) == (_PAGE_PRESENT | _PAGE_PSE)

cdef inline uint64_t pud_subpage_pte(uint64_t pud, int64_t vpn) noexcept nogil:
    """The PTE-shaped view of page vpn & (2^18 - 1) of a PUD leaf: its pfn, the PUD's bits."""
    return (pud & ~(<uint64_t>_PAGE_PSE)) + ((<uint64_t>(vpn & HPAGE_PUD_MASK)) << PTE_PFN_SHIFT)

cdef inline uint64_t *entry_table(uint64_t entry) noexcept nogil:
    """The next-level table an upper entry points to (pmd_page_vaddr)."""
    return <uint64_t *><uintptr_t>(entry & ~(<uint64_t>(TABLE_ALIGN - 1)))

# Every table carries a bitmap of its non-none entries just before entry 0 (a
# software stand-in for the kernel scanning 512 entries): walks visit only used
# entries, so fork and exit of a sparse space cost what is mapped.

cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil

cdef inline uint64_t *table_used(uint64_t *table) noexcept nogil:
    return table - TABLE_HDR_WORDS

cdef inline void table_set(uint64_t *table, int64_t i, uint64_t entry) noexcept nogil:
    """Store a non-none entry at index i (set_pte_at / pmd_populate)."""
    table[i] = entry
    table_used(table)[i >> 6] |= (<uint64_t>1) << (i & 63)

cdef inline void table_clear(uint64_t *table, int64_t i) noexcept nogil:
    """Make entry i none (pte_clear / pmd_clear)."""
    table[i] = 0
    table_used(table)[i >> 6] &= ~((<uint64_t>1) << (i & 63))

cdef inline bint table_empty(uint64_t *table) noexcept nogil:
    cdef uint64_t *u = table_used(table)
    return (u[0] | u[1] | u[2] | u[3] | u[4] | u[5] | u[6] | u[7]) == 0

cdef inline int64_t next_used(uint64_t *table, int64_t i, int64_t end) noexcept nogil:
    """The first index in [i, end) whose entry is not none, else end."""
    cdef uint64_t *used = table_used(table)
    cdef int64_t w, r
    cdef uint64_t bits
    if i >= end:
        return end
    w = i >> 6
    bits = used[w] & ((~(<uint64_t>0)) << (i & 63))
    while True:
        if bits != 0:
            r = (w << 6) + __builtin_ctzll(bits)
            return r if r < end else end
        w += 1
        if (w << 6) >= end:
            return end
        bits = used[w]

cdef inline uint64_t *pte_table_of(uint64_t *ptep, int64_t vpn) noexcept nogil:
    """The PTE table holding ptep, the slot of vpn."""
    return ptep - (vpn & TABLE_MASK)

cdef inline void set_pte_at(uint64_t *ptep, int64_t vpn, uint64_t pte) noexcept nogil:
    """Fill the none slot of vpn (set_pte_at)."""
    table_set(pte_table_of(ptep, vpn), vpn & TABLE_MASK, pte)

cdef inline int64_t level_index(int64_t vpn, int shift) noexcept nogil:
    return (vpn >> shift) & TABLE_MASK

cdef uint64_t *pte_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil
cdef uint64_t *pte_alloc_map(uint64_t *pgd, kmem_t *k, int64_t vpn) noexcept nogil
cdef uint64_t *pmd_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil
cdef uint64_t *pmd_alloc_map(uint64_t *pgd, kmem_t *k, int64_t vpn) noexcept nogil
cdef uint64_t *huge_pmd_at(uint64_t *pgd, int64_t vpn) noexcept nogil
cdef uint64_t *pud_offset_map(uint64_t *pgd, int64_t vpn) noexcept nogil
cdef uint64_t *pud_alloc_map(uint64_t *pgd, kmem_t *k, int64_t vpn) noexcept nogil
cdef uint64_t *huge_pud_at(uint64_t *pgd, int64_t vpn) noexcept nogil
cdef bint pmd_table_present(uint64_t *pgd, int64_t vpn) noexcept nogil
cdef int64_t pud_first_present(uint64_t *pgd, int64_t start, int64_t end) noexcept nogil
cdef int pmd_tables_copy(uint64_t *src, uint64_t *dst, kmem_t *k, int64_t start,
                         int64_t end) noexcept nogil
cdef int64_t walk_pte_runs(uint64_t *pgd, int64_t start, int64_t end,
                           pte_run_fn fn, void *ctx) noexcept nogil
cdef int64_t walk_page_range(uint64_t *pgd, int64_t start, int64_t end, pte_run_fn fn,
                             pmd_fn_t pmd_fn, void *ctx) noexcept nogil
cdef int64_t walk_page_range_pud(uint64_t *pgd, int64_t start, int64_t end, pte_run_fn fn,
                                 pmd_fn_t pmd_fn, pud_fn_t pud_fn, void *ctx) noexcept nogil
cdef void free_pgtables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil
cdef void free_pte_tables(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end) noexcept nogil
cdef void free_pgtables_if(uint64_t *pgd, kmem_t *k, int64_t start, int64_t end,
                           table_pred_fn pred, void *ctx) noexcept nogil
cdef void pgd_free_all(uint64_t *pgd, kmem_t *k) noexcept nogil
cdef int64_t pgtable_count(uint64_t *pgd) noexcept nogil
