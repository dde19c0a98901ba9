# devmem: device memory buffer objects (TTM-like BOs, `file F N devmem`) mapped through
# VM_PFNMAP VMAs: pfn PTEs, special huge PMDs and special PUDs (vmf_insert_pfn /
# vmf_insert_pfn_pmd / vmf_insert_pfn_pud).
# Rules: devmem.md (the lead's decisions), device.md §3-§4, cow-thp.md §6.
#
# A BO is a shmem_t with devmem set: its radix tree holds raw page values (0 = none
# stored), no folios, no refcounts. A device pfn is DEV_PFN_BIT | (pgoff mod 2^31)
# (constants.pxi): special (_PAGE_SPECIAL) entries with that bit are pfn entries,
# pte_is_dev (pagetable.pxd); a special PMD is the same with _PAGE_PSE (pmd_trans_huge),
# a special PUD the same in the PUD table (pud_trans_huge; every BO starts 1 GiB aligned,
# a model choice: its pfn is 1 GiB aligned iff its pgoff is).
# The pgoff of an entry is always the linear index of its VMA (pfnmap VMAs never merge).

cdef inline uint32_t dev_pfn(int64_t pgoff) noexcept nogil:
    return DEV_PFN_BIT | <uint32_t>(pgoff & 0x7fffffff)

cdef uint64_t devmem_load(shmem_t *f, int64_t pgoff) noexcept nogil
cdef int devmem_store(machine_t *m, shmem_t *f, int64_t pgoff, uint64_t value) noexcept nogil
cdef int devmem_mmap_check(machine_t *m, int64_t flags, int32_t file, int64_t off,
                           int64_t npages) noexcept nogil
cdef int devmem_fault(machine_t *m, mm_t *mm, int32_t idx, int64_t vpn, int flags) noexcept nogil
cdef void devmem_zap_pmd(machine_t *m, mm_t *mm, uint64_t *pmdp, int64_t haddr) noexcept nogil
cdef void devmem_change_pmd(vma_t *v, uint64_t *pmdp) noexcept nogil
cdef void devmem_zap_pud(uint64_t *pudp, int64_t base) noexcept nogil
cdef void devmem_split_pud(machine_t *m, mm_t *mm, uint64_t *pudp, int64_t base) noexcept nogil
cdef uint64_t pud_state_code(uint64_t pud) noexcept nogil
cdef int64_t devmem_collect(shmem_t *f, int64_t *pgoffs, uint64_t *vals, int64_t cap) noexcept nogil
