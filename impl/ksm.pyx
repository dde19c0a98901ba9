# ksm: one ksmd pass (mm/ksm.c ksm_do_scan -> cmp_and_merge_page) and unmerge_ksm_pages.
#
# Rules (swap-ksm.md "KSM", REVISED):
# - the pass visits processes by pid, their VM_MERGEABLE VMAs by address, vpn ascending;
#   scanned pages are present anon pages that are neither the zero page nor KSM. The
#   kernel's checksum pass is skipped (a page merges in the pass that first sees it).
# - the stable tree (value -> a KSM frame mapped somewhere) is collected first, the
#   first KSM frame in (pid, vpn) order naming each value; a page whose value is in
#   it merges into that frame (write_protect_page, then replace_page).
# - else the first page of a value waits (unstable tree; even a pinned or locked one);
#   the same frame again (COW-shared) does nothing; a later page Q of another frame is
#   merged with the waiting page P (try_to_merge_two_pages): Q is write-protected (on
#   failure nothing more), becomes KSM in place, then P is write-protected and replaced
#   by Q (Q is now the stable frame of the value) or, when that fails, Q is broken
#   again (break_cow: an unshare fault) and P keeps waiting.
# - write_protect_page: a locked folio fails silently; else CLEAR over the page, then a
#   page with references beyond its mappings and the swap cache (a pin) fails; else the
#   entry is read-only and clean, AnonExclusive cleared. replace_page: CLEAR, the entry
#   maps the KSM frame read-only, clean, not soft-dirty; the old frame loses the mapping
#   as in a zap (free_swap_cache included).
# - result: the change of pages_sharing = sum over mapped KSM frames of (mapcount - 1).


ctypedef struct ksm_node_t:
    uint64_t value      # the page contents (the tree's key: memcmp_pages)
    int64_t vpn         # unstable: where the waiting page is mapped
    uint32_t pfn        # the waiting page / the stable KSM frame; 0: empty bucket
    int32_t proc        # unstable: the waiting page's process
    int32_t stable      # 1: pfn is the stable KSM frame of value

# Both trees in one open-addressing table keyed by value (a value is either stable or
# has at most one waiting page; a merge turns its node stable).
ctypedef struct ksm_tree_t:
    ksm_node_t *nodes
    int64_t cap         # a power of two
    int64_t n

ctypedef struct ksm_ctx_t:
    machine_t *m
    mm_t *mm
    int32_t idx         # the VMA being scanned
    int32_t collect     # 1: collecting the stable tree; 0: scanning (_ksm_run)
    ksm_tree_t tree


cdef inline ksm_node_t *_ksm_find(ksm_tree_t *t, uint64_t value) noexcept nogil:
    """The node of value, or the empty bucket where it would go (linear probing)."""
    cdef uint64_t mask = <uint64_t>(t.cap - 1)
    cdef uint64_t h = (value * <uint64_t>0x9E3779B97F4A7C15) >> 17
    cdef ksm_node_t *node
    while True:
        node = &t.nodes[h & mask]
        if node.pfn == 0 or node.value == value:
            return node
        h += 1


cdef int _ksm_tree_init(machine_t *m, ksm_tree_t *t, int64_t cap) noexcept nogil:
    t.nodes = <ksm_node_t *>kzalloc(&m.kmem, cap * sizeof(ksm_node_t))
    t.cap = cap
    t.n = 0
    return -1 if t.nodes == NULL else 0


cdef void _ksm_tree_free(machine_t *m, ksm_tree_t *t) noexcept nogil:
    kfree(&m.kmem, t.nodes, t.cap * sizeof(ksm_node_t))
    t.nodes = NULL
    t.cap = t.n = 0


cdef int _ksm_insert(machine_t *m, ksm_tree_t *t, uint64_t value, int32_t proc, int64_t vpn,
                     uint32_t pfn, int32_t stable) noexcept nogil:
    """Add a node for a value not in the table (pointers into it become stale)."""
    cdef ksm_tree_t big
    cdef ksm_node_t *node
    cdef int64_t j
    if 2 * (t.n + 1) > t.cap:                    # grow and rehash
        if _ksm_tree_init(m, &big, 2 * t.cap) < 0:
            return -1
        for j in range(t.cap):
            if t.nodes[j].pfn != 0:
                _ksm_find(&big, t.nodes[j].value)[0] = t.nodes[j]
        big.n = t.n
        _ksm_tree_free(m, t)
        t[0] = big
    node = _ksm_find(t, value)
    node.value = value
    node.proc = proc
    node.vpn = vpn
    node.pfn = pfn
    node.stable = stable
    t.n += 1
    return 0


cdef int64_t _pages_sharing(machine_t *m, int64_t *nr_ksm) noexcept nogil:
    """pages_sharing: sum over KSM frames mapped somewhere of (mapcount - 1); *nr_ksm =
    how many such frames (pages_shared)."""
    cdef uint32_t pfn
    cdef folio_t *f
    cdef int64_t sharing = 0
    nr_ksm[0] = 0
    for pfn in range(1, m.mem.nr_frames):
        f = pfn_folio(&m.mem, pfn)
        if (f.flags & PG_ksm_stable) and f.mapcount > 0:
            sharing += f.mapcount - 1
            nr_ksm[0] += 1
    return sharing


cdef bint write_protect_page(machine_t *m, mm_t *mm, int64_t vpn, uint64_t *ptep) noexcept nogil:
    """try_to_merge_one_page's folio_trylock + write_protect_page: True when the entry is
    now read-only, clean and not AnonExclusive."""
    cdef uint64_t pte = ptep[0]
    cdef folio_t *folio = pfn_folio(&m.mem, pte_pfn(pte))
    if folio_test_locked(folio):
        return False                             # folio_trylock fails: no event
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, vpn, vpn + 1, NO_OWNER)
    # folio_mapcount + 1 (ksmd's reference) + swapped != folio_ref_count: an O_DIRECT /
    # pin reference; a mutant skips the check and merges a pinned page
    if m.mutant != MUTANT_KSM_MERGES_PINNED_PAGE and \
            folio.mapcount + (1 if folio.flags & PG_swapcache else 0) != folio.refcount:
        return False
    folio.flags &= ~(<uint32_t>PG_anon_exclusive)    # folio_try_share_anon_rmap_pte
    ptep[0] = pte_wrprotect(pte) & ~(<uint64_t>_PAGE_DIRTY)   # pte_mkclean: soft-dirty stays
    return True


cdef void replace_page(machine_t *m, mm_t *mm, int64_t vpn, uint64_t *ptep,
                       uint32_t kpfn) noexcept nogil:
    """replace_page: the entry maps the KSM frame kpfn (mk_pte(kpage, vm_page_prot): read-
    only, clean, not soft-dirty); the old page loses this mapping as in a zap."""
    cdef uint32_t old = pte_pfn(ptep[0])
    cdef folio_t *folio = pfn_folio(&m.mem, old)
    cdef folio_t *kfolio = pfn_folio(&m.mem, kpfn)
    mmu_notifier_invalidate_range(m, mm, MMU_NOTIFY_CLEAR, vpn, vpn + 1, NO_OWNER)
    folio_get(kfolio)
    kfolio.mapcount += 1                         # folio_add_anon_rmap_pte
    ptep[0] = pfn_pte(kpfn, _PAGE_ACCESSED)
    folio.mapcount -= 1                          # folio_remove_rmap_pte
    if folio.flags & PG_swapcache:
        free_swap_cache(m, old, folio)           # !folio_mapped -> folio_free_swap
    folio_put(&m.mem, old, folio)


cdef void _cmp_and_merge_page(ksm_ctx_t *c, int64_t vpn, uint64_t *ptep, uint32_t pfn,
                              folio_t *folio) noexcept nogil:
    """cmp_and_merge_page for the scanned page at vpn (pfn, anon, not KSM)."""
    cdef machine_t *m = c.m
    cdef uint64_t value = folio.value
    cdef ksm_node_t *node = _ksm_find(&c.tree, value)
    cdef mm_t *wmm
    cdef uint64_t *wptep
    cdef uint32_t wpfn
    cdef int64_t wvpn
    if node.pfn != 0 and node.stable:            # stable_tree_search: merge into it
        if write_protect_page(m, c.mm, vpn, ptep):
            replace_page(m, c.mm, vpn, ptep, node.pfn)
        return
    if node.pfn == 0:                            # unstable_tree_search_insert: wait
        _ksm_insert(m, &c.tree, value, c.mm.pid, vpn, pfn, 0)
        return
    if node.pfn == pfn:
        return                                   # the waiting page is this very frame
    wmm = m.procs[node.proc]
    wvpn = node.vpn
    wpfn = node.pfn
    wptep = pte_offset_map(wmm.pgd, wvpn)        # get_mergeable_page: still mapped there?
    if wptep == NULL or not pte_present(wptep[0]) or pte_pfn(wptep[0]) != wpfn:
        return
    # try_to_merge_two_pages: this page (Q) becomes the KSM page in place ...
    if not write_protect_page(m, c.mm, vpn, ptep):
        return
    folio.flags |= PG_ksm                        # folio_set_stable_node
    # ... and the waiting page (P) is replaced by it, or Q is broken again
    if write_protect_page(m, wmm, wvpn, wptep):
        replace_page(m, wmm, wvpn, wptep, pfn)
        node.stable = 1                          # stable_tree_insert; P left the unstable tree
        node.pfn = pfn
        folio.flags |= PG_ksm_stable
    else:
        handle_mm_fault(m, c.mm, c.idx, vpn, FAULT_FLAG_UNSHARE)   # break_cow(Q)


cdef void _ksm_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    """Each present page of a PTE run: with c.collect, the stable tree (the first KSM frame
    with a stable node, in (pid, vpn) order, per value; a frame whose merge failed has
    none and attracts nothing); else cmp_and_merge_page for an anon page not yet KSM."""
    cdef ksm_ctx_t *c = <ksm_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end)
    cdef uint64_t pte
    cdef uint32_t pfn
    cdef folio_t *folio
    while i < end and not m.kmem.oom:
        pte = table[i]
        if pte_present(pte) and not pte_special(pte):
            pfn = pte_pfn(pte)
            folio = pfn_folio(&m.mem, pfn)
            if c.collect:
                if (folio.flags & PG_ksm_stable) and _ksm_find(&c.tree, folio.value).pfn == 0:
                    _ksm_insert(m, &c.tree, folio.value, -1, -1, pfn, 1)
            elif (folio.flags & (PG_anon | PG_ksm | PG_head | PG_tail)) == PG_anon:
                # (THP subpages are never scanned: thp.md approximation)
                _cmp_and_merge_page(c, vpn - first + i, &table[i], pfn, folio)
        i = next_used(table, i + 1, end)


cdef void sys_ksm_scan(machine_t *m, mm_res_t *r) noexcept nogil:
    """`ksm_scan`: one full pass; the result is the change of pages_sharing."""
    cdef ksm_ctx_t c
    cdef int64_t before, after, nr_ksm
    cdef int32_t k, i
    cdef mm_t *mm
    before = _pages_sharing(m, &nr_ksm)
    if _ksm_tree_init(m, &c.tree, 64) < 0:
        return
    c.m = m
    c.collect = 1
    if nr_ksm > 0:
        for k in range(m.nr_procs):
            if m.procs[k].alive:
                walk_pte_runs(m.procs[k].pgd, 0, TASK_SIZE_PAGES, _ksm_run, &c)
    c.collect = 0
    for k in range(m.nr_procs):
        mm = m.procs[k]
        if not mm.alive:
            continue
        c.mm = mm
        for i in range(mm.nr_vmas):              # the scan never changes the VMA list
            if m.kmem.oom:
                break
            if mm.vmas[i].madv & VM_MERGEABLE:
                c.idx = i
                walk_pte_runs(mm.pgd, mm.vmas[i].start, mm.vmas[i].end, _ksm_run, &c)
    _ksm_tree_free(m, &c.tree)
    if m.kmem.oom:
        return
    after = _pages_sharing(m, &nr_ksm)
    res_set(r, RES_VALUE, <uint64_t>(after - before))


ctypedef struct _unmerge_ctx_t:
    machine_t *m
    mm_t *mm
    int32_t idx


cdef void _break_ksm_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef _unmerge_ctx_t *c = <_unmerge_ctx_t *>ctx
    cdef machine_t *m = c.m
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end)
    cdef uint64_t pte
    while i < end and not m.kmem.oom:
        pte = table[i]
        if pte_present(pte) and not pte_special(pte) \
                and (pfn_folio(&m.mem, pte_pfn(pte)).flags & PG_ksm):
            handle_mm_fault(m, c.mm, c.idx, vpn - first + i, FAULT_FLAG_UNSHARE)
        i = next_used(table, i + 1, end)


cdef void break_ksm(machine_t *m, mm_t *mm, int32_t idx, int64_t start,
                    int64_t end) noexcept nogil:
    """unmerge_ksm_pages over [start, end) of VMA idx: an UNSHARE fault on every KSM page
    mapped there (break_ksm: a private exclusive copy, read-only and clean)."""
    cdef _unmerge_ctx_t c
    c.m = m
    c.mm = mm
    c.idx = idx
    walk_pte_runs(mm.pgd, start, end, _break_ksm_run, &c)
