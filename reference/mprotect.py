"""mprotect(2) (mm/mprotect.c do_mprotect_pkey, mprotect_fixup, change_pte_range).

Checked on Linux 6.18 (FACTS): len 0 -> 0; a hole at the start -> ENOMEM with
nothing changed; a hole later (also the space past TASK_SIZE) -> ENOMEM and the
VMAs before it keep their new protection.
"""
from __future__ import annotations

from typing import Optional

from .folio import HPAGE_PMD_NR, Folio
from .huge_memory import change_huge_pmd
from .mm import Mm
from .ops import ADDR_LIMIT_PAGES, HPAGE_PUD_NR, Prot
from .pagetable import HugePte, Pte, Pud, PudPte
from .results import Errno
from .vma import Vma, merge_range, pte_needs_soft_dirty_wp, vma_wants_writenotify


def can_change_pte_writable(vma: Vma, pte: Pte) -> bool:
    """Private: only an AnonExclusive anon page may become writable without a fault.
    Shared: only a dirty PTE. Either way not while soft-dirty tracking wants a write
    fault (pte_needs_soft_dirty_wp: VM_SOFTDIRTY cleared and the PTE not soft-dirty)."""
    if pte_needs_soft_dirty_wp(vma, pte.soft_dirty):
        return False                      # can_change_pte_writable: softdirty tracking
    if not vma.shared:
        page = pte.page
        return isinstance(page, Folio) and page.anon and page.anon_exclusive
    # Shared: only a PTE already dirty. Reached only under write-notify (soft-dirty
    # tracking: vma_wants_manual_pte_write_upgrade); else vm_page_prot has the write bit.
    return pte.dirty


PUD_PAGES = 1 << 18                       # one PUD entry maps 1 GiB
P4D_PAGES = 1 << 27                       # one P4D/PGD entry maps 512 GiB


def notify_protection(mm: Mm, start: int, end: int) -> None:
    """change_pud_range (6.12+) starts one PROTECTION_VMA invalidation per 512 GiB chunk,
    at the first PUD slot that is not none (a PMD table or a PUD leaf), up to the
    chunk's end."""
    if not mm.watched():
        return                            # nobody subscribed: skip the slot scan
    slots = sorted(mm.pmd_tables | {vpn // PUD_PAGES for vpn, pte in mm.ptes.items()
                                    if isinstance(pte, PudPte)})
    a = start
    while a < end:
        b = min(end, (a // P4D_PAGES + 1) * P4D_PAGES)
        first = next((s for s in slots if a // PUD_PAGES <= s <= (b - 1) // PUD_PAGES), None)
        if first is not None:
            mm.notify("protection_vma", max(a, first * PUD_PAGES), b, None)
        a = b


def change_pte_range(mm: Mm, vma: Vma) -> None:
    """pte_modify(newprot) on every present PTE of the VMA, then MM_CP_TRY_CHANGE_WRITABLE.

    A private mapping's vm_page_prot never has the write bit; a shared shmem
    mapping's has it exactly when the VMA is writable (no write-notify for shmem).
    """
    for vpn in mm.vpns_in(vma.start, vma.end):
        pte = mm.ptes.get(vpn)
        if pte is None:
            continue                      # a PUD split (zapped) earlier in this walk
        if isinstance(pte, PudPte):
            if vpn % HPAGE_PUD_NR == 0 and vpn + HPAGE_PUD_NR <= vma.end:
                change_huge_pud(vma, pte.pud)
            elif vpn == vma.start or vpn % HPAGE_PUD_NR == 0:
                mm.split_huge_pud(vpn >> 18)   # change_pud_range: not the whole slot
            continue
        if isinstance(pte, HugePte):
            if vpn % HPAGE_PMD_NR == 0:
                change_huge_pmd(mm, vma, vpn >> 9)   # the VMA holds the whole block
            continue
        if not pte.present:
            continue                      # swap / device-exclusive (6.15+) entries stay
        # vm_page_prot: write bit only for shared rw without write-notify (vma_set_page_prot)
        pte.writable = vma.shared and vma.prot.write and not vma_wants_writenotify(vma)
        if not pte.writable and vma.prot.write and can_change_pte_writable(vma, pte):
            pte.writable = True


def change_huge_pud(vma: Vma, pud: Pud) -> None:
    """change_huge_pud: pud_modify(vm_page_prot) keeps dirty and soft-dirty and takes the
    write bit from vm_page_prot (no MM_CP_TRY_CHANGE_WRITABLE at PUD level): a pfnmap
    mapping wants write-notify, so its PUD ends read-only."""
    pud.writable = vma.shared and vma.prot.write and not vma_wants_writenotify(vma)


def do_mprotect(mm: Mm, vpn: int, npages: int, prot: Prot) -> Optional[Errno]:
    """do_mprotect_pkey: walk the VMAs from vpn, mprotect_fixup each piece, stop at a hole."""
    if npages == 0:
        return None
    end = vpn + npages
    if end > ADDR_LIMIT_PAGES:
        return Errno.ENOMEM               # start + len wraps
    # Past TASK_SIZE is no special case: it is a hole like any other.
    if mm.find_vma(vpn) is None:
        return Errno.ENOMEM
    err = None
    cursor = vpn
    for vma in list(mm.vmas):
        if vma.end <= vpn or vma.start >= end:
            continue
        if vma.start > cursor:
            err = Errno.ENOMEM            # a hole: stop, earlier pieces stay changed
            break
        cursor = vma.end
        if vma.prot == prot:
            continue                      # mprotect_fixup: newflags == oldflags -> no split
        a, b = max(vma.start, vpn), min(vma.end, end)
        mm.split_at(a)                    # vma_modify_flags: __split_vma (vma_adjust_trans_huge)
        mm.split_at(b)
        piece = mm.find_vma(a)
        assert piece is not None and (piece.start, piece.end) == (a, b)
        notify_protection(mm, a, b)
        piece.prot = prot
        change_pte_range(mm, piece)
    if err is None and cursor < end:
        err = Errno.ENOMEM
    mm.vmas = merge_range(mm.vmas, vpn, end)
    return err
