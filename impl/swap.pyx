# swap: slot allocation (get_swap_pages / swap_free), the swap cache
# (add_to_swap_cache / delete_from_swap_cache) and the release paths of a zap
# (free_swap_cache, free_swap_and_cache).
#
# Rules (swap-ksm.md "Swap slots", "Other rules for swap entries"):
# - a slot is freed when no entry references it (count 0) and nothing is cached;
# - the swap cache holds one folio reference; folio_free_swap drops the folio from
#   the cache only when no swap entry still needs the slot (count 0);
# - the last PTE of a swap-cache folio zapped (free_swap_cache), or the last swap
#   entry of a slot zapped (free_swap_and_cache): an unmapped, unlocked cache folio of a
#   slot nothing references leaves the cache (and is freed with its last reference).


cdef void swap_info_init(swap_info_t *si) noexcept nogil:
    si.slots = NULL
    si.nr_slots = 0
    si.cap_slots = 0
    si.free_head = 0
    si.nr_free = 0
    si.nr_cached = 0
    si.cache_of = NULL
    si.cap_cache_of = 0


cdef void swap_info_destroy(swap_info_t *si, kmem_t *k) noexcept nogil:
    kfree(k, si.slots, si.cap_slots * sizeof(swap_slot_t))
    kfree(k, si.cache_of, si.cap_cache_of * sizeof(uint32_t))
    swap_info_init(si)


cdef uint32_t swap_alloc(machine_t *m, uint64_t value) noexcept nogil:
    """A free slot holding value, count 0, nothing cached (folio_alloc_swap + the write
    to the device). Return: the slot, or 0 (the header, never handed out) on OOM."""
    cdef swap_info_t *si = &m.swap
    cdef uint32_t s
    if si.free_head != 0:
        s = si.free_head
        si.free_head = <uint32_t>si.slots[s].value
        si.nr_free -= 1
    else:
        if si.nr_slots == 0x7fffffff:
            m.kmem.oom = 1
            return 0
        while si.nr_slots + 1 > si.cap_slots:
            if kgrow(&m.kmem, <void **>&si.slots, &si.cap_slots, sizeof(swap_slot_t), 64) < 0:
                return 0
        if si.nr_slots == 0:                     # swapon: slot 0 is the header page
            si.slots[0].count = -1
            si.nr_slots = 1
        s = <uint32_t>si.nr_slots
        si.nr_slots += 1
    si.slots[s].value = value
    si.slots[s].count = 0
    si.slots[s].cache = 0
    return s


cdef void swap_slot_release(machine_t *m, uint32_t s) noexcept nogil:
    """Free slot s if nothing references or caches it any more (swap_entries_free)."""
    cdef swap_info_t *si = &m.swap
    cdef swap_slot_t *slot = &si.slots[s]
    if slot.count != 0 or slot.cache != 0:
        return
    slot.count = -1
    slot.value = si.free_head
    si.free_head = s
    si.nr_free += 1


cdef int swap_cache_add(machine_t *m, uint32_t s, uint32_t pfn) noexcept nogil:
    """add_to_swap_cache: folio pfn caches slot s; the cache takes a reference.
    Return: 0, or -1 on OOM."""
    cdef swap_info_t *si = &m.swap
    cdef int64_t cap
    cdef uint32_t *p
    cdef folio_t *folio = pfn_folio(&m.mem, pfn)
    if pfn >= si.cap_cache_of:                   # grow the per-pfn back links
        cap = max(<int64_t>m.mem.nr_frames, 2 * si.cap_cache_of)
        p = <uint32_t *>krealloc_zero(&m.kmem, si.cache_of, si.cap_cache_of * sizeof(uint32_t),
                                      cap * sizeof(uint32_t))
        if p == NULL:
            return -1
        si.cache_of = p
        si.cap_cache_of = cap
    si.cache_of[pfn] = s
    si.slots[s].cache = pfn
    si.nr_cached += 1
    folio.flags |= PG_swapcache
    folio_get(folio)
    return 0


cdef void swap_cache_del(machine_t *m, uint32_t pfn) noexcept nogil:
    """delete_from_swap_cache + put_swap_folio: the cache drops its reference (the folio
    is freed at zero) and the slot is freed if no entry references it."""
    cdef folio_t *folio = pfn_folio(&m.mem, pfn)
    cdef uint32_t s = folio_swap_slot(&m.swap, pfn)
    m.swap.slots[s].cache = 0
    m.swap.nr_cached -= 1
    folio.flags &= ~(<uint32_t>PG_swapcache)
    folio_put(&m.mem, pfn, folio)
    swap_slot_release(m, s)


cdef bint folio_free_swap(machine_t *m, uint32_t pfn) noexcept nogil:
    """folio_free_swap: leave the swap cache unless a swap entry still needs the slot
    (folio_swapped). Return: True when it left."""
    if not (pfn_folio(&m.mem, pfn).flags & PG_swapcache):
        return False
    if m.swap.slots[folio_swap_slot(&m.swap, pfn)].count > 0:
        return False
    swap_cache_del(m, pfn)
    return True


cdef void free_swap_cache(machine_t *m, uint32_t pfn, folio_t *folio) noexcept nogil:
    """free_swap_cache (a present entry was zapped): an unmapped swap-cache folio whose
    trylock succeeds leaves the cache if no swap entry needs it (folio_free_swap)."""
    if (folio.flags & PG_swapcache) and folio.mapcount == 0 and not folio_test_locked(folio):
        folio_free_swap(m, pfn)


cdef void free_swap_and_cache(machine_t *m, uint32_t s) noexcept nogil:
    """free_swap_and_cache (a swap entry was zapped): drop its reference; at zero an
    unmapped, unlocked cache folio is reclaimed (__try_to_reclaim_swap, TTRS_UNMAPPED)
    and the slot freed."""
    cdef swap_slot_t *slot = &m.swap.slots[s]
    cdef folio_t *folio
    slot.count -= 1
    if slot.count == 0 and slot.cache != 0:
        folio = pfn_folio(&m.mem, slot.cache)
        if folio.mapcount == 0 and not folio_test_locked(folio):
            swap_cache_del(m, slot.cache)        # frees the slot too
            return
    swap_slot_release(m, s)
