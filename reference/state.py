"""Observations: the canonical state snapshot both models report (SPEC §4.2).

Each model fills a ``RawSnapshot`` with its own frame keys (any hashable: a
folio object, a pfn). ``canonicalize`` renames frames by first appearance
(processes by pid, pages by vpn, then pins, then files) so that sharing is
compared and raw ids never are, and flattens everything into an ordered
``{field path: text}`` map that the differ compares key by key.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Hashable, Optional

from .ops import Prot


class EntryKind(enum.Enum):
    """What a page-table entry maps (SPEC §4.2)."""

    NONE = "none"
    ZERO = "zero"        # the shared zero page (pte_special)
    HZERO = "hzero"      # the huge zero folio (PMD)
    ANON = "anon"
    FILE = "file"        # a page-cache (shmem) page
    PFN = "pfn"          # a raw PFN of device memory (VM_PFNMAP)
    SWAP = "swap"
    DEVEXCL = "devexcl"  # a non-present device-exclusive entry


class Level(enum.Enum):
    PTE = "pte"
    PMD = "pmd"
    PUD = "pud"


# Frame keys of the two zero pages; models use these instead of their own key so
# that every model names them alike. They carry no counts (kernel: pte_special).
ZERO_KEY = "zero"
HZERO_KEY = "hzero"


@dataclass(frozen=True)
class PageView:
    """One mapped page as a model reports it."""

    kind: EntryKind
    level: Level
    writable: bool
    dirty: bool
    soft_dirty: bool
    excl: bool                  # PageAnonExclusive (anon only)
    frame: Optional[Hashable]   # model's frame key; None when no frame (swap, none)

    def describe(self) -> str:
        """The `state` probe's text: e.g. ``anon pte rw dirty excl`` or ``pfn pmd r``."""
        key = (self.kind, self.level, self.writable, self.dirty, self.soft_dirty, self.excl)
        text = _DESCRIBED.get(key)
        if text is None:
            text = _DESCRIBED[key] = _describe(*key)
        return text


def _describe(kind: EntryKind, level: Level, writable: bool, dirty: bool, soft_dirty: bool,
              excl: bool) -> str:
    if kind is EntryKind.NONE:
        return "none"
    words = [kind.value, level.value, "rw" if writable else "r"]
    if dirty:
        words.append("dirty")
    if soft_dirty:
        words.append("softdirty")
    if excl:
        words.append("excl")
    return " ".join(words)


_DESCRIBED: dict[tuple, str] = {}   # a few dozen distinct entry descriptions: memoized


NONE_PAGE = PageView(EntryKind.NONE, Level.PTE, False, False, False, False, None)


@dataclass(frozen=True)
class VmaView:
    """One VMA: [start, end) in pages, protection, flags, backing and madvise state."""

    start: int
    end: int
    prot: Prot
    shared: bool
    file: Optional[str]      # None for private anon; "anon" mappings that are shared
                             # report the hidden shmem object as None too
    pgoff: int               # file offset of `start`, in pages (0 for anon)
    flags: tuple[str, ...]   # sorted madvise state: dontfork, wipeonfork, hugepage, ...
    anon_vma: bool           # vma->anon_vma != NULL (decides vma_needs_copy)

    def describe(self) -> str:
        back = "anon" if self.file is None else f"{self.file}@{self.pgoff:#x}"
        words = [f"{self.start:#x}-{self.end:#x}", self.prot.value,
                 "shared" if self.shared else "private", back, *self.flags]
        if self.anon_vma:
            words.append("anon_vma")
        return " ".join(words)


@dataclass(frozen=True)
class FrameView:
    """Per-frame (4 KiB page) counters and contents."""

    mapcount: int
    pincount: int
    value: int
    locked: bool = False        # the folio lock, held by a `lock` op
    ksm: bool = False           # a KSM (merged) page
    head: Optional[Hashable] = None   # subpage of a THP: the THP's key (in RawSnapshot.folios)
    idx: int = 0                      # ... and its index in the THP (0..511)


@dataclass(frozen=True)
class ThpView:
    """A THP (order-9 anon folio) as a whole: PMD mappings, pins, lock, contents.

    `values` lists the non-zero subpage values as (index, value), ascending index."""

    entire: int                 # entire_mapcount: PMDs mapping the whole folio
    pincount: int
    values: tuple[tuple[int, int], ...]
    locked: bool = False


@dataclass(frozen=True)
class DevmemView:
    """A device-memory buffer object: size, non-zero page values (pgoff, value) ascending,
    and whether dirty tracking began."""

    pages: int
    values: tuple[tuple[int, int], ...]
    tracked: bool


@dataclass(frozen=True)
class SlotView:
    """A swap slot: entries referencing it, the contents written out, the swap-cache frame."""

    count: int
    value: int
    cache: Optional[Hashable]   # frame key of the swap-cache folio, or None


@dataclass
class DeviceView:
    """A device: its mirror (hmm) table and the invalidations received since `devents`."""

    mirror: dict[tuple[str, int], tuple[Hashable, str]] = field(default_factory=dict)
    # (proc, vpn) -> (frame key, "r" | "rw" | "atomic")
    events: list[str] = field(default_factory=list)   # pending items, sorted (event_text)


@dataclass(frozen=True)
class SubView:
    """A live interval-notifier subscription."""

    dev: str
    proc: str
    start: int
    end: int
    seq: int                    # invalidations the device processed for it

    def describe(self) -> str:
        return f"{self.dev} {self.proc} {self.start:#x}-{self.end:#x} seq={self.seq}"


def event_text(sub: str, kind: str, start: int, end: int, owner: Optional[str]) -> str:
    """One `devents` item: ``m1:clear@0x100+0x1`` or ``m2:exclusive(d0)@0x100+0x1``."""
    k = kind if owner is None or kind != "exclusive" else f"exclusive({owner})"
    return f"{sub}:{k}@{start:#x}+{end - start:#x}"


def event_sort_key(item: str) -> tuple[int, int, int, str]:
    """Order of `devents` items: subscription index, start, length, kind."""
    sub, _, rest = item.partition(":")
    kind, _, rng = rest.partition("@")
    start, _, n = rng.partition("+")
    return (int(sub[1:]), int(start, 16), int(n, 16), kind)


@dataclass
class ProcView:
    vmas: list[VmaView] = field(default_factory=list)
    pages: dict[int, PageView] = field(default_factory=dict)   # vpn -> page (non-none only)


@dataclass
class RawSnapshot:
    """What a model reports, keyed by its own frame keys."""

    procs: dict[str, ProcView] = field(default_factory=dict)          # live processes by name
    frames: dict[Hashable, FrameView] = field(default_factory=dict)   # every referenced frame
    pins: dict[str, list[Hashable]] = field(default_factory=dict)     # handle -> frames pinned
    devices: dict[str, DeviceView] = field(default_factory=dict)      # devices with state
    subs: dict[str, SubView] = field(default_factory=dict)            # live subscriptions
    slots: dict[Hashable, SlotView] = field(default_factory=dict)     # every referenced slot
    files: dict[str, dict[int, Hashable]] = field(default_factory=dict)  # file -> pgoff -> frame
    folios: dict[Hashable, ThpView] = field(default_factory=dict)     # every referenced THP
    devmem: dict[str, DevmemView] = field(default_factory=dict)       # buffer objects by name
    warnings: int = 0                                                  # kernel WARN_ONs reached


def _name_order(name: str) -> tuple[str, int]:
    return (name[0], int(name[1:]))


def canonicalize(raw: RawSnapshot) -> dict[str, str]:
    """Flatten a snapshot to ``{path: text}`` with frames named F0, F1, ... by first appearance.

    Order of appearance: processes by pid, their pages by vpn; then pins by
    handle; then device mirrors by device, process, vpn; then files by name,
    pages by pgoff. The zero pages keep their
    names. Frames nothing references are not reported.
    """
    names: dict[Hashable, str] = {ZERO_KEY: "zero", HZERO_KEY: "hzero"}
    counts = {"F": 0, "S": 0}

    def cname(key: Optional[Hashable]) -> str:
        if key is None:
            return "-"
        if isinstance(key, tuple) and key[0] == "dev":
            return f"{key[1]}:{key[2]:#x}"       # a device page: (BO, pgoff) is its PFN
        if key not in names:
            fv = raw.frames.get(key)
            if fv is not None and fv.head is not None:
                names[key] = f"{cname(fv.head)}.{fv.idx}"
                return names[key]
            prefix = "S" if key in raw.slots else "F"
            names[key] = f"{prefix}{counts[prefix]}"
            counts[prefix] += 1
            if prefix == "S":
                cname(raw.slots[key].cache)     # a slot's cache frame is named right after it
        return names[key]

    out: dict[str, str] = {}
    for pname in sorted(raw.procs, key=_name_order):
        proc = raw.procs[pname]
        for i, vma in enumerate(proc.vmas):
            out[f"{pname} vma[{i}]"] = vma.describe()
        for vpn in sorted(proc.pages):
            page = proc.pages[vpn]
            out[f"{pname} page {vpn:#x}"] = f"{page.describe()} {cname(page.frame)}"
    for hname in sorted(raw.pins, key=_name_order):
        out[f"{hname} pages"] = ",".join(cname(k) for k in raw.pins[hname])
    for dname in sorted(raw.devices, key=_name_order):
        dev = raw.devices[dname]
        for (pname, vpn) in sorted(dev.mirror, key=lambda pv: (_name_order(pv[0]), pv[1])):
            key, perm = dev.mirror[(pname, vpn)]
            out[f"{dname} mirror {pname} {vpn:#x}"] = f"{perm} {cname(key)}"
        if dev.events:
            out[f"{dname} events"] = " ".join(sorted(dev.events, key=event_sort_key))
    for sname in sorted(raw.subs, key=_name_order):
        out[f"{sname}"] = raw.subs[sname].describe()
    for fname in sorted(raw.devmem, key=_name_order):
        dv = raw.devmem[fname]
        vals = ",".join(f"{i:#x}:{v:#x}" for i, v in dv.values) or "-"
        out[f"{fname} devmem"] = f"pages={dv.pages:#x} vals={vals}" + (
            " tracked" if dv.tracked else "")
    if raw.warnings:
        out["warnings"] = str(raw.warnings)
    for fname in sorted(raw.files, key=_name_order):
        for pgoff, key in sorted(raw.files[fname].items()):
            out[f"{fname} pgoff {pgoff:#x}"] = cname(key)
    for key, cn in sorted(names.items(), key=lambda kv: _frame_order(kv[1])):
        if cn in ("zero", "hzero"):
            continue
        if cn.startswith("S"):
            sv = raw.slots[key]
            out[f"slot {cn}"] = (f"count={sv.count} val={sv.value:#x} "
                                 f"cache={names[sv.cache] if sv.cache is not None else '-'}")
            continue
        if key in raw.folios:
            tv = raw.folios[key]
            vals = ",".join(f"{i}:{v:#x}" for i, v in tv.values) or "-"
            out[f"frame {cn}"] = (f"order=9 entire={tv.entire} pin={tv.pincount} vals={vals}"
                                  + (" locked" if tv.locked else ""))
            continue
        fv = raw.frames[key]
        out[f"frame {cn}"] = (f"map={fv.mapcount} pin={fv.pincount} val={fv.value:#x}"
                              + (" locked" if fv.locked else "") + (" ksm" if fv.ksm else ""))
    return out


def _frame_order(cn: str) -> tuple[int, int, int]:
    """zero pages, then F0, F0.0, F0.1, ..., F1, ..., then S0, S1, ..."""
    if cn[0] not in "FS":
        return (0, 0, -1)
    num, _, sub = cn[1:].partition(".")
    return (1 if cn[0] == "F" else 2, int(num), int(sub) if sub else -1)
