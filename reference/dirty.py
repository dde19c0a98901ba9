"""Dirty tracking of shared file mappings (mm/mapping_dirty_helpers.c):
wp_shared_mapping_range and clean_record_shared_mapping_range, the helpers a
graphics driver (vmwgfx, seed 000) uses to track which pages of a buffer object
the CPU dirtied.

Rules (kernel functions in brackets):
- The walk goes over the file's address_space (walk_page_mapping): every VMA of
  every process that maps a pgoff in [first, first + nr), visited in interval-tree
  order (vma_interval_tree_foreach: ascending vm_pgoff). Ties between VMAs with the
  same vm_pgoff go in the tree's insertion order in the kernel; the model orders
  them by process, then address (an approximation: insertion order is not kept).
- wp_clean_test_walk refuses a VMA unless VM_SHARED|VM_MAYWRITE (VM_MAYWRITE is
  always set here): a private mapping. walk_page_mapping treats that refusal as
  "stop": `if (err > 0) { err = 0; break; }` -- the walk ENDS at the first private
  VMA it meets; shared VMAs after it in tree order are not visited (unlike
  walk_page_range, which continues).
- Per visited VMA, over the part that maps [first, first + nr): wp_clean_pre_vma
  fires a PROTECTION_PAGE invalidation on that mm over the part, whether or not an
  entry changes.
- wp_pte: a present writable PTE becomes read-only (dirty kept); count it.
- clean_record_pte: a dirty PTE becomes clean (write bit kept); count it and set
  bit (pgoff - bitmap_pgoff); here bitmap_pgoff = first and a fresh bitmap per call.
- Huge entries (wp_clean_pmd_entry / wp_clean_pud_entry): skipped, never split
  (ACTION_CONTINUE; the kernel WARNs if one is writable or dirty).
- nr == 0: the kernel's interval query then wraps (first + nr - 1); callers never
  pass 0, the model does nothing and returns 0.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

from .mm import Mm
from .pagetable import HugePte, Pte, PudPte
from .shmem import ShmemFile
from .vma import Vma


def _mapping_vmas(procs: dict[str, Mm], file: ShmemFile, first: int,
                  nr: int) -> Iterator[tuple[Mm, Vma, int, int]]:
    """walk_page_mapping: (mm, vma, start vpn, end vpn) of each VMA mapping a pgoff of
    [first, first + nr), in tree order, until the first one wp_clean_test_walk refuses."""
    if nr == 0:
        return
    last = first + nr                                      # exclusive
    found = []
    for pname, mm in procs.items():
        for vma in mm.vmas:
            vea = vma.pgoff + (vma.end - vma.start)
            if vma.file is file and vma.pgoff < last and vea > first:
                found.append((vma.pgoff, int(pname[1:]), vma.start, mm, vma))
    found.sort(key=lambda t: t[:3])
    for vba, _, _, mm, vma in found:
        if not vma.shared:                                 # wp_clean_test_walk -> 1
            return                                         # walk_page_mapping: break
        cba = max(first, vba)                              # clip to the vma
        cea = min(last, vba + (vma.end - vma.start))
        yield mm, vma, vma.start + (cba - vba), vma.start + (cea - vba)


def _walk(procs: dict[str, Mm], file: ShmemFile, first: int, nr: int,
          pte_entry: Callable[[Vma, int, Pte], bool]) -> tuple[int, int]:
    """The mm_walk of both helpers: pre_vma invalidation per VMA part, then pte_entry
    on every present PTE; huge entries are skipped, and one that is writable or dirty
    is a WARN_ON of wp_clean_pmd_entry. Return: (PTEs changed, WARN_ONs reached)."""
    total = warns = 0
    for mm, vma, start, end in _mapping_vmas(procs, file, first, nr):
        mm.notify("protection_page", start, end, None)    # wp_clean_pre_vma
        seen: set[tuple[int, int]] = set()
        for vpn in mm.vpns_in(start, end):
            pte = mm.ptes[vpn]
            if isinstance(pte, (HugePte, PudPte)):         # wp_clean_pmd/pud_entry: skipped
                key = (vpn >> 18, -1) if isinstance(pte, PudPte) else (vpn >> 9, 0)
                if key not in seen and (pte.writable or pte.dirty):
                    warns += 1                             # WARN_ON(p?d_write || p?d_dirty)
                seen.add(key)
                continue
            if not pte.present:
                continue                                   # pte_write/pte_dirty of none
            if pte_entry(vma, vpn, pte):
                total += 1
    return total, warns


def wp_shared_mapping_range(procs: dict[str, Mm], file: ShmemFile, first: int,
                            nr: int, warnings: int) -> tuple[int, int]:
    """Write-protect every writable PTE mapping [first, first + nr) of file (wp_pte).
    Return: PTEs actually write-protected (read-only ones are not counted), and the
    machine's WARN_ON count plus this walk's."""
    def wp_pte(vma: Vma, vpn: int, pte: Pte) -> bool:
        if not pte.writable:
            return False
        pte.writable = False                               # pte_wrprotect
        return True
    total, warns = _walk(procs, file, first, nr, wp_pte)
    return total, warnings + warns


def clean_record_shared_mapping_range(procs: dict[str, Mm], file: ShmemFile, first: int,
                                      nr: int, warnings: int) -> tuple[int, list[int], int]:
    """Clean every dirty PTE mapping [first, first + nr) of file and record its pgoff
    (clean_record_pte), bitmap_pgoff = first. Return: (PTEs cleaned, set bits ascending,
    the WARN_ON count as wp_shared_mapping_range)."""
    bits: set[int] = set()

    def clean_record_pte(vma: Vma, vpn: int, pte: Pte) -> bool:
        if not pte.dirty:
            return False
        pte.dirty = False                                  # pte_mkclean (soft-dirty kept)
        bits.add(vma.pgoff_of(vpn) - first)                # __set_bit(pgoff - bitmap_pgoff)
        return True
    total, warns = _walk(procs, file, first, nr, clean_record_pte)
    return total, sorted(bits), warnings + warns


def bits_text(total: int, bits: list[int]) -> str:
    """The clean_record result: ``COUNT bits=a,b,...`` (``bits=none`` when empty)."""
    return f"{total:#x} bits=" + (",".join(f"{b:#x}" for b in bits) if bits else "none")


def file_mapping(files: dict[str, ShmemFile], name: str) -> Optional[ShmemFile]:
    """The named file's address_space, None if it was never created (EBADF)."""
    return files.get(name)
