"""mmap and munmap (mm/mmap.c do_mmap, mm/vma.c do_vmi_munmap).

Errno order, checked on Linux 6.18 (FACTS): len 0 -> EINVAL; bad MAP_TYPE or
anon/file mix -> EINVAL; a file range reaching 2^63 bytes -> EOVERFLOW; past TASK_SIZE -> ENOMEM (mmap) / EINVAL (munmap);
mmap_min_addr is one page here, so a fixed VPN >= 1 never gets EPERM.
MAP_FIXED first unmaps whatever was in the range.
"""
from __future__ import annotations

from typing import Optional, Union

from .fault import populate_fault
from .mm import Mm
from .ops import (ADDR_LIMIT_PAGES, FILE_LIMIT_PAGES, HPAGE_PMD_NR, MMAP_MIN_PAGES,
                  TASK_SIZE_PAGES, MapFlag, Prot)
from .results import Errno
from .devmem import BufferObject
from .shmem import ShmemFile
from .vma import Vma, merge_range

# The lowest VPN an address hint of 0 may get (the kernel rounds hints below
# 64 KiB up to it).
MMAP_PICK_MIN = MMAP_MIN_PAGES


def get_unmapped_area(mm: Mm, npages: int, align: int, offset: int = 0) -> Optional[int]:
    """Lowest free range of npages at or above MMAP_PICK_MIN whose start is `offset`
    modulo `align` pages (thp_get_unmapped_area aligns private anon mappings whose length
    is a PMD multiple; drm_get_unmapped_area gives a BO mapping of >= 2 MiB the file
    offset's position within 2 MiB, so that address and PFN can share a huge entry)."""
    def up(c: int) -> int:
        return c + (offset - c) % align
    cand = MMAP_PICK_MIN
    for vma in mm.vmas:
        cand = up(cand)
        if cand + npages <= vma.start:
            return cand
        cand = max(cand, vma.end)
    cand = up(cand)
    return cand if cand + npages <= TASK_SIZE_PAGES else None


def do_munmap_range(mm: Mm, start: int, end: int) -> None:
    """do_vmi_munmap (vms_gather_munmap_vmas + unmap_region), also exit_mmap's whole
    range: zap [start, end), split the VMAs at its ends and drop what lies inside.
    unmap_vmas fires one UNMAP invalidation over the requested range when a VMA is there."""
    if any(True for _ in mm.vmas_in(start, end)):
        mm.notify("unmap", start, end, None)
    mm.split_at(start)                               # vms_gather_munmap_vmas first
    mm.split_at(end)
    mm.zap_range(start, end)
    kept = []
    for v in mm.vmas:
        if start <= v.start and v.end <= end:
            if v.file is not None and v.file.name is None:
                mm.dropped_objects.append(v.file)   # freed if no other VMA maps it
        else:
            kept.append(v)
    mm.vmas = kept
    # free_pgtables: a block's PTE table goes once no VMA overlaps the block
    mm.free_tables(start, end, lambda idx: any(
        True for _ in mm.vmas_in(idx << 9, (idx + 1) << 9)))
    mm.free_pmd_tables(start, end)                  # ... and a slot's PMD table likewise


def exit_mmap(mm: Mm) -> None:
    """exit_mmap after mmu_notifier_release: one UNMAP invalidation over the whole
    address space (unmap_vmas(..., 0, ULONG_MAX)) when there is a VMA, then zap it all."""
    if mm.vmas:
        mm.notify("unmap", 0, ADDR_LIMIT_PAGES, None)
    mm.zap_range(0, TASK_SIZE_PAGES)
    for v in mm.vmas:
        if v.file is not None and v.file.name is None:
            mm.dropped_objects.append(v.file)
    mm.vmas = []
    mm.tables.clear()
    mm.pmd_tables.clear()


def do_munmap(mm: Mm, vpn: int, npages: int) -> Optional[Errno]:
    """munmap(2)."""
    if npages == 0 or vpn + npages > TASK_SIZE_PAGES:
        return Errno.EINVAL
    do_munmap_range(mm, vpn, vpn + npages)
    return None


def do_mmap(mm: Mm, vpn: int, npages: int, prot: Prot, flags: frozenset,
            file: Optional[ShmemFile], off: Optional[int]) -> Union[int, Errno]:
    """mmap(2) with MAP_FIXED semantics when vpn != 0. Return: the VPN or an errno."""
    if npages == 0:
        return Errno.EINVAL
    shared = MapFlag.SHARED in flags
    if shared == (MapFlag.PRIVATE in flags):
        return Errno.EINVAL                       # MAP_TYPE must be exactly one of them
    if (MapFlag.ANON in flags) == (file is not None):
        return Errno.EINVAL
    pfnmap = MapFlag.PFNMAP in flags
    if pfnmap != isinstance(file, BufferObject):
        return Errno.EINVAL                       # a BO maps only through its driver
    if pfnmap and (not shared or (off or 0) + npages > file.size):
        return Errno.EINVAL                       # ttm_bo_mmap_obj: no COW; drm_gem_mmap: size
    if file is not None and (off or 0) + npages >= FILE_LIMIT_PAGES:
        return Errno.EOVERFLOW                    # file_mmap_ok: past MAX_LFS_FILESIZE
    if vpn == 0:
        align, offset = 1, 0
        if not shared and file is None and npages % HPAGE_PMD_NR == 0:
            align = HPAGE_PMD_NR
        elif pfnmap and npages >= HPAGE_PMD_NR:
            align, offset = HPAGE_PMD_NR, (off or 0) % HPAGE_PMD_NR
        picked = get_unmapped_area(mm, npages, align, offset)
        if picked is None:
            return Errno.ENOMEM
        vpn = picked
    elif vpn + npages > TASK_SIZE_PAGES:
        return Errno.ENOMEM
    do_munmap_range(mm, vpn, vpn + npages)
    if file is None and shared:
        file = ShmemFile(None, npages)             # shmem_zero_setup
        pgoff = 0
    elif file is None:
        pgoff = vpn                                # anonymous vm_pgoff = addr >> PAGE_SHIFT
    else:
        pgoff = off or 0
    mm.vmas.append(Vma(vpn, vpn + npages, prot, shared, file, pgoff, pfnmap=pfnmap))
    mm.vmas.sort(key=lambda v: v.start)
    mm.vmas = merge_range(mm.vmas, vpn, vpn + npages)
    if MapFlag.POPULATE in flags:
        mm_populate(mm, vpn, vpn + npages)
    return vpn


def mm_populate(mm: Mm, start: int, end: int) -> None:
    """__mm_populate / populate_vma_page_range: write-fault private writable VMAs (break
    COW), read-fault the rest, skip PROT_NONE; errors are ignored (stop at the first)."""
    for vma in mm.vmas_in(start, end):
        if not vma.prot.read or vma.pfnmap:
            continue                            # PROT_NONE, VM_PFNMAP: GUP refuses
        write = vma.prot.write and not vma.shared
        for vpn in range(max(start, vma.start), min(end, vma.end)):
            if populate_fault(mm, vpn, write) is not None:
                return
