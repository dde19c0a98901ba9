# invariants: one pass over every page table and page cache, then over the frames.
from libc.stdlib cimport calloc, free


ctypedef struct inv_ctx_t:
    machine_t *m
    mm_t *mm
    int32_t proc
    int32_t *maps            # per pfn: PTEs found mapping it
    int32_t *srefs           # per slot: swap entries (and swapped file pages) naming it
    int32_t *pmds            # per THP head pfn: huge PMDs mapping it
    inv_report_t *rep


cdef inline void _fail(inv_report_t *rep, int32_t code, int32_t proc, int64_t vpn,
                       int64_t pfn, int64_t expected, int64_t got) noexcept nogil:
    if rep.code == INV_OK:                       # keep the first violation
        rep.code = code
        rep.proc = proc
        rep.vpn = vpn
        rep.pfn = pfn
        rep.expected = expected
        rep.got = got


cdef void _check_pte_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    cdef inv_ctx_t *c = <inv_ctx_t *>ctx
    cdef uint64_t *used = table_used(pte_table_of(ptep, vpn))
    cdef int64_t i, slot
    cdef int32_t idx
    cdef uint64_t pte
    cdef uint32_t pfn
    cdef folio_t *folio
    for i in range(n):
        pte = ptep[i]
        slot = (vpn + i) & TABLE_MASK
        # the used bitmap says exactly which entries are not none
        if (pte != 0) != ((used[slot >> 6] >> (slot & 63)) & 1):
            _fail(c.rep, INV_TABLE_BITMAP, c.proc, vpn + i, -1, pte != 0, <int64_t>used[slot >> 6])
        if pte == 0:
            continue
        # no entry outside a VMA
        idx = find_vma(c.mm, vpn + i)
        if idx < 0:
            _fail(c.rep, INV_OUTSIDE_VMA, c.proc, vpn + i, pte_pfn(pte), 0, 0)
            continue
        # pfn entries only in pfnmap VMAs, each the device pfn of its linear pgoff;
        # pfnmap VMAs hold no other kind (devmem.md "Invariants"); no counts
        if c.mm.vmas[idx].pfnmap or pte_is_dev(pte):
            if not c.mm.vmas[idx].pfnmap or not pte_is_dev(pte) or (pte & _PAGE_PSE) \
                    or pte_pfn(pte) != dev_pfn(linear_page_index(&c.mm.vmas[idx], vpn + i)):
                _fail(c.rep, INV_PFNMAP, c.proc, vpn + i, pte_pfn(pte),
                      c.mm.vmas[idx].pfnmap, <int64_t>pte)
            continue
        if is_swap_pte(pte):
            _check_swap_pte(c, vpn + i, pte)
            continue
        pfn = pte_pfn(pte)
        # the zero page is never writable and is the only special entry
        if pte_special(pte):
            if pfn != 0 or pte_write(pte):
                _fail(c.rep, INV_ZERO_WRITABLE, c.proc, vpn + i, pfn, 0, <int64_t>pte)
            continue
        if pfn == 0 or pfn >= c.m.mem.nr_frames or is_hzero_pfn(&c.m.mem, pfn):
            _fail(c.rep, INV_FREE_MAPPED, c.proc, vpn + i, pfn, 0, <int64_t>pte)
            continue
        folio = pfn_folio(&c.m.mem, pfn)
        if folio.flags & PG_free:
            _fail(c.rep, INV_FREE_MAPPED, c.proc, vpn + i, pfn, 0, folio.flags)
            continue
        if not pte_present(pte):
            # the only non-present entry is device-exclusive, over an AnonExclusive anon
            # page (make_device_exclusive: anon only; fork restores before sharing)
            if not is_device_exclusive_entry(pte) or (folio.flags & (PG_anon | PG_anon_exclusive)) \
                    != (PG_anon | PG_anon_exclusive):
                _fail(c.rep, INV_DX_PAGE, c.proc, vpn + i, pfn, <int64_t>pte, folio.flags)
        # I1: writable anon => AnonExclusive (never a KSM page)
        elif pte_write(pte) and (folio.flags & PG_anon) and not (folio.flags & PG_anon_exclusive):
            _fail(c.rep, INV_I1, c.proc, vpn + i, pfn, PG_anon_exclusive, folio.flags)
        c.maps[pfn] += 1                         # a DX entry counts as a mapping (6.15+)


cdef void _check_pmd(void *ctx, uint64_t *pmdp, int64_t haddr, int64_t lo,
                     int64_t hi) noexcept nogil:
    """A huge PMD: inside one private anon VMA (the whole block), mapping a THP head or
    the huge zero folio (read-only); I1 for a writable THP PMD (AnonExclusive head)."""
    cdef inv_ctx_t *c = <inv_ctx_t *>ctx
    cdef uint64_t pmd = pmdp[0]
    cdef uint32_t pfn = pte_pfn(pmd)
    cdef int32_t idx = find_vma(c.mm, haddr)
    cdef folio_t *head
    if pte_is_dev(pmd) or (idx >= 0 and c.mm.vmas[idx].pfnmap):
        # a special PMD: in a pfnmap VMA, the whole block inside it, pgoff(haddr) 2 MiB
        # aligned, the device pfn of that pgoff (no PTE table beside it: one PMD slot)
        if idx < 0 or not c.mm.vmas[idx].pfnmap or not pte_is_dev(pmd) \
                or c.mm.vmas[idx].start > haddr or c.mm.vmas[idx].end < haddr + HPAGE_PMD_NR \
                or (linear_page_index(&c.mm.vmas[idx], haddr) & HPAGE_PMD_MASK) \
                or pfn != dev_pfn(linear_page_index(&c.mm.vmas[idx], haddr)):
            _fail(c.rep, INV_PFNMAP, c.proc, haddr, pfn, idx, <int64_t>pmd)
        return
    if idx < 0 or c.mm.vmas[idx].end < haddr + HPAGE_PMD_NR \
            or not vma_is_anon_private(&c.mm.vmas[idx]) or c.mm.vmas[idx].shared:
        _fail(c.rep, INV_THP_PMD, c.proc, haddr, pfn, 0, <int64_t>pmd)
        return
    if is_hzero_pfn(&c.m.mem, pfn):
        if pfn != c.m.mem.hzero_pfn or pte_write(pmd):
            _fail(c.rep, INV_THP_PMD, c.proc, haddr, pfn, c.m.mem.hzero_pfn, <int64_t>pmd)
        return
    if (pfn & HPAGE_PMD_MASK) or pfn >= c.m.mem.nr_frames:
        _fail(c.rep, INV_THP_PMD, c.proc, haddr, pfn, 0, <int64_t>pmd)
        return
    head = pfn_folio(&c.m.mem, pfn)
    if (head.flags & (PG_head | PG_free | PG_anon)) != (PG_head | PG_anon):
        _fail(c.rep, INV_THP_PMD, c.proc, haddr, pfn, PG_head | PG_anon, head.flags)
        return
    if pte_write(pmd) and not (head.flags & PG_anon_exclusive):
        _fail(c.rep, INV_I1, c.proc, haddr, pfn, PG_anon_exclusive, head.flags)
    c.pmds[pfn] += 1


cdef void _check_pud(void *ctx, uint64_t *pudp, int64_t base, int64_t lo,
                     int64_t hi) noexcept nogil:
    """A PUD leaf (pud.md "Invariants"): a special device entry whose slot lies wholly in
    pfnmap VMAs of one BO (a VMA split may leave it across two: no hole, one linear
    pgoff), that pgoff 1 GiB aligned and the device pfn of it (2^18 consecutive BO
    pages); no PMD table beside it (one PUD slot: by construction)."""
    cdef inv_ctx_t *c = <inv_ctx_t *>ctx
    cdef uint64_t pud = pudp[0]
    cdef int32_t i = find_vma_from(c.mm, base)
    cdef int64_t cur = base, pgoff = -1
    cdef int32_t file = -1
    cdef bint bad = not pte_is_dev(pud)
    while not bad and cur < base + HPAGE_PUD_NR:
        if i >= c.mm.nr_vmas or c.mm.vmas[i].start > cur or not c.mm.vmas[i].pfnmap:
            bad = True                           # a hole, or a VMA that is not pfnmap
            break
        if pgoff < 0:
            pgoff = linear_page_index(&c.mm.vmas[i], base)
            file = c.mm.vmas[i].file
        elif c.mm.vmas[i].file != file or linear_page_index(&c.mm.vmas[i], base) != pgoff:
            bad = True
            break
        cur = c.mm.vmas[i].end
        i += 1
    if bad or (pgoff & HPAGE_PUD_MASK) or pte_pfn(pud) != dev_pfn(pgoff) \
            or pgoff + HPAGE_PUD_NR > c.m.files[file].size:
        _fail(c.rep, INV_PFNMAP, c.proc, base, pte_pfn(pud), pgoff, <int64_t>pud)


cdef void _check_thp(machine_t *m, uint32_t h, inv_ctx_t *c, int32_t *pinned,
                     inv_report_t *rep) noexcept nogil:
    """The THP at head h: tails, per-subpage mapcounts and I2, pins (folio-wide pincount,
    I3), refcount == entire + PTE mapcounts + pins, MM-id total == large mapcount."""
    cdef folio_t *head = pfn_folio(&m.mem, h)
    cdef folio_t *sub
    cdef int32_t entire = thp_entire(&m.mem, h)[0]
    cdef int64_t maps = 0, pins = 0
    cdef int32_t i
    cdef bint ae
    if entire != c.pmds[h]:
        _fail(rep, INV_THP_COUNTS, -1, -1, h, c.pmds[h], entire)
    for i in range(HPAGE_PMD_NR):
        sub = pfn_folio(&m.mem, h + i)
        if i > 0 and (sub.flags & (PG_tail | PG_head | PG_free)) != PG_tail:
            _fail(rep, INV_THP_COUNTS, -1, -1, h + i, PG_tail, sub.flags)
        if sub.mapcount != c.maps[h + i]:
            _fail(rep, INV_MAPCOUNT, -1, -1, h + i, c.maps[h + i], sub.mapcount)
        maps += c.maps[h + i]
        pins += pinned[h + i]
        ae = (sub.flags & PG_anon_exclusive) != 0
        # I2: an AnonExclusive page is mapped once (subpage 0 also by the PMDs)
        if ae and c.maps[h + i] + (entire if i == 0 else 0) > 1:
            _fail(rep, INV_I2, -1, -1, h + i, 1, c.maps[h + i])
        # I3: a pinned subpage is exclusive (PMD-mapped: the head's flag counts)
        # (a subpage not PTE-mapped was pinned through the PMD: the head's flag counts)
        if entire > 0 or c.maps[h + i] == 0:
            ae = ae or (head.flags & PG_anon_exclusive) != 0
        if pinned[h + i] and not ae:
            _fail(rep, INV_I3, -1, -1, h + i, PG_anon_exclusive, sub.flags)
    if head.pincount != pins:
        _fail(rep, INV_PINCOUNT, -1, -1, h, pins, head.pincount)
    if head.refcount != entire + maps + head.pincount:
        _fail(rep, INV_REFCOUNT, -1, -1, h, entire + maps + head.pincount, head.refcount)
    if thp_large_mapcount(&m.mem, h) != entire + maps:
        _fail(rep, INV_THP_MMID, -1, -1, h, entire + maps, thp_large_mapcount(&m.mem, h))
    if head.flags & (PG_ksm | PG_swapcache | PG_pagecache):
        _fail(rep, INV_THP_COUNTS, -1, -1, h, 0, head.flags)


cdef void _check_swap_pte(inv_ctx_t *c, int64_t vpn, uint64_t pte) noexcept nogil:
    """A swap entry names a slot in use; an exclusive marker means no other reference
    (the swap analogue of I2: fork clears it, a shared slot is never exclusive)."""
    cdef uint32_t s = swp_offset(pte)
    cdef swap_slot_t *slot
    if s == 0 or s >= <uint32_t>c.m.swap.nr_slots or c.m.swap.slots[s].count < 0:
        _fail(c.rep, INV_SWAP_ENTRY, c.proc, vpn, -1, s, <int64_t>pte)
        return
    c.srefs[s] += 1
    slot = &c.m.swap.slots[s]
    if pte_swp_exclusive(pte) and (slot.count != 1 or slot.cache != 0):
        _fail(c.rep, INV_SWP_EXCL, c.proc, vpn, slot.cache, 1, slot.count)


cdef void _count_cache(machine_t *m, int32_t *cached, int32_t *srefs,
                       inv_report_t *rep) noexcept nogil:
    """Page-cache references per pfn and swapped-page references per slot."""
    cdef int32_t i
    cdef int64_t n, j, total
    cdef cache_page_t *buf
    for i in range(m.nr_files):
        total = m.files[i].nr_pages + m.files[i].nr_swapped
        if total == 0:
            continue
        buf = <cache_page_t *>calloc(total, sizeof(cache_page_t))
        if buf == NULL:
            m.kmem.oom = 1
            return
        n = shmem_collect(m.files[i], buf, total)
        if n != total:
            _fail(rep, INV_PAGECACHE, -1, -1, -1, total, n)
        for j in range(n):
            if buf[j].pfn == 0:
                if buf[j].slot == 0 or buf[j].slot >= <uint32_t>m.swap.nr_slots \
                        or m.swap.slots[buf[j].slot].count < 0:
                    _fail(rep, INV_SWAP_ENTRY, -1, buf[j].pgoff, -1, buf[j].slot, i)
                else:
                    srefs[buf[j].slot] += 1
            else:
                cached[buf[j].pfn] += 1
        free(buf)


cdef void _check_swap(machine_t *m, int32_t *srefs, int32_t *swapcached,
                      inv_report_t *rep) noexcept nogil:
    """swap-ksm.md invariants of the slots: count == references; a slot nobody
    references and nothing caches is free; the swap-cache links agree both ways."""
    cdef swap_info_t *si = &m.swap
    cdef int64_t nfree = 0
    cdef uint32_t s, pfn
    cdef folio_t *folio
    for s in range(1, <uint32_t>si.nr_slots):
        if si.slots[s].count < 0:
            nfree += 1
            if si.slots[s].count != -1 or srefs[s] != 0 or si.slots[s].cache != 0:
                _fail(rep, INV_SWAP_FREE, -1, -1, si.slots[s].cache, srefs[s], si.slots[s].count)
            continue
        if si.slots[s].count != srefs[s]:
            _fail(rep, INV_SWAP_COUNT, -1, -1, si.slots[s].cache, srefs[s], si.slots[s].count)
        pfn = si.slots[s].cache
        if pfn == 0:
            if si.slots[s].count == 0:
                _fail(rep, INV_SWAP_FREE, -1, -1, 0, 1, 0)   # should have been freed
            continue
        if pfn >= m.mem.nr_frames:
            _fail(rep, INV_SWAP_CACHE, -1, -1, pfn, s, 0)
            continue
        folio = pfn_folio(&m.mem, pfn)
        if (folio.flags & (PG_free | PG_anon | PG_swapcache)) != (PG_anon | PG_swapcache) \
                or pfn >= si.cap_cache_of or si.cache_of[pfn] != s:
            _fail(rep, INV_SWAP_CACHE, -1, -1, pfn, s, folio.flags)
            continue
        swapcached[pfn] += 1
    if nfree != si.nr_free:
        _fail(rep, INV_SWAP_FREE, -1, -1, -1, si.nr_free, nfree)
    nfree = 0
    s = si.free_head
    while s != 0 and nfree <= si.nr_free:
        if s >= <uint32_t>si.nr_slots or si.slots[s].count != -1:
            _fail(rep, INV_SWAP_FREE, -1, -1, -1, s, nfree)
            break
        nfree += 1
        s = <uint32_t>si.slots[s].value
    if nfree != si.nr_free:
        _fail(rep, INV_SWAP_FREE, -1, -1, -1, si.nr_free, nfree)


ctypedef struct mirror_ctx_t:
    machine_t *m
    int32_t dev
    int32_t proc
    int64_t count            # mirror entries seen
    inv_report_t *rep


cdef void _check_mirror_run(void *ctx, uint64_t *ptep, int64_t vpn, int64_t n) noexcept nogil:
    """device.md invariants of each mirror entry (P, vpn) -> (frame, perm)."""
    cdef mirror_ctx_t *c = <mirror_ctx_t *>ctx
    cdef uint64_t *table = pte_table_of(ptep, vpn)
    cdef int64_t first = vpn & TABLE_MASK, end = first + n
    cdef int64_t i = next_used(table, first, end), v
    cdef uint64_t e, cpu, perm
    cdef mm_t *mm
    while i < end:
        e = table[i]
        v = vpn - first + i
        i = next_used(table, i + 1, end)
        c.count += 1
        # P alive
        if c.proc >= c.m.nr_procs or not c.m.procs[c.proc].alive:
            _fail(c.rep, INV_MIRROR_PROC, c.proc, v, pte_pfn(e), c.dev, <int64_t>e)
            continue
        mm = c.m.procs[c.proc]
        # a live subscription of the device on P covers vpn
        if not dmirror_subscribed(c.m, mm, c.dev, v):
            _fail(c.rep, INV_MIRROR_SUB, c.proc, v, pte_pfn(e), c.dev, <int64_t>e)
        # P's entry at vpn (present or DX) maps the frame
        cpu = pte_lookup(mm.pgd, v)              # a PTE or a huge PMD's subpage
        if cpu == 0 or is_swap_pte(cpu) or pte_pfn(cpu) != pte_pfn(e):
            _fail(c.rep, INV_MIRROR_FRAME, c.proc, v, pte_pfn(e), <int64_t>e, <int64_t>cpu)
            continue
        # rw: present and writable, or DX; atomic: DX
        perm = e & MIRROR_PERM_MASK
        if (perm == MIRROR_ATOMIC_RW and pte_present(cpu)) or (
                perm == MIRROR_RW and pte_present(cpu) and not pte_write(cpu)) or (
                perm != MIRROR_R and perm != MIRROR_RW and perm != MIRROR_ATOMIC_RW):
            _fail(c.rep, INV_MIRROR_PERM, c.proc, v, pte_pfn(e), <int64_t>e, <int64_t>cpu)


cdef int64_t _check_itree(itree_node_t *a, int32_t lo, int32_t hi) noexcept nogil:
    """The max end of a[lo, hi) if every maxend there is right, else -1."""
    cdef int32_t mid
    cdef int64_t l, r, mx
    if lo >= hi:
        return 0
    mid = (lo + hi) >> 1
    l = _check_itree(a, lo, mid)
    r = _check_itree(a, mid + 1, hi)
    if l < 0 or r < 0:
        return -1
    mx = max(a[mid].end, max(l, r))
    return mx if a[mid].maxend == mx else -1


cdef void _check_hmm(machine_t *m, inv_report_t *rep) noexcept nogil:
    """Mirrors, pending events and the subscription indexes (device.md invariants)."""
    cdef mirror_ctx_t ctx
    cdef hmm_dev_t *d
    cdef int32_t i, p, k
    cdef int32_t *nlive
    cdef mm_t *mm
    cdef mmu_interval_sub_t *s
    ctx.m = m
    ctx.rep = rep
    for i in range(m.nr_devs):
        d = m.devs[i]
        ctx.dev = i
        ctx.count = 0
        for p in range(d.cap_pt):
            if d.pt[p] != NULL:
                ctx.proc = p
                walk_pte_runs(d.pt[p], 0, PGTABLE_SPAN, _check_mirror_run, &ctx)
        if ctx.count != d.nr_mirror:
            _fail(rep, INV_MIRROR_COUNT, -1, -1, -1, d.nr_mirror, ctx.count)
        # each pending event names a subscription of this device (events reach only live
        # subscriptions: the index holds nothing else, checked below; one removed since
        # keeps what it received)
        for k in range(d.nr_events):
            if d.events[k].sub < 0 or d.events[k].sub >= m.nr_subs \
                    or m.subs[d.events[k].sub].dev != i \
                    or d.events[k].start >= d.events[k].end \
                    or d.events[k].start < m.subs[d.events[k].sub].start \
                    or d.events[k].end > m.subs[d.events[k].sub].end:
                _fail(rep, INV_EVENT_SUB, -1, d.events[k].start, -1, i, d.events[k].sub)
    # each mm's index holds exactly its live subscriptions, sorted, maxend right; seq >= 0
    nlive = <int32_t *>calloc(m.nr_procs + 1, sizeof(int32_t))
    if nlive == NULL:
        m.kmem.oom = 1
        return
    for k in range(m.nr_subs):
        if m.subs[k].live and 0 <= m.subs[k].proc < m.nr_procs:
            nlive[m.subs[k].proc] += 1
    for p in range(m.nr_procs):
        mm = m.procs[p]
        if nlive[p] != mm.nr_subs or _check_itree(mm.subs, 0, mm.nr_subs) < 0:
            _fail(rep, INV_SUB_INDEX, p, -1, -1, nlive[p], mm.nr_subs)
            continue
        for k in range(mm.nr_subs):
            s = &m.subs[mm.subs[k].sub]
            if not s.live or s.proc != p or s.start != mm.subs[k].start \
                    or s.end != mm.subs[k].end or s.seq < 0 or s.start >= s.end \
                    or (k > 0 and mm.subs[k - 1].start > mm.subs[k].start):
                _fail(rep, INV_SUB_INDEX, p, mm.subs[k].start, -1, mm.subs[k].sub, s.seq)
    free(nlive)


cdef int check_machine(machine_t *m, inv_report_t *rep) noexcept nogil:
    """Check every invariant; fill *rep with the first violation. Return its code."""
    cdef inv_ctx_t ctx
    cdef int32_t p, i
    cdef uint32_t pfn
    cdef int64_t nfree = 0
    cdef folio_t *folio
    cdef int32_t *cached
    cdef int32_t *pinned
    cdef int32_t *swapcached
    cdef mm_t *mm
    cdef int64_t j
    cdef int32_t sc
    cdef uint32_t q
    rep.code = INV_OK
    ctx.maps = <int32_t *>calloc(m.mem.nr_frames, sizeof(int32_t))
    cached = <int32_t *>calloc(m.mem.nr_frames, sizeof(int32_t))
    pinned = <int32_t *>calloc(m.mem.nr_frames, sizeof(int32_t))
    swapcached = <int32_t *>calloc(m.mem.nr_frames, sizeof(int32_t))
    ctx.srefs = <int32_t *>calloc(m.swap.nr_slots + 1, sizeof(int32_t))
    ctx.pmds = <int32_t *>calloc(m.mem.nr_frames, sizeof(int32_t))
    if ctx.pmds == NULL or ctx.maps == NULL or cached == NULL or pinned == NULL or swapcached == NULL \
            or ctx.srefs == NULL:
        free(ctx.maps)
        free(cached)
        free(pinned)
        free(swapcached)
        free(ctx.srefs)
        free(ctx.pmds)
        m.kmem.oom = 1
        return INV_OK
    ctx.m = m
    ctx.rep = rep
    for p in range(m.nr_procs):
        mm = m.procs[p]
        if not mm.alive:
            continue
        # VMAs sorted, non-empty, non-overlapping
        for i in range(mm.nr_vmas):
            if mm.vmas[i].start >= mm.vmas[i].end or (
                    i > 0 and mm.vmas[i - 1].end > mm.vmas[i].start):
                _fail(rep, INV_VMA_ORDER, p, mm.vmas[i].start, -1, i, mm.vmas[i].end)
        ctx.mm = mm
        ctx.proc = p
        walk_page_range_pud(mm.pgd, 0, TASK_SIZE_PAGES, _check_pte_run, _check_pmd,
                            _check_pud, &ctx)
    _count_cache(m, cached, ctx.srefs, rep)
    _check_swap(m, ctx.srefs, swapcached, rep)
    for i in range(m.nr_pins):
        if m.pins[i].live:
            for j in range(m.pins[i].npages):
                pinned[m.pins[i].pfns[j]] += 1
    folio = pfn_folio(&m.mem, 0)
    if folio.refcount != 0 or folio.mapcount != 0:
        _fail(rep, INV_ZERO_COUNTS, -1, -1, 0, 0, folio.refcount)
    pfn = 1
    while pfn < m.mem.nr_frames:
        q = pfn
        folio = pfn_folio(&m.mem, q)
        pfn += 1
        if is_hzero_pfn(&m.mem, q):        # the huge zero folio: reserved, no counts
            if folio.refcount != 0 or folio.mapcount != 0 or folio.pincount != 0 \
                    or folio.flags != PG_reserved:    # (R/O pins record it: no counts)
                _fail(rep, INV_ZERO_COUNTS, -1, -1, q, 0, folio.refcount)
            continue
        if folio.flags & PG_head:
            _check_thp(m, q, &ctx, pinned, rep)
            pfn = q + HPAGE_PMD_NR
            continue
        if folio.flags & PG_tail:                # a tail outside a THP
            _fail(rep, INV_THP_COUNTS, -1, -1, q, 0, folio.flags)
            continue
        if folio.flags & PG_free:
            nfree += 1
            if pinned[q]:
                _fail(rep, INV_FREE_MAPPED, -1, -1, q, 0, pinned[q])   # a pin on a free frame
            continue
        # page-cache membership matches the flag (each page in at most one cache)
        if cached[q] != (1 if folio.flags & PG_pagecache else 0):
            _fail(rep, INV_PAGECACHE, -1, -1, q, cached[q], folio.flags)
        # swap-cache membership matches the flag (the slot's link checked both ways)
        sc = 1 if folio.flags & PG_swapcache else 0
        if swapcached[q] != sc:
            _fail(rep, INV_SWAP_CACHE, -1, -1, q, swapcached[q], folio.flags)
        # a KSM page is anon and never AnonExclusive
        if (folio.flags & PG_ksm) and (folio.flags & (PG_anon | PG_anon_exclusive)) != PG_anon:
            _fail(rep, INV_KSM, -1, -1, q, PG_anon, folio.flags)
        if folio.mapcount != ctx.maps[q]:
            _fail(rep, INV_MAPCOUNT, -1, -1, q, ctx.maps[q], folio.mapcount)
        if folio.pincount != pinned[q]:
            _fail(rep, INV_PINCOUNT, -1, -1, q, pinned[q], folio.pincount)
        # I3: a pinned anon page is AnonExclusive (gup_must_unshare; fork copies it)
        if pinned[q] and (folio.flags & PG_anon) and not (folio.flags & PG_anon_exclusive):
            _fail(rep, INV_I3, -1, -1, q, PG_anon_exclusive, folio.flags)
        # refcount == mappings + page-cache reference + swap-cache reference + pins
        if folio.refcount != ctx.maps[q] + cached[q] + sc + pinned[q]:
            _fail(rep, INV_REFCOUNT, -1, -1, q, ctx.maps[q] + cached[q] + sc + pinned[q],
                  folio.refcount)
        # I2: AnonExclusive => mapped at most once
        if (folio.flags & PG_anon_exclusive) and ctx.maps[q] > 1:
            _fail(rep, INV_I2, -1, -1, q, 1, ctx.maps[q])
    if nfree != m.mem.nr_free:
        _fail(rep, INV_FREE_LIST, -1, -1, -1, m.mem.nr_free, nfree)
    _check_hmm(m, rep)
    free(ctx.maps)
    free(cached)
    free(pinned)
    free(swapcached)
    free(ctx.srefs)
    free(ctx.pmds)
    return rep.code
