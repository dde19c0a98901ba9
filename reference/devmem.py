"""Device memory: TTM-like buffer objects mapped VM_PFNMAP, with special huge PMDs and PUDs
(seed 004: huge page-table entries for TTM; mm/huge_memory.c vmf_insert_pfn_pmd,
vma_is_special_huge; mm/memory.c vmf_insert_pfn, wp_pfn_shared).

Rules (Linux 6.18; the driver side follows TTM/vmwgfx):
- A BO is N pages of device memory with contiguous PFNs, page 0 2 MiB-aligned. It is
  mapped only shared (ttm_bo_mmap_obj refuses COW mappings) as a VM_PFNMAP|VM_IO VMA
  that wants write-notify (vm_ops->pfn_mkwrite): faults install read-only entries,
  a write goes through wp_pfn_shared (writable and dirty, no notifier).
- huge_fault inserts a special PMD when THP is allowed for the VMA (the sysfs setting
  is enforced for non-anonymous VMAs: always, or madvise with MADV_HUGEPAGE), the block
  lies in the VMA, its first page is 2 MiB-aligned in the BO, the block has no PTE
  table and the BO is not dirty-tracked
  (vmwgfx falls back to PTEs under dirty tracking, which starts with the first
  wp_range/clean_record on the BO). A write to a read-only special PMD upgrades it in
  place (insert_pfn_pmd), or, under tracking, zaps it and refaults at PTE level.
- Splitting a special PMD zaps it (__split_huge_pmd_locked: vma_is_special_huge), no
  PTE table is populated; the data lives in the BO.
- The same at PUD level (vmf_insert_pfn_pud): a 1 GiB slot inside the VMA, 1 GiB-aligned
  in the BO (every BO starts 1 GiB-aligned: a model choice) and wholly inside it, with
  no PMD table yet (a PUD can only be made while the slot's PUD entry is none). A split
  clears the whole PUD (vma_is_special_huge), a VMA split does not touch it (there is no
  PUD part in vma_adjust_trans_huge: a PUD may straddle two VMAs), a partial zap or
  mprotect clears all of it, a whole-slot mprotect takes the new vm_page_prot's write
  bit (change_huge_pud: no write upgrade at PUD level), fork copies it.
TTM's prefault of neighbouring pages is not modelled (a fault maps only its own page). The driver is the seed-004 TTM design: TTM itself dropped its
huge faults in 5.16 ("drm/ttm: remove ttm_bo_vm_insert_huge()"); the core-mm paths for
huge pfnmap entries modelled here are those vfio-pci uses in 6.12+.
"""
from __future__ import annotations

from typing import Optional

from .folio import HPAGE_PMD_NR
from .mm import Mm
from .ops import HPAGE_PUD_NR
from .pagetable import Pmd, Pte, Pud
from .sysfs import ThpSettings
from .vma import Vma


class DevPage:
    """One page of a BO: what a pfn entry maps (no struct page: never counted)."""

    anon = False

    def __init__(self, bo: "BufferObject", pgoff: int) -> None:
        self.bo = bo
        self.pgoff = pgoff

    @property
    def value(self) -> int:
        return self.bo.values.get(self.pgoff, 0)

    def store(self, value: int) -> None:
        self.bo.write(self.pgoff, value)

    @property
    def key(self) -> tuple:
        """The frame key both models use: the PFN is fixed by (BO, page)."""
        return ("dev", self.bo.name, self.pgoff)

    def __repr__(self) -> str:
        return f"DevPage({self.bo.name}:{self.pgoff:#x})"


class DevHuge:
    """The 512 pages of a BO a special PMD maps, from pgoff (2 MiB-aligned)."""

    anon = False

    def __init__(self, bo: "BufferObject", pgoff: int) -> None:
        self.bo = bo
        self.pgoff = pgoff

    def page(self, i: int) -> DevPage:
        return self.bo.page(self.pgoff + i)


class BufferObject:
    """`file F N devmem`: device pages with values; `tracked` once dirty tracking began."""

    devmem = True

    def __init__(self, name: str, npages: int) -> None:
        self.name = name
        self.size = npages
        self.values: dict[int, int] = {}
        self.tracked = False
        self._pages: dict[int, DevPage] = {}
        self._huge: dict[int, DevHuge] = {}

    def page(self, pgoff: int) -> DevPage:
        """The (identical every time) DevPage of pgoff: `same` compares identity."""
        p = self._pages.get(pgoff)
        if p is None:
            p = self._pages[pgoff] = DevPage(self, pgoff)
        return p

    def huge(self, pgoff: int) -> DevHuge:
        h = self._huge.get(pgoff)
        if h is None:
            h = self._huge[pgoff] = DevHuge(self, pgoff)
        return h

    def read(self, pgoff: int) -> int:
        """read(2): past the end reads 0 (a short read), like the shmem files."""
        return self.values.get(pgoff, 0) if pgoff < self.size else 0

    def write(self, pgoff: int, value: int) -> None:
        """write(2) and CPU stores; past the end the object grows as a shmem file does."""
        if pgoff >= self.size:
            self.size = pgoff + 1
        value &= (1 << 64) - 1
        if value:
            self.values[pgoff] = value
        else:
            self.values.pop(pgoff, None)


def huge_aligned(vma: Vma, idx: int) -> bool:
    """The block lies in the VMA and its first page's PFN is 2 MiB-aligned (TTM tries a
    huge entry only when address and PFN are both aligned)."""
    base = idx << 9
    return (vma.start <= base and base + HPAGE_PMD_NR <= vma.end
            and vma.pgoff_of(base) % HPAGE_PMD_NR == 0)


def huge_fault_allowed(settings: ThpSettings, vma: Vma) -> bool:
    """__thp_vma_allowable_orders for a non-anonymous VMA in a page fault: the sysfs
    `enabled` setting is enforced (always, or madvise with VM_HUGEPAGE) before the
    driver's huge_fault is trusted; VM_NOHUGEPAGE forbids (vma_thp_disabled)."""
    if vma.nohugepage:
        return False
    return settings.enabled == "always" or (settings.enabled == "madvise" and vma.hugepage)


def zap_special_pmd(mm: Mm, idx: int) -> None:
    """__split_huge_pmd on a special VMA: a CLEAR invalidation, the PMD is cleared, no
    PTE table is populated (__split_huge_pmd_locked returns for vma_is_special_huge)."""
    base = idx << 9
    mm.notify("clear", base, base + HPAGE_PMD_NR, None)
    mm.zap_pmd(idx)


def huge_pud_aligned(vma: Vma, bo: "BufferObject", slot: int) -> bool:
    """The 1 GiB slot lies in the VMA, its first page is 1 GiB-aligned in the BO (BOs
    start 1 GiB-aligned, so the PFN is) and the BO holds the whole slot."""
    base = slot << 18
    pgoff = vma.pgoff_of(base)
    return (vma.start <= base and base + HPAGE_PUD_NR <= vma.end
            and pgoff % HPAGE_PUD_NR == 0 and pgoff + HPAGE_PUD_NR <= bo.size)


def pfnmap_pud_fault(mm: Mm, vma: Vma, bo: "BufferObject", vpn: int, write: bool) -> bool:
    """The PUD level of __handle_mm_fault: a PUD leaf takes the access (touch_pud, or
    wp_huge_pud -> huge_fault: insert_pud upgrades it in place unless the BO is tracked
    or the slot is not all in this VMA (a PUD straddling two VMAs: the driver's range
    check), then the fallback splits = zaps it); a none slot gets a special PUD when
    allowed.
    Return whether the fault ended at PUD level (else pmd_alloc makes the PMD table)."""
    slot = vpn >> 18
    pud = mm.huge_pud(slot)
    if pud is not None:
        if not write or pud.writable:
            if write:
                pud.mkdirty()                           # huge_pud_set_accessed
            return True
        if not bo.tracked and huge_pud_aligned(vma, bo, slot):
            pud.mkdirty()                               # insert_pud: same pfn, write
            pud.writable = vma.prot.write
            return True
        mm.split_huge_pud(slot)                         # VM_FAULT_FALLBACK: split = zap
    elif (mm.pud_none(slot) and huge_pud_aligned(vma, bo, slot) and not bo.tracked
          and huge_fault_allowed(mm.thp, vma)):
        new = Pud(bo.huge(vma.pgoff_of(slot << 18)))    # vmf_insert_pfn_pud
        if write:
            new.mkdirty()
            new.writable = vma.prot.write
        mm.set_pud(slot, new)
        return True
    mm.pmd_tables.add(slot)                             # pmd_alloc
    return False


def pfnmap_fault(mm: Mm, i: int, vpn: int, write: bool) -> None:
    """A CPU fault in a pfnmap VMA (after the access check): huge_fault at PUD, then
    PMD level, else vmf_insert_pfn, then wp_pfn_shared for a write to a read-only
    entry."""
    vma = mm.vmas[i]
    bo = vma.file
    assert isinstance(bo, BufferObject)
    if pfnmap_pud_fault(mm, vma, bo, vpn, write):
        return
    idx = vpn >> 9
    pmd = mm.huge_pmd(idx)
    if pmd is not None:
        if not write or pmd.writable:
            if write:
                pmd.mkdirty()
            return
        if not bo.tracked:                              # insert_pfn_pmd: same pfn, write
            pmd.mkdirty()
            pmd.writable = vma.prot.write
            return
        zap_special_pmd(mm, idx)                        # VM_FAULT_FALLBACK: split = zap
    elif (mm.pmd_none(idx) and huge_aligned(vma, idx) and not bo.tracked
          and huge_fault_allowed(mm.thp, vma)):
        new = Pmd(bo.huge(vma.pgoff_of(idx << 9)))      # vmf_insert_pfn_pmd
        if write:
            new.mkdirty()
            new.writable = vma.prot.write
        mm.set_pmd(idx, new)
        return
    pte = mm.ptes.get(vpn)
    if pte is None:
        pte = Pte(bo.page(vma.pgoff_of(vpn)))           # vmf_insert_pfn: read-only
        mm.set_pte(vpn, pte)
    if write and not pte.writable:                      # do_wp_page -> wp_pfn_shared
        pte.writable = vma.prot.write
        pte.mkdirty()
    elif write:
        pte.mkdirty()


def copy_special_pmd(parent: Mm, child: Mm, idx: int) -> None:
    """copy_huge_pmd (6.12+ "mm/fork: accept huge pfnmap entries"): the special PMD is
    copied as it is (only made old), not write-protected: the mapping is shared."""
    pmd = parent.huge_pmd(idx)
    assert pmd is not None
    child.set_pmd(idx, Pmd(pmd.folio, writable=pmd.writable, dirty=pmd.dirty,
                           soft_dirty=pmd.soft_dirty))


def copy_special_pud(child: Mm, pud: Pud, slot: int) -> None:
    """copy_huge_pud: the special PUD is copied as it is (made old; a shared mapping is
    not write-protected), with no PMD table below it."""
    child.set_pud(slot, Pud(pud.folio, writable=pud.writable, dirty=pud.dirty,
                            soft_dirty=pud.soft_dirty))


def pfnmap_poke(vma: Vma, vpn: int, value: int) -> Optional[None]:
    """/proc/pid/mem into a pfnmap VMA: GUP fails, vm_ops->access (ttm_bo_vm_access)
    writes the BO page directly."""
    bo = vma.file
    assert isinstance(bo, BufferObject)
    bo.write(vma.pgoff_of(vpn), value)
    return None
