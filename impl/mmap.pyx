# mmap: do_mmap with MAP_FIXED replacement, MAP_POPULATE, and munmap.
#
# Check order of rules.md "mmap": N == 0, private xor shared, anon xor file=,
# pfnmap / devmem (devmem.pyx devmem_mmap_check: EINVAL), then the address: VPN 0 searches the lowest free range (512-page
# aligned for private anon of a multiple of 512 pages), else VPN+N > TASK_SIZE ->
# ENOMEM. mmap_min_addr is one page on our machines (FACTS Q1): no EPERM for VPN >= 1.
# A file= that was never created gives EBADF before anything else (fget in
# ksys_mmap_pgoff).


cdef int32_t shmem_new(machine_t *m, int64_t npages, bint hidden) noexcept nogil:
    """A new shmem object slot in machine.files (a hidden one for shared anon,
    shmem_zero_setup); return its index, -1 on OOM."""
    cdef shmem_t *f
    if m.nr_files == m.cap_files and kgrow(&m.kmem, <void **>&m.files, &m.cap_files,
                                           sizeof(shmem_t *), 16) < 0:
        return -1
    f = <shmem_t *>kzalloc(&m.kmem, sizeof(shmem_t))
    if f == NULL:
        return -1
    f.size = npages
    f.hidden = hidden
    f.live = hidden
    m.files[m.nr_files] = f
    m.nr_files += 1
    return m.nr_files - 1


cdef void _mmap_populate(machine_t *m, mm_t *mm, int64_t start, int64_t end) noexcept nogil:
    """MAP_POPULATE (populate_vma_page_range): write faults for a private rw mapping
    (FOLL_WRITE breaks COW), read faults otherwise, nothing for PROT_NONE; the first
    failing fault stops it silently."""
    cdef int32_t idx = find_vma(mm, start)
    cdef vma_t *v = &mm.vmas[idx]
    if v.prot == PROT_NONE or v.pfnmap:
        return                           # __mm_populate skips VM_IO | VM_PFNMAP
    populate_vma_page_range(m, mm, idx, start, end, v.prot == PROT_RW and not v.shared)


cdef void sys_mmap(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil:
    cdef int64_t vpn = op.a0, npages = op.a1, off = op.a5
    cdef int32_t prot = <int32_t>op.a2, file = <int32_t>op.a4
    cdef int64_t flags = op.a3
    cdef bint private = (flags & MAPF_PRIVATE) != 0, shared = (flags & MAPF_SHARED) != 0
    cdef bint anon = (flags & MAPF_ANON) != 0, has_file = file >= 0
    cdef vma_t v
    if has_file and not m.files[file].live:
        res_set(r, RES_ERRNO, EBADF)
        return
    if npages == 0 or private == shared or anon == has_file:
        res_set(r, RES_ERRNO, EINVAL)
        return
    if devmem_mmap_check(m, flags, file, off, npages):
        res_set(r, RES_ERRNO, EINVAL)
        return
    if has_file and off + npages >= FILE_LIMIT_PAGES:     # file_mmap_ok
        res_set(r, RES_ERRNO, EOVERFLOW)
        return
    if vpn == 0 and (flags & MAPF_PFNMAP) and npages >= HPAGE_PMD_NR:
        # thp_get_unmapped_area / drm_get_unmapped_area: VA and PFN share their offset
        # within 2 MiB
        vpn = get_unmapped_area_off(mm, npages, (off if off >= 0 else 0) & HPAGE_PMD_MASK)
        if vpn < 0:
            res_set(r, RES_ERRNO, ENOMEM)
            return
    elif vpn == 0:
        vpn = get_unmapped_area(mm, npages,
                                HPAGE_PMD_NR if private and anon and npages % HPAGE_PMD_NR == 0 else 1)
        if vpn < 0:
            res_set(r, RES_ERRNO, ENOMEM)
            return
    else:
        if vpn + npages > TASK_SIZE_PAGES:
            res_set(r, RES_ERRNO, ENOMEM)
            return
        if do_vmi_munmap(m, mm, vpn, vpn + npages) < 0:     # MAP_FIXED replaces
            return
    v.start = vpn
    v.end = vpn + npages
    v.prot = <uint8_t>prot
    v.shared = shared
    v.madv = 0
    v.anon_vma = 0
    v.forked = 0
    v.softdirty = 1                  # __mmap_complete: vm_flags_set(vma, VM_SOFTDIRTY)
    v.pfnmap = (flags & MAPF_PFNMAP) != 0
    v.pgoff = 0
    v.file = NO_FILE
    if anon and shared:
        v.file = shmem_new(m, npages, True)
        if v.file < 0:
            return
    elif has_file:
        v.file = file
        v.pgoff = off if off >= 0 else 0
    if vma_insert(m, mm, find_vma_from(mm, vpn), &v) < 0:
        return
    vma_merge_range(m, mm, vpn, vpn + npages)
    if flags & MAPF_POPULATE:
        _mmap_populate(m, mm, vpn, vpn + npages)
    res_set(r, RES_VALUE, <uint64_t>vpn)


cdef void sys_munmap(machine_t *m, mm_t *mm, mm_op_t *op, mm_res_t *r) noexcept nogil:
    """munmap: N == 0 or beyond TASK_SIZE -> EINVAL; holes are fine."""
    cdef int64_t vpn = op.a0, npages = op.a1
    if npages == 0 or vpn + npages > TASK_SIZE_PAGES:
        res_set(r, RES_ERRNO, EINVAL)
        return
    if do_vmi_munmap(m, mm, vpn, vpn + npages) < 0:
        return
    res_set(r, RES_OK, 0)
