"""Folio split: an anon THP becomes 512 order-0 folios (mm/huge_memory.c __folio_split,
mm/rmap.c try_to_migrate_one, mm/migrate.c remove_migration_pte).

Rules (Linux 6.18.44):
- can_split_folio: every reference is a mapping (large mapcount == refcount), so a
  pinned folio is refused (-EAGAIN); the caller holds the folio lock.
- unmap_folio walks every mapping (a THP is mapped at the same vpns in every process:
  no mremap): one MMU_NOTIFY_CLEAR per VMA over the folio's extent in that VMA. A huge
  PMD turns into 512 migration entries with the PMD's bits (the freeze path of
  __split_huge_pmd_locked, no notifier of its own; 6.18 as released aborted the walk
  after the first PMD, the stable fix "fix early failure try_to_migrate() when split
  huge pmd for shared thp" walks on, modelled here). A device-exclusive entry becomes a
  readable-exclusive migration entry.
- remove_migration_pte restores each entry as a PTE on the new order-0 folio: write,
  dirty and soft-dirty as recorded, AnonExclusive for writable and readable-exclusive
  entries (a former device-exclusive entry comes back read-only, clean, exclusive).
  RMP_USE_SHARED_ZEROPAGE (6.12+): an all-zero subpage is mapped by the zero page
  instead (try_to_map_unused_to_zeropage: read-only, soft-dirty carried over).
- The new folios inherit PG_dirty; those nothing maps are freed.
Not modelled: VMAs linked to the anon_vma that map none of the folio's pages also
receive the CLEAR in the kernel.
"""
from __future__ import annotations

from typing import Iterable, Optional

from .folio import HPAGE_PMD_NR, ZERO_PAGE, Folio, SubPage, Thp
from .mm import Mm
from .pagetable import HugePte, Pte
from .results import Errno


def thp_at(mm: Mm, vpn: int) -> Optional[Thp]:
    """The THP a present entry at vpn maps (folio_walk_start: no zero pages, nothing
    non-present), or None."""
    pte = mm.ptes.get(vpn)
    if pte is None or not pte.present or not isinstance(pte.page, SubPage):
        return None
    return pte.page.thp


def can_split_folio(thp: Thp) -> bool:
    """can_split_folio: no reference beyond the mappings (a pin fails it)."""
    return thp.large_mapcount() == thp.refcount


def _mapped_vpns(mm: Mm, thp: Thp, base: int) -> list[int]:
    """The vpns of mm's block that map a page of thp (PMD, PTE or device-exclusive)."""
    out = []
    for vpn in mm.vpns_in(base, base + HPAGE_PMD_NR):
        page = mm.ptes[vpn].page
        if isinstance(page, SubPage) and page.thp is thp:
            out.append(vpn)
    return out


def split_folio(mms: Iterable[Mm], thp: Thp, base: int) -> Optional[Errno]:
    """__folio_split of thp, mapped at [base, base + 512) wherever it is mapped, to
    order 0. The caller checked the folio lock. None on success, EBUSY when refused."""
    if not can_split_folio(thp):
        return Errno.EBUSY
    unmapped = [(mm, _unmap_folio(mm, thp, base)) for mm in mms]
    new = [Folio(anon=True, value=page.value, dirty=thp.dirty) for page in thp.pages]
    assert thp.refcount == 0 and thp.large_mapcount() == 0, f"split left {thp!r} referenced"
    for mm, entries in unmapped:                       # remap_page
        for vpn, writable, dirty, soft_dirty, exclusive in entries:
            folio = new[vpn - base]
            if folio.value == 0:                       # try_to_map_unused_to_zeropage
                mm.set_pte(vpn, Pte(ZERO_PAGE, soft_dirty=soft_dirty))
                continue
            if exclusive:
                folio.anon_exclusive = True            # RMAP_EXCLUSIVE
            mm.set_pte(vpn, Pte(folio, writable=writable, dirty=dirty,
                                soft_dirty=soft_dirty))
    return None


def _unmap_folio(mm: Mm, thp: Thp, base: int) -> list[tuple[int, bool, bool, bool, bool]]:
    """try_to_migrate in one process: a CLEAR per VMA mapping the folio, then every
    mapping becomes a migration entry (vpn, write, dirty, soft-dirty, exclusive); a
    dirty entry dirties the folio (folio_mark_dirty)."""
    vpns = _mapped_vpns(mm, thp, base)
    if not vpns:
        return []
    for vma in mm.vmas_in(vpns[0], vpns[-1] + 1):
        if not any(vma.contains(v) for v in vpns):
            continue                                   # maps none of its pages
        mm.notify("clear", max(base, vma.start), min(base + HPAGE_PMD_NR, vma.end), None)
    entries = []
    first = mm.ptes[vpns[0]]
    if isinstance(first, HugePte):                     # __split_huge_pmd_locked, freeze
        pmd = first.pmd
        entries = [(vpn, pmd.writable, pmd.dirty, pmd.soft_dirty, thp.head.anon_exclusive)
                   for vpn in vpns]
        mm.zap_pmd(base >> 9)
        mm.tables.add(base >> 9)                       # the deposited PTE table
    else:
        for vpn in vpns:
            pte = mm.ptes[vpn]
            if pte.devexcl:                            # readable-exclusive, clean
                entries.append((vpn, False, False, pte.soft_dirty, True))
            else:
                entries.append((vpn, pte.writable, pte.dirty, pte.soft_dirty,
                                pte.page.anon_exclusive))
            mm.zap_pte(vpn)
    if any(e[2] for e in entries):
        thp.dirty = True
    return entries
