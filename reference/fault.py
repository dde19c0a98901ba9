"""Page faults and COW (mm/memory.c: handle_mm_fault and what it calls).

Order of checks, as in the kernel:
1. arch access check (do_user_addr_fault / access_error): no VMA -> SIGSEGV;
   read without VM_READ or write without VM_WRITE -> SIGSEGV, nothing changes;
2. a file-backed VMA beyond EOF -> SIGBUS (shmem_fault returns VM_FAULT_SIGBUS);
   a read fault maps its fault-around window first (do_read_fault runs
   do_fault_around before __do_fault; checked on 6.18: the resident page below
   EOF is mapped even though the faulting read gets SIGBUS);
3. handle_pte_fault: none -> do_anonymous_page / do_read_fault / do_cow_fault /
   do_shared_fault; present read-only and write -> do_wp_page.
Rules of do_wp_page: a shared mapping never copies (wp_page_shared); a private
mapping reuses an anon page that is AnonExclusive or whose only reference is
this PTE (wp_can_reuse_anon_folio); everything else is copied (wp_page_copy).
A device-exclusive entry is restored by any fault on it (do_swap_page ->
remove_device_exclusive_entry), with an EXCLUSIVE invalidation that revokes
every device's access; then the access proceeds. Every COW copy (wp_page_copy)
fires a CLEAR invalidation of its page.
A write fault may come from GUP with FOLL_FORCE (poke) in a VMA without VM_WRITE:
then the new or reused entry stays read-only (maybe_mkwrite). An UNSHARE fault
(FAULT_FLAG_UNSHARE, from a R/O pin) makes the page exclusive without making it
writable: reuse only sets AnonExclusive, a copy is mapped read-only and clean.
"""
from __future__ import annotations

from typing import Optional

from .folio import ZERO_PAGE, Folio, SubPage, Thp, folio_alloc_anon
from .devmem import pfnmap_fault
from .huge_memory import huge_pmd_fault
from .mm import Mm
from .mprotect import can_change_pte_writable
from .swap import SwapSlot, folio_free_swap, swap_cache_add, swap_cache_del
from .pagetable import Pte
from .results import Signal
from .vma import Vma, anon_vma_prepare, pte_needs_soft_dirty_wp, vma_wants_writenotify

FAULT_AROUND_PAGES = 16   # fault_around_bytes = 64 KiB
PTRS_PER_PTE = 512


def access_error(vma: Optional[Vma], write: bool) -> Optional[Signal]:
    """do_user_addr_fault: SEGV_MAPERR without a VMA, SEGV_ACCERR without permission."""
    if vma is None:
        return Signal.SEGV
    if (write and not vma.prot.write) or not vma.prot.read:
        return Signal.SEGV
    return None


def beyond_eof(vma: Vma, vpn: int) -> bool:
    """shmem_fault: a page at or past i_size has no backing -> VM_FAULT_SIGBUS."""
    return vma.file is not None and vma.pgoff_of(vpn) >= vma.file.size


def handle_mm_fault(mm: Mm, vpn: int, write: bool) -> Optional[Signal]:
    """Resolve a fault so that vpn is mapped readable (and writable if `write`).

    Return: None on success, or the signal the access raises.
    """
    i = mm.find_vma_index(vpn)
    vma = None if i is None else mm.vmas[i]
    sig = access_error(vma, write)
    if sig is not None:
        return sig
    assert i is not None
    return handle_pte_fault(mm, i, vpn, write)


def handle_pte_fault(mm: Mm, i: int, vpn: int, write: bool,
                     unshare: bool = False) -> Optional[Signal]:
    """The fault proper, after the caller's permission check (the arch check for the
    CPU, check_vma_flags for GUP). Return: None, or SIGBUS past a file's EOF."""
    if mm.vmas[i].pfnmap:
        pfnmap_fault(mm, i, vpn, write)           # device memory: huge_fault / insert_pfn
        return None
    mm.pmd_tables.add(vpn >> 18)                  # __handle_mm_fault: pmd_alloc
    if huge_pmd_fault(mm, i, vpn, write, unshare):
        return None                               # handled at PMD level (THP, huge zero)
    vma = mm.vmas[i]
    pte = mm.ptes.get(vpn)
    if pte is not None and pte.devexcl:
        # do_swap_page returns after the restore: the access is retried (a FOLL_FORCE
        # write then follows the read-only exclusive page without another fault)
        remove_device_exclusive_entry(mm, vma, vpn, pte)
        return None
    if pte is not None and pte.swap is not None:
        pte = do_swap_page(mm, vma, vpn, pte, write)
    if pte is None:
        if vma.is_anon:
            do_anonymous_page(mm, i, vpn, write)
        elif not write:
            return do_read_fault(mm, vma, vpn)
        elif beyond_eof(vma, vpn):
            return Signal.BUS
        elif vma.shared:
            do_shared_fault(mm, vma, vpn)
        else:
            do_cow_fault(mm, i, vpn)
        return None
    if (write or unshare) and not pte.writable:
        do_wp_page(mm, i, vpn, pte, unshare)
    elif write:
        pte.mkdirty()   # handle_pte_fault: already writable, only dirty/young
    return None


def do_anonymous_page(mm: Mm, i: int, vpn: int, write: bool) -> None:
    """Read: map the zero page (no anon_vma). Write: a new exclusive anon page,
    rw+dirty only with VM_WRITE (`if (vma->vm_flags & VM_WRITE) pte_mkwrite(pte_mkdirty())`:
    a FOLL_FORCE write into a read-only VMA leaves it clean and read-only)."""
    if not write:
        mm.set_pte(vpn, Pte(ZERO_PAGE))
        return
    anon_vma_prepare(mm.vmas, i)
    pte = Pte(folio_alloc_anon())
    if mm.vmas[i].prot.write:
        pte.writable = True
        pte.mkdirty()
    mm.set_pte(vpn, pte)


def _file_pte(vma: Vma, folio: Folio) -> Pte:
    """set_pte_range for a read fault: vm_page_prot, writable only in a shared rw mapping
    that wants no write-notify (shmem wants it only for soft-dirty tracking:
    vma_wants_writenotify / vma_set_page_prot)."""
    return Pte(folio, writable=vma.shared and vma.prot.write and not vma_wants_writenotify(vma))


def do_read_fault(mm: Mm, vma: Vma, vpn: int) -> Optional[Signal]:
    """do_fault_around (resident pages of the window) then __do_fault for vpn itself,
    which raises SIGBUS past EOF."""
    assert vma.file is not None
    blk = vpn & ~(PTRS_PER_PTE - 1)
    start = max(vpn & ~(FAULT_AROUND_PAGES - 1), vma.start, blk)
    end = min(start + FAULT_AROUND_PAGES, blk + PTRS_PER_PTE, vma.end)
    for v in range(start, end):
        pgoff = vma.pgoff_of(v)
        if v in mm.ptes or pgoff >= vma.file.size:
            continue
        folio = vma.file.find_folio(pgoff)       # filemap_map_pages: resident pages only
        if folio is not None:
            mm.set_pte(v, _file_pte(vma, folio))
    if vpn in mm.ptes:
        return None
    if beyond_eof(vma, vpn):
        return Signal.BUS
    mm.set_pte(vpn, _file_pte(vma, vma.file.get_folio(vma.pgoff_of(vpn))))
    return None


def do_shared_fault(mm: Mm, vma: Vma, vpn: int) -> None:
    """Write fault in a shared mapping: the page-cache page, writable and dirty."""
    assert vma.file is not None
    folio = vma.file.get_folio(vma.pgoff_of(vpn))
    folio.dirty = True                    # fault_dirty_shared_page
    pte = Pte(folio, writable=True)
    pte.mkdirty()
    mm.set_pte(vpn, pte)


def do_cow_fault(mm: Mm, i: int, vpn: int) -> None:
    """Write fault on a none entry of a private file mapping: copy the file page
    (set_pte_range: maybe_mkwrite(pte_mkdirty()): dirty, writable iff VM_WRITE)."""
    vma = mm.vmas[i]
    assert vma.file is not None
    src = vma.file.get_folio(vma.pgoff_of(vpn))
    anon_vma_prepare(mm.vmas, i)
    pte = Pte(folio_alloc_anon(src.value), writable=vma.prot.write)
    pte.mkdirty()
    mm.set_pte(vpn, pte)


def do_swap_page(mm: Mm, vma: Vma, vpn: int, old: Pte, write: bool) -> Pte:
    """Swap in a swap entry (zram: SWP_SYNCHRONOUS_IO) and map it.

    The folio: the swap-cache one; else, for the last reference, a fresh folio kept out
    of the swap cache (certainly exclusive); else a new swap-cache folio. Exclusive
    (AnonExclusive, writable with VM_WRITE, dirty for a write) when the entry says so,
    the folio is fresh, or nothing else references it (should_try_to_free_swap may drop
    the cache reference first on a write fault); otherwise read-only and shared.
    """
    slot = old.swap
    assert isinstance(slot, SwapSlot)
    if slot.cache is not None:
        folio, exclusive = slot.cache, old.swp_exclusive
    elif slot.count == 1:
        folio, exclusive = Folio(anon=True, value=slot.value), True
    else:
        folio, exclusive = Folio(anon=True, value=slot.value), old.swp_exclusive
        swap_cache_add(slot, folio)
    slot.count -= 1                                    # swap_free_nr
    if folio.swap_slot is not None and write and folio.refcount == 1 and slot.count == 0:
        swap_cache_del(folio)                          # should_try_to_free_swap
    sole = folio.refcount == 0                         # our reference will be the only one
    pte = Pte(folio, soft_dirty=old.soft_dirty)
    del mm.ptes[vpn]
    mm.set_pte(vpn, pte)
    if not folio.ksm and (exclusive or sole):
        folio.anon_exclusive = True                    # RMAP_EXCLUSIVE
        # VM_WRITE && !pte_needs_soft_dirty_wp (the swap entry's soft-dirty bit)
        if vma.prot.write and not pte_needs_soft_dirty_wp(vma, pte.soft_dirty):
            pte.writable = True
            if write:
                pte.mkdirty()
    return pte


def remove_device_exclusive_entry(mm: Mm, vma: Vma, vpn: int, pte: Pte) -> None:
    """A fault on a device-exclusive entry: a CLEAR invalidation with no owner (6.15+;
    every device loses access), then restore_exclusive_pte. (The kernel waits for the
    folio lock here; sequential ops cannot wait, so a `lock` held on it is not consulted.)"""
    mm.notify("clear", vpn, vpn + 1, None)
    restore_exclusive_pte(vma, pte)


def restore_exclusive_pte(vma: Vma, pte: Pte) -> None:
    """The present entry again (6.15+): soft-dirty kept; with VM_WRITE and
    can_change_pte_writable writable and dirty (the folio is dirty: the FOLL_WRITE GUP
    of make_device_exclusive marked it), else read-only and clean."""
    pte.devexcl = False
    if vma.prot.write and can_change_pte_writable(vma, pte):
        pte.mkdirty()
        pte.writable = True


def wp_can_reuse_large_anon_folio(thp: Thp) -> bool:
    """__wp_can_reuse_large_anon_folio (6.15+): a page of a PTE-mapped THP is reused when
    more than one page is mapped, every mapping is in this mm (the MM-id shared bit is
    clear) and every reference is a mapping (no pins)."""
    n = thp.large_mapcount()
    return n > 1 and not thp.shared and n == thp.refcount


def wp_can_reuse_anon_folio(folio: Folio) -> bool:
    """A THP page: the large-folio rule above. Order-0 rule: never a KSM page; no
    references besides this PTE and the swap cache;
    folio_trylock succeeds (a `lock` held on it makes the write copy); the swap cache
    is left when no swap entry needs it (folio_free_swap); then refcount == 1."""
    if isinstance(folio, SubPage):
        return wp_can_reuse_large_anon_folio(folio.thp)
    in_cache = 1 if folio.swap_slot is not None else 0
    if folio.ksm or folio.refcount > 1 + in_cache or folio.locked:
        return False
    if in_cache:
        folio_free_swap(folio)
    return folio.refcount == 1


def do_wp_page(mm: Mm, i: int, vpn: int, pte: Pte, unshare: bool = False) -> None:
    """Write (or unshare) fault on a present read-only entry."""
    vma = mm.vmas[i]
    if vma.shared:
        # wp_page_shared: no copy, make writable (+dirty). Only reached with VM_WRITE:
        # GUP refuses FOLL_FORCE writes and never unshares in a shared mapping.
        pte.writable = True
        pte.mkdirty()
        if isinstance(pte.page, Folio):
            pte.page.dirty = True         # fault_dirty_shared_page
        return
    page = pte.page
    if isinstance(page, Folio) and page.anon and (page.anon_exclusive or wp_can_reuse_anon_folio(page)):
        # SetPageAnonExclusive; unshare stops here (the entry stays read-only),
        # else wp_page_reuse: same frame, maybe_mkwrite(pte_mkdirty())
        page.anon_exclusive = True
        if not unshare:
            pte.writable = vma.prot.write
            pte.mkdirty()
        return
    wp_page_copy(mm, i, vpn, pte, unshare)


def wp_page_copy(mm: Mm, i: int, vpn: int, old: Pte, unshare: bool = False) -> None:
    """A new exclusive anon page (zeroed for the zero page, else a copy). Write:
    maybe_mkwrite(pte_mkdirty()). Unshare: read-only, clean, soft-dirty inherited."""
    mm.notify("clear", vpn, vpn + 1, None)        # mmu_notifier_range_init(MMU_NOTIFY_CLEAR)
    anon_vma_prepare(mm.vmas, i)
    new = folio_alloc_anon(old.page.value)
    soft_dirty = old.soft_dirty
    mm.zap_pte(vpn)
    if unshare:
        pte = Pte(new, soft_dirty=soft_dirty)
    else:
        pte = Pte(new, writable=mm.vmas[i].prot.write)
        pte.mkdirty()
    mm.set_pte(vpn, pte)


def populate_fault(mm: Mm, vpn: int, write: bool) -> Optional[Signal]:
    """GUP's faultin step: fault until the entry is present and (write) writable."""
    for _ in range(4):              # each fault makes the next check succeed
        pte = mm.ptes.get(vpn)
        if pte is not None and pte.present and (pte.writable or not write):
            return None
        sig = handle_mm_fault(mm, vpn, write)
        if sig is not None:
            return sig
    raise AssertionError(f"populate at {vpn:#x} did not settle after 4 faults")
