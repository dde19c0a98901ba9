"""KSM (mm/ksm.c): MADV_MERGEABLE / MADV_UNMERGEABLE and one deterministic ksmd pass.

`ksm_scan` walks processes by pid, their VM_MERGEABLE VMAs by address, pages by vpn
(cmp_and_merge_page for each present anon page; the zero page and KSM pages are
skipped). The kernel's checksum rule (a page must be unchanged across two passes) is
skipped, as SPEC §3 says. For a page of value v:
- a KSM page holding v exists (stable tree): merge into it
  (try_to_merge_with_ksm_page);
- else the first page of v waits in the unstable tree; a later page of v on a
  different frame merges with it (try_to_merge_two_pages): the LATER page becomes
  the KSM page and the waiting page is remapped onto it; if the waiting page cannot
  be write-protected (pinned, or locked), the new KSM page is broken again
  (break_cow: an unshare copy) and the waiting page keeps waiting.
Merging a page: folio_trylock (a locked page fails, silently), write_protect_page
(CLEAR invalidation; fails when references beyond the mappings and the swap cache
exist, i.e. a pin: mapcount + 1 + swapped != refcount; else read-only, clean,
AnonExclusive cleared) and, into an existing KSM page, replace_page (CLEAR; the
entry maps the KSM page read-only, clean, not soft-dirty).
The result is the pages_sharing change: sum over stable KSM pages of (mappings - 1).
A frame that became KSM but whose partner failed (break_cow) gets no stable node:
nothing merges into it later (checked on 6.18).
"""
from __future__ import annotations

from .fault import handle_pte_fault
from .folio import Folio
from .mm import Mm
from .folio import SubPage
from .pagetable import Pte


def _scannable(pte: Pte) -> bool:
    """An anon order-0 page. Pages of THPs are never scanned (approximation: the kernel
    splits the folio when it finds a match, try_to_merge_one_page)."""
    page = pte.page
    return (pte.present and isinstance(page, Folio) and page.anon and not page.ksm
            and not isinstance(page, SubPage))


def write_protect_page(mm: Mm, vpn: int) -> bool:
    """try_to_merge_one_page's lock + write_protect_page; False when it fails."""
    pte = mm.ptes[vpn]
    page = pte.page
    assert isinstance(page, Folio)
    if page.locked:
        return False                              # folio_trylock
    mm.notify("clear", vpn, vpn + 1, None)
    swapped = 1 if page.swap_slot is not None else 0
    if page.mapcount + swapped != page.refcount:
        return False                              # a pin (or another GUP reference)
    page.anon_exclusive = False                   # folio_try_share_anon_rmap_pte
    pte.writable = False
    pte.dirty = False                             # pte_mkclean (soft-dirty stays)
    return True


def replace_page(mm: Mm, vpn: int, kpage: Folio) -> None:
    mm.notify("clear", vpn, vpn + 1, None)
    mm.zap_pte(vpn)
    mm.set_pte(vpn, Pte(kpage))                   # mk_pte(kpage, vm_page_prot): r, clean


def break_cow(mm: Mm, vpn: int) -> None:
    """An UNSHARE fault on a KSM page (break_ksm): the entry gets a private copy."""
    i = mm.find_vma_index(vpn)
    assert i is not None
    handle_pte_fault(mm, i, vpn, write=False, unshare=True)


def _pages_sharing(procs: list[Mm]) -> int:
    kpages = {id(p.page): p.page for mm in procs for p in mm.ptes.values()
              if p.present and isinstance(p.page, Folio) and p.page.ksm_stable}
    return sum(k.mapcount - 1 for k in kpages.values())


def ksm_scan(procs: list[Mm]) -> int:
    """One full pass; returns the change of pages_sharing."""
    before = _pages_sharing(procs)
    stable: dict[int, Folio] = {}                 # value -> KSM page (the stable tree)
    for mm in procs:                              # the first in (pid, vpn) order per value
        for vpn in sorted(mm.ptes):
            pte = mm.ptes[vpn]
            if pte.present and isinstance(pte.page, Folio) and pte.page.ksm_stable:
                stable.setdefault(pte.page.value, pte.page)
    unstable: dict[int, tuple[Mm, int, Folio]] = {}
    for mm in procs:
        for vma in list(mm.vmas):
            if not vma.mergeable:
                continue
            for vpn in mm.vpns_in(vma.start, vma.end):
                pte = mm.ptes[vpn]
                if not _scannable(pte):
                    continue
                page = pte.page
                assert isinstance(page, Folio)
                kpage = stable.get(page.value)
                if kpage is not None:
                    if write_protect_page(mm, vpn):
                        replace_page(mm, vpn, kpage)
                    continue
                waiting = unstable.get(page.value)
                if waiting is None:
                    unstable[page.value] = (mm, vpn, page)
                    continue
                wmm, wvpn, wpage = waiting
                if wpage is page or wmm.ptes.get(wvpn) is None or wmm.ptes[wvpn].page is not wpage:
                    continue
                if not write_protect_page(mm, vpn):
                    continue
                page.ksm = True                   # folio_set_stable_node
                if write_protect_page(wmm, wvpn):
                    replace_page(wmm, wvpn, page)
                    page.ksm_stable = True                # stable_tree_insert
                    stable[page.value] = page
                    del unstable[page.value]
                else:
                    break_cow(mm, vpn)            # a KSM page with one PTE: break it
    return _pages_sharing(procs) - before


def break_ksm(mm: Mm, start: int, end: int) -> None:
    """unmerge_ksm_pages: an UNSHARE fault on every KSM page mapped in [start, end)."""
    for vpn in mm.vpns_in(start, end):
        pte = mm.ptes[vpn]
        if pte.present and isinstance(pte.page, Folio) and pte.page.ksm:
            break_cow(mm, vpn)
