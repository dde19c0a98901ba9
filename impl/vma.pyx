# vma: sorted VMA array operations.
#
# Rules kept here (rules.md "VMA merge pass and anon_vma"):
# - VMAs are sorted by start and never overlap; every VMA is non-empty.
# - A split gives both halves the same anon_vma and forked flag (__split_vma).
# - A VMA holds a reference on its shmem object (nr_vmas); a hidden object is
#   released when its last VMA goes (the shared anon mapping's file is fput).
from libc.string cimport memmove


cdef int32_t find_vma(mm_t *mm, int64_t vpn) noexcept nogil:
    """Index of the VMA containing vpn, or -1 (vma_lookup)."""
    cdef int32_t lo = 0, hi = mm.nr_vmas, mid
    while lo < hi:                      # first VMA with start > vpn
        mid = (lo + hi) >> 1
        if mm.vmas[mid].start <= vpn:
            lo = mid + 1
        else:
            hi = mid
    if lo > 0 and vpn < mm.vmas[lo - 1].end:
        return lo - 1
    return -1


cdef int32_t find_vma_from(mm_t *mm, int64_t vpn) noexcept nogil:
    """Index of the first VMA ending above vpn, nr_vmas if none (find_vma)."""
    cdef int32_t lo = 0, hi = mm.nr_vmas, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if mm.vmas[mid].end <= vpn:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int vma_insert(machine_t *m, mm_t *mm, int32_t idx, vma_t *v) noexcept nogil:
    """Insert a copy of *v at idx (caller keeps the order); takes a file reference.
    Return: 0, or -1 when the array could not grow."""
    cdef vma_t copy = v[0]              # v may point into the array we reallocate
    if mm.nr_vmas == mm.cap_vmas and kgrow(&m.kmem, <void **>&mm.vmas, &mm.cap_vmas,
                                           sizeof(vma_t), 8) < 0:
        return -1
    memmove(&mm.vmas[idx + 1], &mm.vmas[idx], (mm.nr_vmas - idx) * sizeof(vma_t))
    mm.vmas[idx] = copy
    mm.nr_vmas += 1
    if copy.file != NO_FILE:
        m.files[copy.file].nr_vmas += 1      # get_file
    return 0


cdef void vma_remove(machine_t *m, mm_t *mm, int32_t idx) noexcept nogil:
    """Drop the VMA at idx (its entries must be zapped already); puts its file."""
    cdef int32_t file = mm.vmas[idx].file
    cdef shmem_t *f
    memmove(&mm.vmas[idx], &mm.vmas[idx + 1], (mm.nr_vmas - idx - 1) * sizeof(vma_t))
    mm.nr_vmas -= 1
    if file != NO_FILE:
        f = m.files[file]
        f.nr_vmas -= 1                       # fput
        if f.nr_vmas == 0 and f.hidden:
            shmem_evict_inode(m, f)


cdef int vma_split(machine_t *m, mm_t *mm, int32_t idx, int64_t at) noexcept nogil:
    """Split the VMA at idx so that [start, at) stays at idx and [at, end) follows
    (__split_vma); both halves keep the anon_vma and forked flag. -1 on OOM.
    vma_adjust_trans_huge -> split_huge_pmd_if_needed: at an address inside a block that
    lies wholly in the VMA (range_in_vma), split_huge_pmd_address (a CLEAR over the block
    where the slot has a PMD table or a PUD leaf; a huge PMD there is split). A PUD leaf
    is left as it is: it may straddle the two halves."""
    cdef int64_t haddr = at & ~(<int64_t>HPAGE_PMD_MASK)
    if at & HPAGE_PMD_MASK and mm.vmas[idx].start <= haddr \
            and haddr + HPAGE_PMD_NR <= mm.vmas[idx].end:
        split_huge_pmd_address(m, mm, at)
    cdef vma_t upper = mm.vmas[idx]
    upper.start = at
    if m.mutant == MUTANT_SPLIT_VMA_LOSES_ANON_VMA:
        upper.anon_vma = 0                       # mutant: anon_vma_clone skipped
        upper.forked = 0
    if upper.file != NO_FILE:
        upper.pgoff += at - mm.vmas[idx].start
    mm.vmas[idx].end = at
    if vma_insert(m, mm, idx + 1, &upper) < 0:
        mm.vmas[idx].end = upper.end
        return -1
    return 0


cdef int vma_range_split(machine_t *m, mm_t *mm, int64_t start, int64_t end,
                         int32_t *first, int32_t *last) noexcept nogil:
    """Split the VMAs straddling start or end; then [*first, *last) are exactly the
    VMAs inside [start, end) (the split step of do_vmi_align_munmap). -1 on OOM."""
    cdef int32_t i = find_vma_from(mm, start)
    if i < mm.nr_vmas and mm.vmas[i].start < start:
        if vma_split(m, mm, i, start) < 0:
            return -1
        i += 1
    first[0] = i
    while i < mm.nr_vmas and mm.vmas[i].end <= end:
        i += 1
    if i < mm.nr_vmas and mm.vmas[i].start < end:
        if vma_split(m, mm, i, end) < 0:
            return -1
        i += 1
    last[0] = i
    return 0


cdef inline bint _anon_vma_compatible(vma_t *a, vma_t *b) noexcept nogil:
    # Equal ids, or one side none and the other none or not forked
    # (is_mergeable_anon_vma: a forked anon_vma chain must not be merged into).
    if a.anon_vma == b.anon_vma:
        return True
    if a.anon_vma == 0:
        return not b.forked
    if b.anon_vma == 0:
        return not a.forked
    return False


cdef bint vma_can_merge(vma_t *a, vma_t *b) noexcept nogil:
    """Can b (right after a) merge into a? (can_vma_merge_after + is_mergeable_vma)"""
    if a.end != b.start or a.prot != b.prot or a.shared != b.shared:
        return False
    if a.pfnmap or b.pfnmap:
        return False                             # VM_SPECIAL: vma_merge refuses
    if a.file != b.file or a.madv != b.madv:
        return False
    if a.file != NO_FILE and b.pgoff != a.pgoff + (b.start - a.start):
        return False
    return _anon_vma_compatible(a, b)


cdef void vma_merge_range(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil:
    """vma_modify / vma_merge_new_range: after an op changed [start, end), merge each
    mergeable neighbour pair whose boundary lies in [start, end] (the changed pieces
    with each other and with the VMA just below and just above), nothing else.
    The merged VMA takes the non-none anon_vma and the OR of forked."""
    cdef int32_t i = find_vma_from(mm, start)
    cdef vma_t *a
    cdef vma_t *b
    if i > 0:
        i -= 1                               # the VMA just below the range
    while i + 1 < mm.nr_vmas and mm.vmas[i].end <= end:
        a = &mm.vmas[i]
        b = &mm.vmas[i + 1]
        if a.end < start or not vma_can_merge(a, b):
            i += 1
            continue
        a.end = b.end
        if a.anon_vma == 0:
            a.anon_vma = b.anon_vma
        a.forked = a.forked | b.forked
        a.softdirty = a.softdirty | b.softdirty  # is_mergeable_vma ignores VM_SOFTDIRTY; kept if either had it
        vma_remove(m, mm, i + 1)             # stay at i: it may merge again


cdef inline bint _anon_vma_compatible_pair(vma_t *a, vma_t *b) noexcept nogil:
    # anon_vma_compatible(a, b), b right after a: same file (or both anon), same flags
    # but the access bits (VM_ACCESS_FLAGS: prot may differ), contiguous pgoff
    return (a.end == b.start and a.file == b.file and a.shared == b.shared
            and a.madv == b.madv
            and (a.file == NO_FILE or b.pgoff == a.pgoff + (b.start - a.start)))


cdef inline bint _reusable_anon_vma(vma_t *old, vma_t *a, vma_t *b) noexcept nogil:
    # reusable_anon_vma: old (a or b) has an anon_vma with a singular chain (not forked)
    return _anon_vma_compatible_pair(a, b) and old.anon_vma != 0 and not old.forked


cdef void anon_vma_prepare(machine_t *m, mm_t *mm, int32_t idx) noexcept nogil:
    """Give the VMA an anon_vma before its first anon page (__anon_vma_prepare):
    reuse the next neighbour's, else the previous one's, else a new id."""
    cdef vma_t *v = &mm.vmas[idx]
    cdef vma_t *nb
    if v.anon_vma != 0:
        return
    if idx + 1 < mm.nr_vmas:                 # find_mergeable_anon_vma tries next first
        nb = &mm.vmas[idx + 1]
        if _reusable_anon_vma(nb, v, nb):
            v.anon_vma = nb.anon_vma
            v.forked = 0
            return
    if idx > 0:
        nb = &mm.vmas[idx - 1]
        if _reusable_anon_vma(nb, nb, v):
            v.anon_vma = nb.anon_vma
            v.forked = 0
            return
    m.last_anon_vma += 1
    v.anon_vma = m.last_anon_vma
    v.forked = 0
