"""fork(2): dup_mmap and copy_page_range (kernel/fork.c, mm/memory.c).

Per parent VMA (dup_mmap): VM_DONTCOPY -> not copied at all; VM_WIPEONFORK ->
the child VMA exists with no anon_vma and no entries; otherwise the child's VMA
gets its own anon_vma (anon_vma_fork) when the parent's has one, and entries are
copied only when vma_needs_copy (the parent VMA has an anon_vma: there is no
uffd-wp or PFNMAP yet). copy_present_pte: the zero page is copied as is; an anon
page loses AnonExclusive and both PTEs become read-only (COW); a page-cache page
in a private mapping is shared read-only. An AnonExclusive page that may be
pinned (folio_needs_cow_for_dma) is never shared: the child gets a copy now
(copy_present_page) and the parent's entry stays as it was.
copy_page_range of a COW mapping first fires a PROTECTION_PAGE invalidation over
the parent VMA. A device-exclusive entry is restored in the parent first
(try_restore_exclusive_pte, no event of its own) and then copied as present; if
its folio is locked the trylock fails (-EBUSY) and fork fails with ENOMEM
(copy_pmd_range turns any copy_pte_range failure into -ENOMEM).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .devmem import copy_special_pmd, copy_special_pud
from .fault import restore_exclusive_pte
from .folio import HPAGE_PMD_NR, Folio, folio_alloc_anon
from .ops import HPAGE_PUD_NR
from .huge_memory import copy_huge_pmd
from .mm import Mm
from .pagetable import HugePte, Pte, PudPte
from .results import Errno
from .vma import Vma, anon_vma_alloc


def vma_needs_copy(src: Vma) -> bool:
    """A VMA with an anon_vma can hold anon pages the child could not refault; a
    VM_PFNMAP one holds entries no fault handler of the child could rebuild."""
    return src.anon_vma is not None or src.pfnmap


def folio_needs_cow_for_dma(src: Mm, folio: Folio) -> bool:
    """MMF_HAS_PINNED && folio_maybe_dma_pinned (exact here: pincount > 0)."""
    return src.has_pinned and folio.pincount > 0


def copy_present_page(dst_vma: Vma, page: Folio) -> Pte:
    """The child's private copy of a pinned exclusive page: a new exclusive page,
    maybe_mkwrite(pte_mkdirty(mk_pte(new, dst_vma->vm_page_prot)))."""
    pte = Pte(folio_alloc_anon(page.value), writable=dst_vma.prot.write)
    pte.mkdirty()
    return pte


def copy_present_pte(src: Mm, src_vma: Vma, pte: Pte) -> Pte:
    """The child's entry for one present parent entry; write-protects the parent's in a
    COW mapping (every private mapping of ours: VM_MAYWRITE is always set)."""
    page = pte.page
    if isinstance(page, Folio) and page.anon:
        if page.anon_exclusive and folio_needs_cow_for_dma(src, page):
            return copy_present_page(src_vma, page)   # __folio_try_dup_anon_rmap: -EBUSY
        page.anon_exclusive = False        # __folio_try_dup_anon_rmap
    if not src_vma.shared:
        pte.writable = False               # is_cow_mapping && pte_write: wrprotect both
    child = replace(pte)
    if src_vma.shared:
        # pte_mkclean for VM_SHARED. Not reached yet: a shared VMA has no anon_vma;
        # it will be once VM_PFNMAP mappings (vma_needs_copy) arrive with devmem.
        child.dirty = False
    return child


def dup_mmap(parent: Mm, child: Mm) -> Optional[Errno]:
    """dup_mmap: copy the parent's VMAs (minus VM_DONTCOPY) and, per copy_page_range, entries.
    Return ENOMEM when a device-exclusive entry's folio is locked (the caller discards
    the child; what was done to the parent so far stays)."""
    for vma in parent.vmas:
        if vma.dontfork:
            continue
        cvma = replace(vma)
        if vma.wipeonfork:
            cvma.anon_vma, cvma.anon_vma_forked = None, False
            child.vmas.append(cvma)
            continue
        if vma.anon_vma is not None:
            cvma.anon_vma, cvma.anon_vma_forked = anon_vma_alloc(), True
        child.vmas.append(cvma)
        if not vma_needs_copy(vma):
            continue
        if not vma.shared:
            parent.notify("protection_page", vma.start, vma.end, None)   # is_cow_mapping
        # copy_pte_range allocates the child's table wherever the parent has one, even an
        # empty one (checked on 6.18: the child then faults at PTE level there)
        child.tables.update(idx for idx in parent.tables
                            if idx << 9 < vma.end and (idx + 1) << 9 > vma.start)
        # ... and copy_pud_range its PMD table wherever the parent has one (pmd_alloc)
        child.pmd_tables.update(s for s in parent.pmd_tables
                                if s << 18 < vma.end and (s + 1) << 18 > vma.start)
        huge_done = -1                                 # last vpn copied by a huge entry
        for vpn in parent.vpns_in(vma.start, vma.end):
            if vpn <= huge_done:
                continue
            pte = parent.ptes[vpn]
            if isinstance(pte, PudPte):                # copy_pud_range: copy_huge_pud
                if child.huge_pud(vpn >> 18) is None:  # a PUD straddling two VMAs: once
                    copy_special_pud(child, pte.pud, vpn >> 18)
                huge_done = vpn | (HPAGE_PUD_NR - 1)
                continue
            if isinstance(pte, HugePte):               # copy_pmd_range: copy_huge_pmd
                if pte.pmd.special:
                    copy_special_pmd(parent, child, vpn >> 9)
                    huge_done = vpn | (HPAGE_PMD_NR - 1)
                    continue
                if copy_huge_pmd(parent, child, vpn >> 9):
                    huge_done = vpn | (HPAGE_PMD_NR - 1)
                    continue
                pte = parent.ptes[vpn]                 # -EAGAIN: split, copy the PTEs
            if pte.swap is not None:                   # copy_nonpresent_pte: swap_duplicate
                pte.swp_exclusive = False              # the entry is shared now
                pte.swap.count += 1
                child.set_swap_pte(vpn, replace(pte))
                continue
            if pte.devexcl:                            # copy_nonpresent_pte
                assert isinstance(pte.page, Folio)
                if pte.page.locked:
                    return Errno.ENOMEM                # try_restore_exclusive_pte: -EBUSY
                restore_exclusive_pte(vma, pte)
            child.set_pte(vpn, copy_present_pte(parent, vma, pte))
    return None
