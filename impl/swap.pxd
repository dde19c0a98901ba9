# swap: the one swap device (zram-like, SWP_SYNCHRONOUS_IO), its slots (swap_map) and
# the swap cache (mm/swapfile.c, mm/swap_state.c).
#
# A slot holds the contents written out, the count of entries referencing it (swap
# PTEs and swapped shmem pages) and optionally the pfn of the folio the swap cache
# holds for it (the cache owns one reference; the folio has PG_swapcache). A slot is
# free when count == 0 and nothing is cached. Slot 0 is the header page: never used,
# so a swap entry is never 0.

ctypedef struct swap_slot_t:
    uint64_t value      # the page contents written out; a free slot: the next free slot
    int32_t count       # swap_map: references (swap PTEs + shmem swapped pages); -1: free
    uint32_t cache      # pfn of the swap-cache folio (SWAP_HAS_CACHE), 0 for none

ctypedef struct swap_info_t:
    swap_slot_t *slots  # slots[0] is the header (count -1, never on the free list)
    int32_t nr_slots    # slots handed out so far (high watermark), the header included
    int32_t cap_slots
    uint32_t free_head  # first free slot, 0 when the list is empty
    int64_t nr_free     # slots on the free list
    int64_t nr_cached   # folios in the swap cache (a zap skips the check at 0)
    uint32_t *cache_of  # per pfn: the slot whose swap cache holds the folio (folio->swap);
    int64_t cap_cache_of    # meaningful only with PG_swapcache; allocated on first use

cdef void swap_info_init(swap_info_t *si) noexcept nogil
cdef void swap_info_destroy(swap_info_t *si, kmem_t *k) noexcept nogil
cdef uint32_t swap_alloc(machine_t *m, uint64_t value) noexcept nogil
cdef void swap_slot_release(machine_t *m, uint32_t s) noexcept nogil
cdef int swap_cache_add(machine_t *m, uint32_t s, uint32_t pfn) noexcept nogil
cdef void swap_cache_del(machine_t *m, uint32_t pfn) noexcept nogil
cdef bint folio_free_swap(machine_t *m, uint32_t pfn) noexcept nogil
cdef void free_swap_cache(machine_t *m, uint32_t pfn, folio_t *folio) noexcept nogil
cdef void free_swap_and_cache(machine_t *m, uint32_t s) noexcept nogil

cdef inline swap_slot_t *swap_slot(swap_info_t *si, uint32_t s) noexcept nogil:
    return &si.slots[s]

cdef inline uint32_t folio_swap_slot(swap_info_t *si, uint32_t pfn) noexcept nogil:
    """The slot whose swap cache holds the folio (folio->swap); only with PG_swapcache."""
    return si.cache_of[pfn]
