# thp: anonymous transparent huge pages at PMD level (mm/huge_memory.c, mm/khugepaged.c).
# A huge PMD is one leaf in the PMD table (pmd_trans_huge, pagetable.pxd) mapping a THP
# (folio.pxd) or the huge zero folio. Rules: thp.md (the lead's decisions).

cdef inline int32_t mm_id_of(mm_t *mm) noexcept nogil:
    return mm.mm_id

cdef inline void pmd_set(uint64_t *pmdp, int64_t haddr, uint64_t pmd) noexcept nogil:
    """Install a huge leaf (or table pointer) in the none slot pmdp of block haddr."""
    table_set(pmdp - level_index(haddr, PMD_SHIFT), level_index(haddr, PMD_SHIFT), pmd)

cdef inline void pmd_clear(uint64_t *pmdp, int64_t haddr) noexcept nogil:
    table_clear(pmdp - level_index(haddr, PMD_SHIFT), level_index(haddr, PMD_SHIFT))

cdef inline bint is_huge_zero_pmd(mem_map_t *mem, uint64_t pmd) noexcept nogil:
    return is_hzero_pfn(mem, pte_pfn(pmd))

cdef inline uint64_t pte_lookup(uint64_t *pgd, int64_t vpn) noexcept nogil:
    """The entry mapping vpn seen as a PTE: the PTE, or the PTE-shaped view of a huge
    PMD's subpage (pmd_subpage_pte) or of a PUD leaf's page (pud_subpage_pte); 0 for none."""
    cdef uint64_t *pudp = pud_offset_map(pgd, vpn)
    cdef uint64_t *pmdp
    if pudp == NULL or pudp[0] == 0:
        return 0
    if pud_trans_huge(pudp[0]):
        return pud_subpage_pte(pudp[0], vpn)
    pmdp = entry_table(pudp[0]) + level_index(vpn, PMD_SHIFT)
    if pmdp[0] == 0:
        return 0
    if pmd_trans_huge(pmdp[0]):
        return pmd_subpage_pte(pmdp[0], vpn)
    return entry_table(pmdp[0])[vpn & TABLE_MASK]

cdef bint thp_vma_allowable(machine_t *m, vma_t *v, int64_t vpn) noexcept nogil
cdef void split_huge_pmd(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t haddr) noexcept nogil
cdef void split_huge_pmd_address(machine_t *m, mm_t *mm, int64_t vpn) noexcept nogil
cdef void zap_huge_pmd(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t haddr) noexcept nogil
cdef int do_huge_pmd_anonymous_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                                    int flags) noexcept nogil
cdef int do_huge_pmd_wp_page(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn,
                             uint64_t *pmdp, int flags) noexcept nogil
cdef void change_huge_pmd(machine_t *m, vma_t *v, uint64_t *pmdp) noexcept nogil
cdef uint64_t pmd_state_code(machine_t *m, uint64_t pmd) noexcept nogil
cdef void sys_split(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil
cdef void sys_set(machine_t *m, int64_t key, int64_t value, mm_res_t *r) noexcept nogil
cdef int madvise_collapse(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                          int64_t end) noexcept nogil
