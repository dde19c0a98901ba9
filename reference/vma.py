"""VMAs: split, merge and anon_vma bookkeeping (mm/vma.c, mm/rmap.c).

Rules:
- A split (__split_vma) gives both halves the same backing, flags and anon_vma.
- Two adjacent VMAs merge (vma_merge_existing_range / vma_merge_new_range via
  is_mergeable_vma + is_mergeable_anon_vma) when prot, sharing, backing with
  contiguous pgoff and madvise flags are equal and their anon_vmas are
  compatible: equal, or one is NULL and the other is NULL or has a singular
  anon_vma chain (not inherited through fork).
- anon_vma_prepare reuses a neighbour's anon_vma when find_mergeable_anon_vma
  allows it (next first, then prev; anon_vma_compatible ignores only the
  access flags), else allocates a new one.
Merging happens only where an op changed the list (mmap, mprotect, madvise):
the changed pieces with each other and with their neighbours just below and
above. Elsewhere adjacent VMAs may stay apart although they look mergeable,
e.g. after fork gives WIPEONFORK copies no anon_vma (found by the fuzzer
against an earlier whole-list merge).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Optional

from .ops import Prot
from .shmem import ShmemFile

_anon_vma_ids = itertools.count(1)


def anon_vma_alloc() -> int:
    """A fresh anon_vma identity."""
    return next(_anon_vma_ids)


@dataclass
class Vma:
    """[start, end) in pages with its protection, backing and flags."""

    start: int
    end: int
    prot: Prot
    shared: bool
    file: Optional[ShmemFile]      # None: private anonymous memory
    pgoff: int                     # file page of `start`; for private anon, start's vpn
    dontfork: bool = False         # VM_DONTCOPY (MADV_DONTFORK)
    wipeonfork: bool = False       # VM_WIPEONFORK
    mergeable: bool = False        # VM_MERGEABLE (MADV_MERGEABLE: KSM may scan it)
    hugepage: bool = False         # VM_HUGEPAGE (MADV_HUGEPAGE)
    nohugepage: bool = False       # VM_NOHUGEPAGE (MADV_NOHUGEPAGE)
    pfnmap: bool = False           # VM_PFNMAP|VM_IO|VM_DONTEXPAND: a device-memory BO (devmem.py)
    anon_vma: Optional[int] = None
    anon_vma_forked: bool = False  # anon_vma_chain not singular (anon_vma_fork)
    # VM_SOFTDIRTY: set on every new mapping (__mmap_complete), copied by fork (dup_mmap)
    # and __split_vma (both copy vm_flags), cleared by clear_refs (softdirty.py)
    softdirty: bool = True

    @property
    def is_anon(self) -> bool:
        """vma_is_anonymous: private anonymous memory (shared anon is shmem-backed)."""
        return self.file is None

    def contains(self, vpn: int) -> bool:
        return self.start <= vpn < self.end

    def pgoff_of(self, vpn: int) -> int:
        """linear_page_index: the file page mapped at vpn."""
        return self.pgoff + (vpn - self.start)

    def madvise_flags(self) -> tuple[str, ...]:
        return tuple(w for w, on in (("dontfork", self.dontfork), ("hugepage", self.hugepage),
                                     ("mergeable", self.mergeable),
                                     ("nohugepage", self.nohugepage),
                                     ("wipeonfork", self.wipeonfork)) if on)

    def view_flags(self) -> tuple[str, ...]:
        """The flag words of the canonical VMA view: madvise state plus `softdirty`
        (VM_SOFTDIRTY), sorted."""
        return tuple(sorted(self.madvise_flags() + (("softdirty",) if self.softdirty else ())
                            + (("pfnmap",) if self.pfnmap else ())))

    def same_flags(self, other: "Vma") -> bool:
        """The vm_flags besides the access bits agree (madvise state)."""
        return (self.dontfork == other.dontfork and self.wipeonfork == other.wipeonfork
                and self.mergeable == other.mergeable and self.hugepage == other.hugepage
                and self.nohugepage == other.nohugepage)

    def split(self, at: int) -> tuple["Vma", "Vma"]:
        """__split_vma: two VMAs with the same attributes (and anon_vma)."""
        assert self.start < at < self.end, f"split at {at:#x} outside ({self.start:#x}, {self.end:#x})"
        lo = replace(self, end=at)
        hi = replace(self, start=at, pgoff=self.pgoff + (at - self.start))
        return lo, hi


def vma_soft_dirty_enabled(vma: Vma) -> bool:
    """vma_soft_dirty_enabled (include/linux/mm.h): tracking is on once clear_refs
    cleared VM_SOFTDIRTY (CONFIG_MEM_SOFT_DIRTY modelled on)."""
    return not vma.softdirty


def pte_needs_soft_dirty_wp(vma: Vma, soft_dirty: bool) -> bool:
    """pte_needs_soft_dirty_wp (mm/internal.h): tracking is on and the entry is not
    soft-dirty, so a write must fault first to set the bit."""
    return vma_soft_dirty_enabled(vma) and not soft_dirty


def vma_wants_writenotify(vma: Vma) -> bool:
    """vma_wants_writenotify (mm/mmap.c) for our shmem mappings: only a shared writable
    VMA; shmem_vm_ops has no page_mkwrite and shmem cannot write back
    (vma_fs_can_writeback false), so only soft-dirty tracking asks for write faults.
    vma_set_page_prot then drops the write bit from vm_page_prot. (The model derives
    vm_page_prot from the flags at each use; the kernel recomputes it at mmap,
    mprotect and clear_refs, which is the same for every op we have.)"""
    if vma.pfnmap:
        return vma.shared and vma.prot.write      # the BO's vm_ops->pfn_mkwrite
    return vma.shared and vma.prot.write and vma_soft_dirty_enabled(vma)


def _anon_vma_compatible_for_merge(a: Vma, b: Vma) -> bool:
    """is_mergeable_anon_vma: NULL merges with a singular chain; else must be equal."""
    if a.anon_vma is None:
        return b.anon_vma is None or not b.anon_vma_forked
    if b.anon_vma is None:
        return not a.anon_vma_forked
    return a.anon_vma == b.anon_vma


def can_merge(a: Vma, b: Vma) -> bool:
    """is_mergeable_vma + pgoff contiguity + is_mergeable_anon_vma for a directly below b."""
    return (a.end == b.start and a.prot == b.prot and a.shared == b.shared
            and not a.pfnmap and not b.pfnmap          # VM_SPECIAL never merges
            and a.file is b.file and b.pgoff == a.pgoff + (a.end - a.start)
            and a.same_flags(b) and _anon_vma_compatible_for_merge(a, b))


def merge_range(vmas: list[Vma], start: int, end: int) -> list[Vma]:
    """vma_modify / vma_merge_new_range after an op changed [start, end): merge every
    mergeable adjacent pair whose boundary lies in [start, end] (list sorted by start)."""
    out: list[Vma] = []
    for v in vmas:
        a = out[-1] if out else None
        if a is not None and start <= a.end <= end and can_merge(a, v):
            # is_mergeable_vma ignores VM_SOFTDIRTY; the merged VMA keeps it if either had
            # it (__mmap_complete sets it on an expanded VMA; "mm: propagate VM_SOFTDIRTY
            # on merge" for vma_merge_existing_range)
            out[-1] = replace(a, end=v.end, anon_vma=a.anon_vma if a.anon_vma is not None else v.anon_vma,
                              anon_vma_forked=a.anon_vma_forked or v.anon_vma_forked,
                              softdirty=a.softdirty or v.softdirty)
        else:
            out.append(v)
    return out


def _reusable_anon_vma(old: Vma, a: Vma, b: Vma) -> Optional[int]:
    """reusable_anon_vma: old's anon_vma if a/b are anon_vma_compatible and old's chain is singular."""
    compatible = (a.end == b.start and a.file is b.file and a.shared == b.shared
                  and a.same_flags(b) and b.pgoff == a.pgoff + (b.start - a.start))
    if compatible and old.anon_vma is not None and not old.anon_vma_forked:
        return old.anon_vma
    return None


def anon_vma_prepare(vmas: list[Vma], i: int) -> None:
    """Give vmas[i] an anon_vma: a neighbour's (find_mergeable_anon_vma) or a new one."""
    vma = vmas[i]
    if vma.anon_vma is not None:
        return
    found = None
    if i + 1 < len(vmas):
        found = _reusable_anon_vma(vmas[i + 1], vma, vmas[i + 1])
    if found is None and i > 0:
        found = _reusable_anon_vma(vmas[i - 1], vmas[i - 1], vma)
    vma.anon_vma = found if found is not None else anon_vma_alloc()
