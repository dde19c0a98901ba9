# shmem: page-cache lookup/insert (xa_load/xa_store), shmem_get_folio (with swap-in),
# reclaim of a page (shmem_writeout), eviction.
#
# Rules (swap-ksm.md): a swapped page is swapped in by any access to that file page
# (fault, read(2), write(2)) as a new DIRTY page-cache folio, and its slot is freed;
# fault-around maps resident pages only (xa_load). Reclaim of a dirty page puts it
# in a new slot (count 1); a clean one (never stored to) is just dropped: a hole again.

cdef enum:
    XA_CHUNK_SHIFT = 9
    XA_MAX_SHIFT = 54            # 7 levels: indexes below 2^63


cdef uint32_t xa_load(shmem_t *f, int64_t index) noexcept nogil:
    """The pfn of the page resident at index, 0 for a hole or a swapped page."""
    cdef uint64_t e = xa_load_entry(f, index)
    return 0 if xa_is_swap(e) else <uint32_t>e


cdef uint64_t xa_load_entry(shmem_t *f, int64_t index) noexcept nogil:
    """The entry at index: a pfn, a swap value entry (xa_is_swap), 0 for a hole."""
    cdef uint64_t *node = f.xa_head
    cdef int shift = f.xa_shift
    cdef uint64_t slot
    if node == NULL or (index >> shift) >= PTRS_PER_TABLE:
        return 0
    while shift > 0:
        slot = node[(index >> shift) & TABLE_MASK]
        if slot == 0:
            return 0
        node = <uint64_t *><uintptr_t>slot
        shift -= XA_CHUNK_SHIFT
    return node[index & TABLE_MASK]


cdef int xa_store(shmem_t *f, kmem_t *k, int64_t index, uint64_t entry) noexcept nogil:
    """Store entry at index, growing the tree upwards and downwards as needed (0 erases;
    the nodes stay); -1 on OOM."""
    cdef uint64_t *node
    cdef uint64_t *child
    cdef int shift
    if f.xa_head == NULL:
        f.xa_head = <uint64_t *>kzalloc(k, TABLE_BYTES)
        if f.xa_head == NULL:
            return -1
        f.xa_shift = 0
    while (index >> f.xa_shift) >= PTRS_PER_TABLE:      # xas_expand: new root above
        node = <uint64_t *>kzalloc(k, TABLE_BYTES)
        if node == NULL:
            return -1
        node[0] = <uint64_t><uintptr_t>f.xa_head
        f.xa_head = node
        f.xa_shift += XA_CHUNK_SHIFT
    node = f.xa_head
    shift = f.xa_shift
    while shift > 0:
        if node[(index >> shift) & TABLE_MASK] == 0:
            child = <uint64_t *>kzalloc(k, TABLE_BYTES)
            if child == NULL:
                return -1
            node[(index >> shift) & TABLE_MASK] = <uint64_t><uintptr_t>child
        node = <uint64_t *><uintptr_t>node[(index >> shift) & TABLE_MASK]
        shift -= XA_CHUNK_SHIFT
    node[index & TABLE_MASK] = entry
    return 0


cdef uint32_t shmem_get_folio(machine_t *m, shmem_t *f, int64_t pgoff) noexcept nogil:
    """The page-cache page at pgoff, allocated zero-filled (clean) for a hole
    (shmem_get_folio with SGP_CACHE), or swapped in (dirty, its slot freed:
    shmem_swapin_folio) for a swapped page. The cache holds one reference
    (PG_pagecache). 0 on OOM."""
    cdef uint64_t e = xa_load_entry(f, pgoff)
    cdef uint32_t pfn, s = 0
    cdef swap_slot_t *slot
    if e != 0 and not xa_is_swap(e):
        return <uint32_t>e
    if e != 0:
        s = <uint32_t>e
        slot = swap_slot(&m.swap, s)
        pfn = folio_alloc(&m.mem, &m.kmem, PG_pagecache | PG_dirty, slot.value)
    else:
        pfn = folio_alloc(&m.mem, &m.kmem, PG_pagecache, 0)
    if pfn == 0:
        return 0
    if xa_store(f, &m.kmem, pgoff, pfn) < 0:
        folio_free(&m.mem, pfn)
        return 0
    f.nr_pages += 1
    if s != 0:
        f.nr_swapped -= 1
        slot.count -= 1                          # swap_free: the slot goes with it
        swap_slot_release(m, s)
    return pfn


cdef void shmem_reclaim(machine_t *m, shmem_t *f, int64_t pgoff, uint32_t pfn,
                        bint dirty) noexcept nogil:
    """Reclaim the unmapped page-cache page pfn at pgoff (shrink_folio_list): dirty ->
    shmem_writeout to a new slot (count 1); clean -> dropped (__remove_mapping), the file
    page is a hole again. The cache's reference goes (the page is freed)."""
    cdef folio_t *folio = pfn_folio(&m.mem, pfn)
    cdef uint32_t s = 0
    if dirty:
        s = swap_alloc(m, folio.value)
        if s == 0:
            return                               # kmem.oom is set
        m.swap.slots[s].count = 1
        f.nr_swapped += 1
    xa_store(f, &m.kmem, pgoff, xa_mk_swap(s) if s != 0 else 0)   # the slot exists
    f.nr_pages -= 1
    folio.flags &= ~(<uint32_t>PG_pagecache)
    folio_put(&m.mem, pfn, folio)


cdef void _xa_destroy(machine_t *m, uint64_t *node, int shift, bint raw) noexcept nogil:
    """Drop the cache reference of every page below node (and the slot reference of
    every swapped page: shmem_free_swap) and free the nodes; raw (a devmem BO's page
    values): only free the nodes."""
    cdef int i
    cdef uint32_t pfn
    cdef folio_t *folio
    for i in range(PTRS_PER_TABLE):
        if node[i] == 0:
            continue
        if shift > 0:
            _xa_destroy(m, <uint64_t *><uintptr_t>node[i], shift - XA_CHUNK_SHIFT, raw)
        elif raw:
            continue
        elif xa_is_swap(node[i]):
            free_swap_and_cache(m, <uint32_t>node[i])
        else:
            pfn = <uint32_t>node[i]
            folio = pfn_folio(&m.mem, pfn)
            folio.flags &= ~(<uint32_t>PG_pagecache)
            folio_put(&m.mem, pfn, folio)        # delete_from_page_cache
    kfree(&m.kmem, node, TABLE_BYTES)


cdef void shmem_evict_inode(machine_t *m, shmem_t *f) noexcept nogil:
    """Release the whole page cache (shmem_evict_inode: the last user went away)."""
    if f.xa_head != NULL:
        _xa_destroy(m, f.xa_head, f.xa_shift, f.devmem)
    f.xa_head = NULL
    f.xa_shift = 0
    f.nr_pages = 0
    f.nr_swapped = 0
    f.nr_vals = 0
    f.live = 0


cdef int64_t _xa_collect(uint64_t *node, int shift, int64_t base,
                         cache_page_t *out, int64_t n, int64_t cap) noexcept nogil:
    cdef int i
    for i in range(PTRS_PER_TABLE):
        if node[i] == 0:
            continue
        if shift > 0:
            n = _xa_collect(<uint64_t *><uintptr_t>node[i], shift - XA_CHUNK_SHIFT,
                            base + ((<int64_t>i) << shift), out, n, cap)
        elif n < cap:
            out[n].pgoff = base + i
            if xa_is_swap(node[i]):
                out[n].pfn = 0
                out[n].slot = <uint32_t>node[i]
            else:
                out[n].pfn = <uint32_t>node[i]
                out[n].slot = 0
            n += 1
    return n


cdef int64_t shmem_collect(shmem_t *f, cache_page_t *out, int64_t cap) noexcept nogil:
    """Write up to cap pages (resident and swapped: nr_pages + nr_swapped of them) into
    out in pgoff order; return how many."""
    if f.xa_head == NULL:
        return 0
    return _xa_collect(f.xa_head, f.xa_shift, 0, out, 0, cap)
