# folio_split: splitting an anon THP into 512 order-0 folios (mm/huge_memory.c
# __folio_split with new_order 0: unmap_folio -> try_to_migrate, remap_page ->
# remove_migration_ptes with RMP_USE_SHARED_ZEROPAGE) and the `split_folio` op
# (debugfs split_huge_pages for one address). Rules: folio-split.md.

cdef inline bint folio_maybe_mapped_shared(mem_map_t *mem, uint32_t h) noexcept nogil:
    """folio_maybe_mapped_shared of the THP at head h (6.15+, CONFIG_MM_ID): false when
    the large mapcount is <= 1, else the MM-id "maybe mapped shared" bit."""
    return thp_large_mapcount(mem, h) > 1 and (pfn_folio(mem, h).flags & PG_mm_shared) != 0

cdef inline bint can_split_folio(mem_map_t *mem, uint32_t h) noexcept nogil:
    """can_split_folio(folio, caller_pins = 0) of an anon THP (never in the swap cache):
    folio_mapcount == folio_ref_count, so a pin (or any other reference) fails it."""
    return thp_large_mapcount(mem, h) == pfn_folio(mem, h).refcount

cdef int split_folio(machine_t *m, uint32_t h, int64_t base) noexcept nogil
cdef void sys_split_folio(machine_t *m, mm_t *mm, int64_t vpn, mm_res_t *r) noexcept nogil
