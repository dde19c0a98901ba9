"""The byte decoder: any byte string is a program (atheris/libFuzzer input -> Prog).

``decode(data)`` is total: it never raises, every op kind of ALL_OPS is reachable,
and every name it emits exists at that line for the text parser (fuzz/text.py), so
``parse(format_prog(decode(data)))`` always succeeds. ``encode(prog)`` (fuzz/encoder.py)
is its inverse on valid programs: ``decode(encode(p)).ops() == p.ops()``.

Byte format (syzkaller prog/rand.go chooses args relative to the program's own
resources; here the resources are a small model of what the program created so far):

- The input is a sequence of records, one op each, at most MAX_OPS ops.
- A record is RECORD_SIZE = 6 fixed bytes ``[selector, s0, s1, s2, s3, s4]`` plus an
  extension: for each *used* slot byte equal to ESC (0xff), in slot order, one
  literal LEB128 varint (at most MAX_VARINT bytes; the last byte's high bit is
  ignored). A record cut short by the end of the input ends the program cleanly.
- ``selector`` picks the op kind through the 256-entry table built from OP_WEIGHTS
  (weighted toward the ops the models support; every kind has at least one entry).
  Substitutions (decoder._needs), reading the same slot bytes: an op that needs a
  name kind none of which exists yet (``pread`` before any ``pin``) becomes the op
  that creates it; when slot 0 is clustered, an access (read, write, munmap, ...)
  to a process with no tracked VMA becomes an ``mmap`` there, an ``exit`` of the
  last live process becomes a ``fork``, a pin access (pread, pwrite, unpin) while
  no pin is live becomes a ``pin`` (unless slot 0 asks for a dead handle on purpose,
  >= _ANY_PIN), likewise ``unmirror`` -> ``mirror``, a device access (dread, dwrite,
  dexcl, datomic) while no live subscription watches a tracked VMA -> ``mirror``,
  ``unlock`` with no lock tracked -> ``lock``, and ``ksm_scan`` while no tracked VMA
  is mergeable -> ``madvise ... mergeable`` (_MERGE_KEY). A literal slot 0 (ESC)
  turns all but the first off, so the encoder can still write such ops exactly.
- Slots are the op's arguments in the order of ``_SPECS`` (unused slots are
  ignored; their bytes are still part of the fixed record, so a selector flip does
  not shift the rest of the input). A slot byte other than ESC is a *clustered*
  choice relative to the tracked state (``_Track``): a live process, pin or
  subscription by creation index; a VPN at the start/end/middle/edge of one of the
  process's tracked VMAs, on a 512-page boundary, in a fresh area, or deliberately
  invalid (0, below 16, beyond TASK_SIZE, past 2^52); a length of 1, a few pages,
  the rest of the VMA, 512, 0 or past TASK_SIZE; small or extreme values. ESC
  makes the slot a *literal*: the varint gives the exact argument (numbers masked
  to 64 bits, names by index, enums by index), so any valid program can be encoded.
- A populating op (``mmap ... populate``, ``madvise populate_*`` or ``pin`` over
  tracked VMAs) walks at most POPULATE_MAX pages: decode caps npages there (the
  models fault page by page; a 2^30-page populate stalls the fuzzer) and encode
  refuses larger ones.
- Pins and poke (SPEC §3, reference/gup.py): ``pin`` targets a tracked VMA (for
  most bytes not a PROT_NONE one) with 1 page, a few, the rest of the VMA (capped
  at PIN_CAP), all of it, past its end, a PMD, and sometimes 0 or more than
  PIN_MAX_PAGES (EFAULT before any walk); its mode is any of the four (FOLL_WRITE
  5 in 8; read-only modes on a VMA without VM_WRITE). pread/pwrite/unpin name live
  handles (pwrite: FOLL_WRITE ones first), the index mostly inside the pin. Once
  pins exist, one VPN choice in 8 of every access (read, write, munmap, madvise,
  mprotect, poke, another pin) is a page of a recent pin still mapped there.
  ``poke`` aims half its bytes at VMAs the CPU cannot write (read-only or
  PROT_NONE: a private one gets a FOLL_FORCE COW, a shared one is EIO) or at
  shared ones.
- Devices (spec/device.md): ``mirror`` watches d0..d2 (rarely d3, d4) over a tracked
  VMA (its rest, a few pages, several VMAs, everything up to 2^52, sometimes an
  empty or wrapping range: EOVERFLOW). dread/dwrite/dexcl/datomic/devents name the
  device of a recent live subscription whose range meets a tracked VMA, its
  process, and a page of that overlap (writable VMAs for dwrite, private writable
  ones for dexcl/datomic), or an earlier grant; one byte value in 16 per slot
  leaves that (EINVAL, EFAULT paths). ``lock`` aims at granted, paged-out or
  recently written pages, ``unlock`` at recent locks. Grants, locks, pageout
  ranges and pages a device read or wrote become *hot*: one VPN choice in 16 of
  every access is a hot page still mapped there, and fork's process is the newest
  hot one for a quarter of its bytes, so CPU faults, fork, mprotect, munmap and pins
  meet device-exclusive, mirrored and swap entries.
- Swap and KSM: madvise draws its advice first; pageout, mergeable and unmergeable
  then aim at recently written pages (mergeable also at the whole process), and
  mergeable ranges are kept for one VPN choice in 16. Values written inside a
  tracked mergeable VMA come from a 2-4 value alphabet (elsewhere half the time),
  so ksm_scan finds equal pages; writes then COW the KSM pages.
- THP and dirty tracking (issue 5, spec/cow-thp.md): a quarter of mmap VPNs are fresh
  512-aligned areas, where mmap's length is mostly whole blocks (512, 1024 pages) and
  its flags mostly private anon (MMAP_NPAGES, PROTFLAGS); within _FRESH_OPS ops such a
  block is madvised hugepage (_needs turns a read or write into that madvise while
  `set thp madvise` holds), and madvise's advice table has hugepage, nohugepage and
  collapse, aimed at such VMAs (collapse at the block of a recent write). _vpn mode 6
  aims every access (read, write, munmap, mprotect, dontneed, pin, poke, fork's
  faults) at a block's first page, last page, or a single page inside (a range op
  there cuts the block: split), preferring recently written blocks that fault in
  a THP (t.thps) and VMAs where faults would now make one; ``split`` aims at those
  pages and their processes. ``set`` is mostly thp (always half the time) and
  thp_zero, rarely thp_alloc (a ``fail`` is ended a few ops later: _needs turns a
  read or write into ``set thp_alloc ok``) or max_ptes_none. ``clean_record`` and
  ``wp_range`` aim at files and pgoffs of shared file mappings, first at pages a
  CPU write dirtied (t.dirtied); with nothing dirtied, _needs turns them into a
  write through a writable shared file mapping, or into an mmap creating one.
- Device memory (devmem.md): one ``file`` in 4 is ``devmem`` (decoded before its
  size: a BO of mostly 512..2048 pages, _DEV_SIZES, sometimes small or empty). While
  a BO exists, mmap's prot/flags bytes 0x80-0x9f give ``shared,pfnmap`` (from 0x9c
  ``private,pfnmap``: EINVAL) and its (file, off) a BO with a 512-aligned offset
  where N fits, sometimes unaligned, past the end, or a shmem file (_pfn_fileoff);
  other file mmaps avoid BOs for most bytes. Within _FRESH_OPS ops of a new BO,
  _needs turns a read or write into a pfnmap of it (_DEVMAP_KEY: a fresh aligned
  VPN past the THP areas, or 0) and within _FRESH_OPS ops of a pfnmap with whole
  aligned blocks, into a read or write of one of its pages (_PFN_READ_KEY /
  _PFN_WRITE_KEY: the fault that inserts a special PMD). _vpn mode 15 and split
  (bytes 0xc0-0xdf; its process 0x80-0x9f) aim at pages of those blocks (t.pfns),
  so reads, writes, range ops (1 page, 512), split and fork meet special PMDs;
  writes through pfnmaps count as dirtied, so wp_range / clean_record aim at BOs
  too; fread / fwrite pgoff bytes 0xa0-0xaf hit later blocks of a BO. pin on a
  pfnmap is predicted EFAULT (_pin_ok).
- The tracker is approximate (no faults, no merges, optimistic about errors): it
  only steers choices, it never decides validity; names follow the parser's rules.
  It keeps each VMA's prot/shared/mergeable/hugepage/nohugepage bits and file
  offset (mmap, mprotect, munmap, madvise) and the `set thp` / `thp_alloc`
  settings, and predicts which pins and mirrors succeed, because the models name
  successful pins and subscriptions only.

Locality: records are fixed width and choices are relative to creation indexes
that later ops do not renumber, so flipping one byte changes one op's arguments
(and the later ops that address what that op created), not the whole tail.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.reference import ops as O
from mmdiff.reference.ops import (
    ADDR_LIMIT_PAGES,
    HPAGE_PMD_NR,
    MMAP_MIN_PAGES,
    TASK_SIZE_PAGES,
    U64_MASK,
)

RECORD_SIZE = 6          # selector + NSLOTS slot bytes
NSLOTS = RECORD_SIZE - 1
ESC = 0xFF               # a slot byte that announces a literal varint in the extension
MAX_VARINT = 12          # bytes: 84 bits, enough for the widest packed literal (74 bits)
MAX_OPS = 256            # program length cap
# Pages one populating op (mmap ... populate, madvise populate_*) may walk: the models
# fault page by page, and a 2^30-page populate would stall the fuzzer (walk_too_long).
POPULATE_MAX = 2 * HPAGE_PMD_NR
_MAX_REGIONS = 24        # tracked VMAs per process (creation-indexed, with tombstones)

# Selector weights (sum 256). The issue-3 scope (rules.md) gets most of the mass (70%);
# pins and poke (issue 6) 11% (a pin every ~32 ops, pread/pwrite/unpin on its handles,
# poke; a pin access with no live pin becomes a pin, _needs); the device ops (issue 6:
# mirrors, device reads/writes, exclusive grants, atomics, events, folio locks) 11%
# and ksm_scan 1.2% (madvise pageout/mergeable/unmergeable come through Madvise's
# advice table, _ADVICES); issue 5's THP and dirty-tracking ops 3.9% (5 entries more
# than before issue 5: 1 from pin, 1 each from mirror, dread, dwrite and dexcl, which
# keeps the issue-3 ops at 180 entries; split_folio took one from pwrite): split 2
# entries and split_folio 2 (both aimed at pages of 512-aligned blocks, SPLIT_VPN), set 2 (thp, thp_zero, rarely
# thp_alloc / max_ptes_none; a thp_alloc fail is ended by a `set thp_alloc ok` that
# _needs substitutes for a later read or write), clear_refs 2, clean_record 2,
# wp_range 1 (aimed at files a shared mapping maps, DFILE/DPGOFF/DSPAN); madvise
# hugepage/nohugepage/collapse come through Madvise (23 entries, 3 more than before
# issue 5, taken from read, state and same: 5 THP advices in 32, and hugepage for
# the bytes from 0xc0 while a fresh THP-capable VMA is not madvised yet); the
# 512-aligned private anon mappings through mmap's slots (_vpn_mmap, MMAP_NPAGES,
# PROTFLAGS) and block-aimed accesses through _vpn mode 6. Device memory (issue 5,
# devmem.md) takes no selector entry: devmem BOs come through File's devmem slot (1 in
# 4 files), pfnmaps through mmap's flag bytes (1 in 8 mmaps while a BO exists) and
# _needs (_DEVMAP_KEY after a new BO, _PFN_*_KEY after a pfnmap), accesses through
# _vpn mode 15 / split / the dirtied pages. Every other kind keeps one entry so it
# stays reachable when the models grow.
OP_WEIGHTS: dict[type, int] = {
    O.Mmap: 28, O.Munmap: 12, O.Mprotect: 14, O.Madvise: 23, O.Read: 25, O.Write: 32,
    O.Fork: 11, O.Exit: 4, O.File: 5, O.FileRead: 6, O.FileWrite: 8, O.State: 7,
    O.Same: 5,
    O.Pin: 8, O.PinRead: 5, O.PinWrite: 4, O.Unpin: 4, O.Poke: 6,
    O.Mirror: 5, O.Unmirror: 2, O.DevRead: 4, O.DevWrite: 4, O.DevExclusive: 4,
    O.DevAtomic: 3, O.DevEvents: 2, O.Lock: 2, O.Unlock: 2,
    O.KsmScan: 3,
    O.Split: 2, O.SplitFolio: 2, O.Set: 2, O.ClearRefs: 2, O.CleanRecord: 2, O.WpRange: 1,
}
for _cls in O.ALL_OPS:
    OP_WEIGHTS.setdefault(_cls, 1)


# --- the tracked state ---------------------------------------------------------------

class _Track:
    """What the program created so far, as the decoder (and the encoder) sees it.

    Name counters follow fuzz/text.py's _Names exactly (fork/pin/mirror count even if
    the op will fail), so every emitted name parses; liveness and VMAs are guesses.
    Pins: ``next_pin`` counts `pin` lines (the parser's bound), while the live names
    follow the models' numbering (SPEC §3: only a successful pin gets the next
    ``hK``), predicted by ``_pin_ok``; so pread/pwrite/unpin aim at the handles that
    exist at run time, and every name they use is below the parser's bound.
    Subscriptions likewise: ``next_sub`` counts `mirror` lines, ``subs`` holds the
    names the models give (only a successful mirror gets the next ``mK``,
    ``_mirror_ok``) with the device, process and range each one watches.
    """

    __slots__ = ("next_proc", "regions", "top", "next_pin", "pin_ok", "pins", "wpins",
                 "pinned", "next_sub", "sub_ok", "subs", "hot", "hot_proc", "locked",
                 "merging", "merged", "written",
                 "files", "file_pages", "vms", "vm_range",
                 "thp", "alloc_fail", "fail_at", "nops", "dirtied", "fresh", "thps",
                 "devmem", "pfns", "fresh_dev", "fresh_pfn")

    def __init__(self) -> None:
        self.next_proc = 1                          # p0 exists at start
        # live proc -> [(start, end, attr, file, pgoff) | None] by creation index:
        # attr has _W/_S/_NONE/_M bits; file is None for anon; pgoff is start's file page
        self.regions: dict[str, list] = {"p0": []}
        self.top = "p0"                             # the newest live process ("" if none)
        self.next_pin = 1                           # `pin` lines so far + 1 (parser: h1 first)
        self.pin_ok = 0                             # pins predicted to succeed (h1..h{pin_ok})
        self.pins: dict[str, int] = {}              # live pin -> npages, in creation order
        self.wpins: set[str] = set()                # the live FOLL_WRITE (rw) pins
        self.pinned: list[tuple[int, int]] = []     # (vpn, npages) of the last _PINNED pins
        self.next_sub = 1                           # `mirror` lines so far + 1 (parser: m1)
        self.sub_ok = 0                             # mirrors predicted to succeed (m1..)
        # live subscription -> (dev, proc, start, end), in creation order
        self.subs: dict[str, tuple[str, str, int, int]] = {}
        # (vpn, npages) of the last _HOT device-exclusive grants, locks and pageouts,
        # and of the last _HOT mergeable ranges: CPU ops aim at them (_vpn modes 13, 12)
        self.hot: list[tuple[int, int]] = []
        self.merged: list[tuple[int, int]] = []
        self.hot_proc = "p0"                        # the process of the newest hot range
        self.written: list[tuple[str, int]] = []    # (proc, vpn) of the last _WRITTEN writes
        self.locked: list[tuple[str, int]] = []     # (proc, vpn) of the last _LOCKED locks
        self.merging = False                        # some region was madvised mergeable
        self.files: list[str] = []                  # defined, in definition order
        self.file_pages: dict[str, int] = {}        # name -> size in pages (tracked)
        self.vms: list[str] = []
        self.vm_range: dict[str, tuple[int, int]] = {}   # name -> (start, npages)
        self.thp = "madvise"                        # `set thp` (the models' default)
        self.alloc_fail = False                     # `set thp_alloc fail` in effect
        self.fail_at = 0                            # nops when it was set
        self.nops = 0                               # ops decoded so far
        self.dirtied: list[tuple[str, int]] = []    # (file, pgoff) of the last _WRITTEN
                                                    # CPU writes through shared file maps
        # (proc, vpn, npages, nops) of the newest whole-block private anon mmap
        self.fresh: Optional[tuple[str, int, int, int]] = None
        # (proc, haddr) of the blocks of the last _WRITTEN CPU writes that would fault
        # in a THP (a whole block of a private anon VMA, hugepage or `set thp always`)
        self.thps: list[tuple[str, int]] = []
        self.devmem: list[str] = []                 # devmem files (N > 0), in definition order
        # (proc, haddr) of the last _WRITTEN 512-aligned blocks of pfnmap mappings whose
        # first page's pgoff is 512-aligned (special PMDs are inserted there)
        self.pfns: list[tuple[str, int]] = []
        # (file, nops) of the newest devmem file definition, until a pfnmap maps it
        self.fresh_dev: Optional[tuple[str, int]] = None
        self.fresh_pfn = -_FRESH_OPS - 1            # nops at the newest pfnmap with blocks


def _names(prefix: str) -> tuple[str, ...]:
    """Name strings by index: counted names never exceed MAX_OPS + 1."""
    return tuple(f"{prefix}{i}" for i in range(MAX_OPS + 2))


_PNAMES, _HNAMES, _MNAMES = _names("p"), _names("h"), _names("m")


def _nearest(names: tuple, live, t: int, nxt: int) -> str:
    """The live name with index t, else the nearest live one below, else above; '' if none."""
    if t < nxt and names[t] in live:
        return names[t]
    for i in range(min(t, nxt) - 1, -1, -1):
        if names[i] in live:
            return names[i]
    for i in range(t + 1, nxt):
        if names[i] in live:
            return names[i]
    return ""


def _region(regs: list, t: int) -> tuple:
    """The tracked VMA with creation index t (or the nearest live one); a default if none."""
    n = len(regs)
    if n:
        i = t if t < n else n - 1
        for k in range(i, -1, -1):
            if regs[k] is not None:
                return regs[k]
        for k in range(i + 1, n):
            if regs[k] is not None:
                return regs[k]
    return _DEFAULT_REGION


# Region attributes (the third field): what poke and pin outcomes depend on.
_W = 1         # VM_WRITE (prot rw)
_S = 2         # VM_SHARED (MAP_SHARED, anon or file)
_NONE = 4      # PROT_NONE
_M = 8         # VM_MERGEABLE (madvise mergeable on a private VMA: ksm_scan merges there)
_H = 16        # VM_HUGEPAGE (madvise hugepage)
_NH = 32       # VM_NOHUGEPAGE (madvise nohugepage)
_PF = 64       # VM_PFNMAP (a shared,pfnmap mapping of a devmem file)
_RW, _PNONE = O.Prot.RW, O.Prot.NONE


def _prot_attr(prot: O.Prot) -> int:
    return _W if prot is _RW else _NONE if prot is _PNONE else 0   # no Enum hashing

_DEFAULT_REGION = (0x100, 0x110, _W, None, 0)


def _piece(r: tuple, s: int, e: int, attr: int) -> tuple:
    """The part [s, e) of region r (its file offset moves with the start)."""
    return (s, e, attr, r[3], r[4] + s - r[0])


def _subtract(regs: list, a: int, b: int) -> None:
    """Remove [a, b) from the tracked VMAs (do_vmi_munmap's split at the boundaries)."""
    for i in range(len(regs)):
        r = regs[i]
        if r is None or r[1] <= a or r[0] >= b:
            continue
        left = (r[0], a, r[2], r[3], r[4]) if r[0] < a else None
        right = _piece(r, b, r[1], r[2]) if r[1] > b else None
        regs[i] = left or right
        if left and right and len(regs) < _MAX_REGIONS:
            regs.append(right)


def _reattr(regs: list, a: int, b: int, keep: int, bits: int, private: bool = False) -> None:
    """Set the attributes of [a, b) in the tracked VMAs to (attr & keep) | bits (the
    split of mprotect_fixup / madvise_update_vma; ``private``: shared VMAs are left
    alone): the part before a keeps the creation index, the changed part and the rest
    are appended; a VMA whose split does not fit in _MAX_REGIONS is left as it was."""
    for i in range(len(regs)):
        r = regs[i]
        if r is None or r[1] <= a or r[0] >= b or (private and r[2] & _S):
            continue
        attr = (r[2] & keep) | bits
        if attr == r[2]:
            continue
        pieces = [p for p in (_piece(r, r[0], a, r[2]) if r[0] < a else None,
                              _piece(r, max(r[0], a), min(r[1], b), attr),
                              _piece(r, b, r[1], r[2]) if r[1] > b else None) if p]
        if len(regs) + len(pieces) - 1 <= _MAX_REGIONS:
            regs[i] = pieces[0]
            regs.extend(pieces[1:])


def _pick_addr(regs: list, npages: int, align: int, phase: int = 0) -> int:
    """Roughly the address mmap(vpn=0) picks: lowest free range from MMAP_MIN_PAGES
    whose start is phase modulo align (a pfnmap of N >= 512: the VA shares the
    BO offset's position in its 2 MiB block)."""
    up = lambda a: a + (phase - a) % align             # noqa: E731
    cand = up(MMAP_MIN_PAGES)
    for s, e in sorted((r[0], r[1]) for r in regs if r is not None):
        if s >= cand + npages:
            break
        if e > cand:
            cand = up(e)
    return cand


def _pidx(name: str) -> int:
    return int(name[1:])


# --- slots: one clustered decoder + one literal inverse per argument kind ----------------

class _Slot(NamedTuple):
    """dec(track, vals, byte, literal) -> value; lit(track, vals, value) -> literal or None.

    ``vals`` holds the op's fields decoded so far (slots depend only on earlier ones).
    """

    dec: Callable
    lit: Callable


def _live_name(names: tuple, live, nxt: int, first: int, b: int, x: int) -> str:
    """A counted name: clustered on live ones by creation index, literal by index."""
    if b == ESC:
        return names[first + x % (nxt - first)]
    t = first + ((b & 15) if b & 0x80 else (b & 3))
    if t < nxt and names[t] in live:
        return names[t]
    # else the nearest live one; none alive: a dead but parseable name (ESRCH paths)
    return _nearest(names, live, t, nxt) or names[min(t, nxt - 1)]


def _lit_index(first: int, counter: str):
    """The literal of a counted name: its index above the first; None if not yet created."""
    def lit(t, v, value):
        i = _pidx(value)
        return i - first if first <= i < getattr(t, counter) else None
    return lit


def _proc_dec(t, v, b, x):
    if b != ESC:                          # the common cases of _live_name, inlined
        i = (b & 15) if b & 0x80 else (b & 3)
        if i < t.next_proc:
            if _PNAMES[i] in t.regions:
                return _PNAMES[i]
        elif t.top:
            return t.top                  # = _nearest's answer past the last name
    return _live_name(_PNAMES, t.regions, t.next_proc, 0, b, x)


PROC = _Slot(_proc_dec, _lit_index(0, "next_proc"))
_ANY_HANDLE = 0xF0       # handle bytes from here on name any creating line's name, live or not
_ANY_PIN = _ANY_SUB = _ANY_HANDLE


def _handle_slot(names: tuple, kind: str, write: bool = False) -> _Slot:
    """A counted handle (kind "pin": h1.., "sub": m1..): mostly a live one (bytes below
    0x80 the k-th newest, for a pwrite the k-th newest FOLL_WRITE pin as an `r` pin is
    EPERM; else by creation index); bytes >= _ANY_HANDLE any name up to the parser's
    bound (unpinned, removed or failed: EINVAL)."""
    next_attr, live_attr, ok_attr = f"next_{kind}", f"{kind}s", f"{kind}_ok"

    def dec(t, v, b, x):
        nxt = getattr(t, next_attr)
        if nxt <= 1:
            return names[1]               # no creating line yet: _needs substitutes one
        if b == ESC:
            return names[1 + x % (nxt - 1)]
        if b >= _ANY_HANDLE:
            return names[1 + (b & 15) % (nxt - 1)]
        live = getattr(t, live_attr)
        if live:
            if b < 0x80:                  # the k-th newest live (write) handle
                chosen = [h for h in live if h in t.wpins] if write else ()
                chosen = chosen or list(live)
                return chosen[-1 - (b & 3) % len(chosen)]
            return _nearest(names, live, 1 + (b & 15), getattr(t, ok_attr) + 1)
        return names[min(1 + (b & 3), nxt - 1)]     # none alive (EINVAL paths)

    return _Slot(dec, _lit_index(1, next_attr))


PIN, PIN_W = _handle_slot(_HNAMES, "pin"), _handle_slot(_HNAMES, "pin", write=True)
SUB = _handle_slot(_MNAMES, "sub")


def _defined(names: list, b: int, x: int) -> str:
    if b == ESC:
        return names[x % len(names)]
    return names[min(b & 7, len(names) - 1)]


FILE = _Slot(lambda t, v, b, x: _defined(t.files, b, x),
             lambda t, v, value: t.files.index(value) if value in t.files else None)
VM = _Slot(lambda t, v, b, x: _defined(t.vms, b, x),
           lambda t, v, value: t.vms.index(value) if value in t.vms else None)


def _new_name(prefix: str, names: list, b: int, x: int) -> str:
    """A name to define: the smallest unused index (literal: the smallest unused >= x)."""
    used = {_pidx(n) for n in names}
    k = x if b == ESC else 0
    while k in used:
        k += 1
    return f"{prefix}{k}"


NEWFILE = _Slot(lambda t, v, b, x: _new_name("f", t.files, b, x),
                lambda t, v, value: None if value in t.files else _pidx(value))
NEWVM = _Slot(lambda t, v, b, x: _new_name("v", t.vms, b, x),
              lambda t, v, value: None if value in t.vms else _pidx(value))
_DEVNAMES = tuple(f"d{i}" for i in range(8))
_ANY_DEV = 0xF0          # device-access bytes from here on ignore the subscriptions


def _mdev_dec(t, v, b, x):
    """mirror's device: d0..d2 (d3, d4 for a few bytes: devices nothing else uses)."""
    if b == ESC:
        return f"d{x}"
    return _DEVNAMES[b % 3 if b < 0xF8 else 3 + (b & 1)]


def _watching(t: _Track) -> list:
    """The live subscriptions (dev, proc, start, end) of live processes, oldest first."""
    regions = t.regions
    return [s for s in t.subs.values() if s[1] in regions]


def _adev_dec(t, v, b, x):
    """The device of a device access or devents: bytes below _ANY_DEV the device of one
    of the 8 newest live subscriptions whose process lives and still maps part of
    the range (else of any live process), if any; else d0..d2."""
    if b == ESC:
        return f"d{x}"
    if b < _ANY_DEV and t.subs:
        cands = _overlapping(t, 8) or _watching(t)
        if cands:
            return cands[-1 - (b & 7) % len(cands)][0]
    return _DEVNAMES[b % 3]


def _overlapping(t: _Track, k: int) -> list:
    """Up to k of the newest live subscriptions whose range meets a tracked VMA of
    their (live) process, oldest first."""
    out = []
    regions = t.regions
    for sub in reversed(t.subs.values()):
        regs = regions.get(sub[1])
        if regs and any(r is not None and r[0] < sub[3] and sub[2] < r[1] for r in regs):
            out.append(sub)
            if len(out) == k:
                break
    out.reverse()
    return out


_dev_lit = lambda t, v, value: _pidx(value)    # noqa: E731
MDEV = _Slot(_mdev_dec, _dev_lit)
ADEV = _Slot(_adev_dec, _dev_lit)


def _aproc_dec(t, v, b, x):
    """The process of a device access: bytes below 0xf0 one watched by a live
    subscription of the chosen device (the k-th newest of those whose range meets a
    tracked VMA, else of all), if any; else as PROC."""
    if b < 0xF0 and t.subs:
        dev, regions = v["dev"], t.regions
        procs = [s[1] for s in _overlapping(t, 8) if s[0] == dev] \
            or [s[1] for s in t.subs.values() if s[0] == dev and s[1] in regions]
        if procs:
            return procs[-1 - (b & 3) % len(procs)]
    return _proc_dec(t, v, b, x)


APROC = _Slot(_aproc_dec, PROC.lit)


def _vma_of(t: _Track, proc: str, k: int) -> tuple:
    regs = t.regions.get(proc)
    r = regs[k] if regs and k < len(regs) else None
    return r if r is not None else _region(regs or (), k)


def _vpn_mmap(proc_field: str) -> _Slot:
    """Where to mmap: fresh areas (small, or 2 MiB-aligned for 4 modes in 16: mmap's
    length and flags then favour whole private anon THP blocks), 0 (the model picks),
    over or next to a tracked VMA (MAP_FIXED replace, merges), or out of range."""

    def dec(t, v, b, x):
        if b == ESC:
            return x & U64_MASK
        mode, j = b >> 4, b & 15
        if mode < 2:
            return 0x100 + 0x10 * (j + 16 * mode)  # a fresh small area
        if mode < 6:                              # a fresh 2 MiB-aligned area (THP blocks)
            return HPAGE_PMD_NR * (1 + j + 16 * max(mode - 3, 0))
        if mode == 6:
            return 0 if j < 12 else j - 12        # 0: the model picks; < 16: EPERM
        if mode == 7:                             # deliberately out of range
            return TASK_SIZE_PAGES - 4 + j if j < 8 else ADDR_LIMIT_PAGES - 16 + j
        r = _vma_of(t, v[proc_field], j & 7)
        s, e = r[0], r[1]
        sub = j >> 3
        if mode < 10:
            return e + sub                        # right after a VMA: merge candidates
        if mode < 12:
            return max(s - 1 - sub, 1)            # right before one
        if mode == 12:
            return s                              # replace its start (MAP_FIXED)
        if mode == 13:
            return (s + e) // 2                   # replace its middle: splits
        return (s // HPAGE_PMD_NR + 1 + sub) * HPAGE_PMD_NR   # the next PMD line

    return _Slot(dec, lambda t, v, value: value)


def _vpn(proc_field: str) -> _Slot:
    """A VPN to access in the process in proc_field: mostly inside one of its tracked
    VMAs (start, last page, middle, PMD lines), sometimes just outside or invalid;
    once pins exist, one choice in 8 is a page of a recent pin (written, unmapped,
    forked, poked or pinned again while the pin holds it), one in 16 a hot page (a
    device-exclusive grant, a lock or a pageout: the CPU op then restores, copies or
    swaps it in) and one in 16 a page of a recent mergeable range (equal values
    there, then ksm_scan merges them; later writes copy the KSM page)."""

    def dec(t, v, b, x):
        if b == ESC:
            return x & U64_MASK
        mode, j = b >> 4, b & 15
        if mode >= 12:
            if mode == 15 and t.pfns:             # a page of a pfnmap block (special PMD)
                got = _pfn_page(t, v[proc_field], j)
                if got >= 0:
                    return got
            if mode == 13:                         # a hot page (device-exclusive, locked,
                if t.hot:                          # paged out), still mapped
                    got = _hot_page(t.hot, t.regions.get(v[proc_field], ()), j)
                    if got >= 0:
                        return got
            elif mode == 12:                       # a page of a mergeable range
                if t.merged:
                    got = _hot_page(t.merged, t.regions.get(v[proc_field], ()), j)
                    if got >= 0:
                        return got
            elif t.pinned:                         # a recently pinned page, still mapped
                got = _pinned_page(t, v[proc_field], j, mode == 14)
                if got >= 0:
                    return got
        r = _vma_of(t, v[proc_field], j & 7)
        s, e = r[0], r[1]
        n, sub = e - s, j >> 3
        if mode == 0 or mode == 14:
            return s
        if mode == 1:
            return s + 1 + sub
        if mode == 2:
            return max(e - 1 - sub, s)             # the last page
        if mode == 3 or mode == 8:
            return s + j % n
        if mode == 4:
            return e - 1 - j % n
        if mode == 5:
            return (s + e) // 2
        if mode == 6:                              # a page of a THP block (huge pages)
            got = _block_page(t.regions.get(v[proc_field], ()), j, t, v[proc_field])
            if got >= 0:
                return got
            line = -(-s // HPAGE_PMD_NR) * HPAGE_PMD_NR   # none: a PMD line inside
            return line if line < e else s
        if mode == 7:
            return s + (n * (1 + 2 * sub)) // 4
        if mode == 9:
            return e if j < 8 else max(s - 1, 0)   # just past the end / before the start
        if mode == 10:
            return j if j < 4 else s + j % n       # low: never mapped (< 16)
        if mode == 11:                             # deliberately out of range
            return TASK_SIZE_PAGES - 2 + j if j < 4 else ADDR_LIMIT_PAGES - 8 + j if j < 8 \
                else s + j % n
        if mode == 12:
            return s + (j >> 1)                    # may run past a small VMA
        if mode == 13:
            return s + (j * 37) % n
        return s + sub                             # 15

    return _Slot(dec, lambda t, v, value: value)


_vpn_p = _vpn("proc").dec
_HMASK = HPAGE_PMD_NR - 1


def _thp_regions(regs, t: Optional[_Track] = None) -> list:
    """Up to 8 tracked VMAs, newest first, where a THP can be faulted in: private anon,
    not nohugepage, holding at least one whole 512-aligned block. With ``t``, those
    where a fault would make a THP now (`set thp always`, or madvised hugepage, and
    not `set thp never`) come first."""
    out = []
    for k in range(len(regs) - 1, -1, -1):
        r = regs[k]
        if r is not None and not r[2] & (_S | _NH) and r[3] is None \
                and ((r[0] + _HMASK) & ~_HMASK) + HPAGE_PMD_NR <= r[1]:
            out.append(r)
            if len(out) == 8:
                break
    if t is not None and out and t.thp != "never":
        always = t.thp == "always"
        out.sort(key=lambda r: not (always or r[2] & _H))     # stable: newest first
    return out


def _thp_block(t: _Track, proc: str, regs, k: int) -> int:
    """The block (haddr) of the (k % n)-th newest of t.thps in proc that a tracked
    VMA still maps; -1 if none."""
    mine = [h for p, h in t.thps if p == proc and _containing(regs, h) is not None]
    return mine[-1 - k % len(mine)] if mine else -1


def _block_page(regs, j: int, t: Optional[_Track] = None, proc: str = "") -> int:
    """A page of a block: for even j (with ``t``) of a recently written THP block of
    proc (t.thps), else of the first whole 512-aligned block of the ((j & 3) % n)-th
    _thp_regions VMA; by j >> 2 the block's first page, its last page (a range op
    from there cuts the block: split), a single page inside, or the page after the
    block's first 256; -1 if there is no such block."""
    h = _thp_block(t, proc, regs, j >> 1) if t is not None and not j & 1 and t.thps else -1
    if h < 0:
        cands = _thp_regions(regs, t)
        if not cands:
            return -1
        r = cands[(j & 3) % len(cands)]
        h = (r[0] + _HMASK) & ~_HMASK
    pos = j >> 2
    if pos == 0:
        return h
    if pos == 1:
        return h + _HMASK
    if pos == 2:
        return h + 1 + (j & 3) * 127
    return h + HPAGE_PMD_NR // 2


def _pfn_page(t: _Track, proc: str, j: int) -> int:
    """A page of the ((j >> 2) % n)-th newest of t.pfns that a pfnmap VMA of proc still
    maps (mapped there or inherited by fork): by j & 3 the block's first page, its last,
    its middle, or its second; -1 if none."""
    regs = t.regions.get(proc, ())
    mine = [h for _, h in t.pfns
            for r in (_containing(regs, h),) if r is not None and r[2] & _PF]
    if not mine:
        return -1
    h = mine[-1 - (j >> 2) % len(mine)]
    return h + (0, _HMASK, HPAGE_PMD_NR // 2, 1)[j & 3]


def _pinned_page(t: _Track, proc: str, j: int, first: bool) -> int:
    """A page of the ((j >> 2) % n)-th newest recent pin whose first page the tracked
    VMAs of proc still map (pinned there or inherited by fork); -1 if none."""
    regs = t.regions.get(proc, ())
    mapped = [p for p in t.pinned if _containing(regs, p[0]) is not None]
    if not mapped:
        return -1
    pv, pn = mapped[-1 - (j >> 2) % len(mapped)]
    return pv if first else pv + (j & 3) % pn


def _hot_page(ranges: list, regs, j: int) -> int:
    """A page of the ((j >> 2) % n)-th newest of the (vpn, npages) ranges whose first
    page the tracked VMAs regs still map; -1 if none."""
    mapped = [h for h in ranges if _containing(regs, h[0]) is not None]
    if not mapped:
        return -1
    hv, hn = mapped[-1 - (j >> 2) % len(mapped)]
    return hv + (j & 3) % hn


def _avpn(want: int, mask: int) -> _Slot:
    """A VPN for a device access by v["dev"] in v["proc"]: modes 0-9 a page where a
    live subscription of that device on that process meets a tracked VMA (one of the
    8 newest such pairs; for modes 0-7 preferring VMAs whose attr & mask == want:
    readable for dread, writable for dwrite, private writable for dexcl/datomic;
    first, last, middle, second or a scattered page of the overlap),
    10-11 a hot page the device watches (an earlier grant: atomics on it, a fault on
    it), 12-14 a scattered page of the subscription, 15 as _vpn (outside the
    subscription: EINVAL; outside a VMA: EFAULT)."""

    def dec(t, v, b, x):
        if b == ESC:
            return x & U64_MASK
        mode, j = b >> 4, b & 15
        if mode < 15 and t.subs:
            dev, proc = v["dev"], v["proc"]
            subs = [s for s in t.subs.values() if s[0] == dev and s[1] == proc]
            if subs:
                regs = t.regions.get(proc, ())
                if mode >= 10:
                    for hv, hn in reversed(t.hot):
                        if any(s[2] <= hv < s[3] for s in subs) \
                                and _containing(regs, hv) is not None:
                            return hv + (j & 3) % hn if j & 8 else hv
                    mode = j >> 3
                pairs = [(u, r) for u in subs for r in regs
                         if r is not None and r[0] < u[3] and u[2] < r[1]]
                if mode < 8:
                    pairs = [p for p in pairs if p[1][2] & mask == want] or pairs
                if pairs:
                    u, r = pairs[-1 - (j & 7) % len(pairs)]
                    a, z = max(u[2], r[0]), min(u[3], r[1])
                else:
                    u = subs[-1]
                    a, z = u[2], min(u[3], u[2] + 16)
                n = z - a
                pos = mode >> 1 if mode < 10 else 4
                if pos == 0:
                    return a
                if pos == 1:
                    return z - 1
                if pos == 2:
                    return a + n // 2
                if pos == 3:
                    return a + 1 % n
                return a + (j * 5 + (j >> 3)) % n
        return _vpn_p(t, v, b, x)

    return _Slot(dec, lambda t, v, value: value)


AVPN_R = _avpn(0, _NONE)                 # dread: not PROT_NONE
AVPN_W = _avpn(_W, _W)                   # dwrite: VM_WRITE (else EPERM)
AVPN_X = _avpn(_W, _W | _S | _NONE)      # dexcl, datomic: private writable (anon after COW)


def _lock_vpn_dec(t, v, b, x):
    """lock's VPN: bytes below 0x60 a hot page (a device-exclusive grant first of all:
    a locked DX folio makes fork fail and dexcl EBUSY; a locked page is not paged
    out, merged or reused), 0x60-0xbf a page a recent CPU write made present, if
    such a page is mapped in the process; else _vpn."""
    if b < 0xC0:
        regs = t.regions.get(v["proc"], ())
        if b < 0x60:
            if t.hot:
                got = _hot_page(t.hot, regs, b & 15)
                if got >= 0:
                    return got
        elif t.written:
            mapped = [w for _, w in t.written if _containing(regs, w) is not None]
            if mapped:
                return mapped[-1 - (b & 3) % len(mapped)]
    return _vpn_p(t, v, b, x)


def _unlock_proc_dec(t, v, b, x):
    """unlock's process: bytes below 0xc0 the process of the k-th newest lock, if it
    lives; else as PROC."""
    if b < 0xC0 and t.locked:
        p = t.locked[-1 - (b & 3) % len(t.locked)][0]
        if p in t.regions:
            return p
    return _proc_dec(t, v, b, x)


def _unlock_vpn_dec(t, v, b, x):
    """unlock's VPN: bytes below 0xc0 a recently locked page of the process (the k-th
    newest), else one mapped there (a forked child maps the locked frame too), if
    any; else _vpn (EINVAL: nothing locked there)."""
    if b < 0xC0 and t.locked:
        proc = v["proc"]
        mine = [u for p, u in t.locked if p == proc]
        if not mine:
            regs = t.regions.get(proc, ())
            mine = [u for _, u in t.locked if _containing(regs, u) is not None]
        if mine:
            return mine[-1 - (b & 3) % len(mine)]
    return _vpn_p(t, v, b, x)


_KSM_ADVICE = frozenset((O.Advice.MERGEABLE, O.Advice.UNMERGEABLE))
_SWAP_KSM_ADVICE = _KSM_ADVICE | {O.Advice.PAGEOUT}


def _thp_madv_vpn(t, v, b: int) -> int:
    """hugepage / nohugepage / collapse (bytes below 0xc0): hugepage aims at the start
    of a VMA not yet madvised (_pending), else at a _thp_regions VMA; collapse first at
    the 512-aligned block of a recent CPU write in this process inside such a VMA
    (a block with pages: the PTE table and anon_vma collapse needs), else at the
    first block of such a VMA; bytes from 0x80 on the VMA's (maybe unaligned) start.
    -1 if the process has no such VMA."""
    regs = t.regions.get(v["proc"], ())
    adv = v["advice"]
    cands = _thp_regions(regs)
    if adv is _HUGEPAGE:
        cands = _pending(regs) or cands
    elif adv is _COLLAPSE and t.written and b < 0x80:
        proc = v["proc"]
        for p, w in reversed(t.written):
            if p == proc:
                h = w & ~_HMASK
                r = _containing(regs, w)
                if r is not None and r in cands and r[0] <= h and h + HPAGE_PMD_NR <= r[1]:
                    return h
    if not cands:
        return -1
    r = cands[(b & 3) % len(cands)]
    return (r[0] + _HMASK) & ~_HMASK if b < 0x80 else r[0]


def _madv_vpn_dec(t, v, b, x):
    """madvise's VPN: THP advices as _thp_madv_vpn; for pageout / mergeable /
    unmergeable, bytes below 0xe0 aim at a
    page a recent CPU write made present (in this process if it wrote one, else where
    this process maps it: the start of its VMA (modes 0-2) or the page itself); for
    mergeable, modes 0-3 are the lowest tracked VMA start instead (with MADV_NPAGES,
    the whole process becomes mergeable, as prctl(PR_SET_MEMORY_MERGE) does); so
    there is something to swap out or merge. Else _vpn."""
    if b < 0xC0 and v["advice"] in _THP_ADVICE:
        got = _thp_madv_vpn(t, v, b)
        if got >= 0:
            return got
    if b < 0xE0 and v["advice"] in _SWAP_KSM_ADVICE:
        proc = v["proc"]
        regs = t.regions.get(proc, ())
        if b < 0x40 and v["advice"] is _A.MERGEABLE:
            low = min((r[0] for r in regs if r is not None), default=-1)
            if low >= 0:
                return low
        if t.written:
            mapped = [(w, r) for p, w in t.written if p == proc
                      for r in (_containing(regs, w),) if r is not None] \
                or [(w, r) for _, w in t.written
                    for r in (_containing(regs, w),) if r is not None]
            if mapped:
                w, r = mapped[-1 - (b & 3) % len(mapped)]
                return r[0] if b < 0x30 else w
    return _vpn_p(t, v, b, x)


def _madv_npages_dec(t, v, b, x):
    """madvise's length: for mergeable / unmergeable, bytes below 0x60 reach the end of
    the last tracked VMA (every private VMA from vpn on), 0x60-0x9f the end of the VMA
    at vpn; for the THP advices, bytes below 0x60 the rest of the VMA at vpn, 0x60-0x9f
    one block (512); else as _npages."""
    if b < 0xA0 and v["advice"] in _THP_ADVICE:
        if b >= 0x60:
            return HPAGE_PMD_NR
        r = _containing(t.regions.get(v["proc"], ()), v["vpn"])
        if r is not None:
            return r[1] - v["vpn"]
    if b < 0xA0 and v["advice"] in _KSM_ADVICE:
        vpn, regs = v["vpn"], t.regions.get(v["proc"], ())
        if b < 0x60:
            end = max((r[1] for r in regs if r is not None), default=0)
        else:
            r = _containing(regs, vpn)
            end = r[1] if r is not None else 0
        if end > vpn:
            return end - vpn
    return _npages_p(t, v, b, x)


def _fork_proc_dec(t, v, b, x):
    """fork's process: bytes below 0x40 the process of the newest hot range (a
    device-exclusive grant, a lock, a pageout: fork restores, fails or copies swap
    entries there), if alive; else as PROC."""
    if b < 0x40 and t.hot and t.hot_proc in t.regions:
        return t.hot_proc
    return _proc_dec(t, v, b, x)


MADV_VPN = _Slot(_madv_vpn_dec, lambda t, v, value: value)
MADV_NPAGES = _Slot(_madv_npages_dec, lambda t, v, value: value)
FORK_PROC = _Slot(_fork_proc_dec, PROC.lit)
UNLOCK_PROC = _Slot(_unlock_proc_dec, PROC.lit)
LOCK_VPN = _Slot(_lock_vpn_dec, lambda t, v, value: value)
UNLOCK_VPN = _Slot(_unlock_vpn_dec, lambda t, v, value: value)


def _mirror_npages_dec(t, v, b, x):
    """A mirror's length (mmu_interval_notifier_insert: [vpn, vpn+N)): mostly the rest
    of the VMA at vpn; 1 or a few pages; up to the end of the last tracked VMA (several
    VMAs); past the VMA; everything up to 2^52 (every later op in the process
    invalidates it); sometimes 0 or one page past 2^52 (EOVERFLOW)."""
    if b == ESC:
        return x & U64_MASK
    mode, j = b >> 4, b & 15
    vpn = v["vpn"]
    if mode == 6:
        return 1
    if mode == 7:
        return 1 + (j & 3)
    if mode == 10 or mode == 11:
        return (ADDR_LIMIT_PAGES - vpn + (j >= 12)) & U64_MASK
    if mode == 12:
        return 0 if j < 8 else HPAGE_PMD_NR
    regs = t.regions.get(v["proc"], ())
    if mode == 8:
        last = max((r[1] for r in regs if r is not None), default=0)
        return last - vpn if last > vpn else 16
    r = _containing(regs, vpn)
    if r is None:
        return 1 + (j & 7)
    rest = r[1] - vpn
    if mode == 9:
        return rest + 1 + (j & 3)
    if mode >= 13:
        return max(rest - (j & 3), 1)
    return rest                                    # 0-5


MIRROR_NPAGES = _Slot(_mirror_npages_dec, lambda t, v, value: value)


def _poke_cand(mode: int, r: tuple) -> bool:
    """Poke targets by mode: 0-2 a private VMA without VM_WRITE (FOLL_FORCE COWs it,
    the CPU still cannot write), 3-4 a private file mapping (the COW must not reach
    the page cache: Dirty COW), 5-7 a shared one (EIO without VM_WRITE, else the
    file and every mapper see it; 7 also a pfnmap: vm_ops->access writes the BO)."""
    if mode >= 5:                 # a pfnmap (ttm_bo_vm_access: ok) for mode 7 only
        return r[2] & _S and (mode == 7 or not r[2] & _PF)
    if mode >= 3:
        return not r[2] & _S and r[3] is not None
    return not r[2] & (_S | _W)


def _poke_vpn_dec(t, v, b, x):
    """poke's VPN: half the clustered bytes pick a VMA by _poke_cand; the others as
    _vpn's modes 0-3 (inside a VMA), 6 (a THP block page), 9 (just outside: EIO),
    14-15 (pinned pages)."""
    if b == ESC:
        return x & U64_MASK
    mode = b >> 4
    if mode >= 8:
        return _vpn_p(t, v, b - 0x80 if mode < 12 else b - 0x60 if mode == 12
                      else b - 0x40 if mode == 13 else b, x)
    regs = t.regions.get(v["proc"], ())
    cands = [r for r in regs if r is not None and _poke_cand(mode, r)]
    if cands:
        j = b & 15
        s, e = cands[(j & 7) % len(cands)][:2]
        n = e - s
        return s + (0, n - 1, n // 2, 1 % n)[(j >> 3) + 2 * (mode & 1)]
    return _vpn_p(t, v, b, x)                     # none such: inside some VMA


POKE_VPN = _Slot(_poke_vpn_dec, lambda t, v, value: value)


def _pin_vpn_dec(t, v, b, x):
    """pin's VPN: as _vpn, but bytes below 0x80 that land in a PROT_NONE VMA (always
    EFAULT) move to the (j & 7)-th VMA that is not PROT_NONE, if any."""
    vpn = _vpn_p(t, v, b, x)
    if b < 0x80:
        regs = t.regions.get(v["proc"], ())
        r = _containing(regs, vpn)
        if r is not None and r[2] & _NONE:
            cands = [r for r in regs if r is not None and not r[2] & _NONE]
            if cands:
                return cands[(b & 7) % len(cands)][0] + (b >> 3 & 1)
    return vpn


PIN_VPN = _Slot(_pin_vpn_dec, lambda t, v, value: value)


def _containing(regs, vpn: int) -> Optional[tuple]:
    for r in regs:
        if r is not None and r[0] <= vpn < r[1]:
            return r
    return None


_REST_MODES = frozenset((2, 3, 4, 5, 12, 14))   # lengths relative to the containing VMA


def _npages(proc_field: str, vpn_field: str) -> _Slot:
    """A length for the range at vpn_field, relative to the VMA containing it."""

    def dec(t, v, b, x):
        if b == ESC:
            return x & U64_MASK
        mode, j = b >> 4, b & 15
        if mode == 0 or mode == 10:
            return 1
        vpn = v[vpn_field]
        if mode in _REST_MODES:
            r = _containing(t.regions.get(v[proc_field], ()), vpn)
            if r is not None:
                if mode == 4:
                    return r[1] - r[0]             # the VMA's length (overruns if inside)
                if mode == 5:
                    return r[1] - vpn + 1 + (j & 3)    # overrun into what follows
                if mode == 12:
                    return max(r[1] - vpn - (j & 3), 1)
                return r[1] - vpn                  # the rest of the VMA
            return 1 + (j & 7)
        if mode == 6:
            return HPAGE_PMD_NR
        if mode == 7:
            return HPAGE_PMD_NR * (1 + (j & 3)) if j < 8 else HPAGE_PMD_NR - vpn % HPAGE_PMD_NR
        if mode == 8:
            return 0 if j < 4 else 1 + (j & 3)     # 0: EINVAL / no-op paths
        if mode == 9:                              # past TASK_SIZE (or the 2^52 wrap)
            end = TASK_SIZE_PAGES + 1 + (j & 3) if j < 8 else ADDR_LIMIT_PAGES + 1 + (j & 3)
            return max(end - vpn, 1) & U64_MASK
        if mode == 11:
            return 2
        if mode == 1:
            return 1 + (j & 3)
        return 1 + j                               # 13, 15

    return _Slot(dec, lambda t, v, value: value)


_npages_p = _npages("proc", "vpn").dec


def _mmap_npages_dec(t, v, b, x):
    """mmap's length: at a 512-aligned VPN (or 0: the model picks, and aligns a
    private anon multiple of 512), bytes below 0xc0 give whole THP blocks (512
    pages, 1024 for one in 4); else as _npages."""
    if b != ESC and b < 0xC0 and not v["vpn"] & _HMASK:
        return HPAGE_PMD_NR * 2 if b & 3 == 3 else HPAGE_PMD_NR
    return _npages_p(t, v, b, x)


MMAP_NPAGES = _Slot(_mmap_npages_dec, lambda t, v, value: value)


def _value_dec(b: int) -> int:
    if b < 160:
        return b & 31                              # small, often equal (KSM, same values)
    if b < 192:
        return (b & 31) << 8
    if b < 224:
        return U64_MASK - (b & 31)                 # wraps on add
    return 1 << (2 * (b - 224))


VALUE = _Slot(lambda t, v, b, x: x & U64_MASK if b == ESC else _value_dec(b),
              lambda t, v, value: value)


def _val_at_dec(t, v, b, x):
    """A value stored at v["vpn"] of v["proc"] (write, dwrite, poke): as VALUE, but
    bytes below 0x60 give 0..3, and inside a tracked mergeable VMA bytes below 0x80
    give 1 or 2 and those below 0xc0 0..3: several pages hold equal values for
    ksm_scan to merge."""
    if b == ESC:
        return x & U64_MASK
    if b < 0xC0:
        if t.merging:
            r = _containing(t.regions.get(v["proc"], ()), v["vpn"])
            if r is not None and r[2] & _M:
                return 1 + (b & 1) if b < 0x80 else b & 3
        if b < 0x80:
            return b & 3
        if b < 0xA0:
            return b & 31
    return _value_dec(b)


VAL_AT = _Slot(_val_at_dec, lambda t, v, value: value)

# Clustered prots: rw 5 times in 8 (writes should mostly work), none once.
_PROTS = (O.Prot.RW, O.Prot.R, O.Prot.RW, O.Prot.NONE, O.Prot.RW, O.Prot.R, O.Prot.RW, O.Prot.RW)
_PROT_LIST = tuple(O.Prot)      # literal prots: x % 3
PROT = _Slot(lambda t, v, b, x: _PROT_LIST[x % 3] if b == ESC else _PROTS[b & 7],
             lambda t, v, value: _PROT_LIST.index(value))


def _flag_table() -> tuple[frozenset, ...]:
    """32 clustered mmap flag sets: mostly valid ones, 4 invalid mixes (EINVAL/ENOSYS)."""
    F = O.MapFlag
    valid = [{F.PRIVATE, F.ANON}] * 10 + [{F.SHARED, F.ANON}] * 4 + [{F.PRIVATE}] * 5 \
        + [{F.SHARED}] * 4 + [{F.PRIVATE, F.ANON, F.POPULATE}] * 3 \
        + [{F.SHARED, F.POPULATE}, {F.PRIVATE, F.POPULATE}]
    invalid = [{F.ANON}, {F.PRIVATE, F.SHARED, F.ANON}, set(), {F.PRIVATE, F.ANON, F.PFNMAP}]
    table = [frozenset(c) for c in valid + invalid]
    assert len(table) == 32, len(table)
    return tuple(table)


_FLAGS = _flag_table()
_FLAG_ORDER = tuple(O.MapFlag)
# Literal flags: bit i set <=> MapFlag #i (enum order) is in the set.
_FLAG_SUBSETS = tuple(frozenset(f for i, f in enumerate(_FLAG_ORDER) if m >> i & 1)
                      for m in range(1 << len(_FLAG_ORDER)))
# Flag sets as set members (frozenset hashes are cached; Enum.__hash__ is Python code).
_ANON_SETS = frozenset(fl for fl in _FLAG_SUBSETS if O.MapFlag.ANON in fl)
_PRIVATE_SETS = frozenset(fl for fl in _FLAG_SUBSETS if O.MapFlag.PRIVATE in fl)
_POPULATE_SETS = frozenset(fl for fl in _FLAG_SUBSETS if O.MapFlag.POPULATE in fl)
_MAPPABLE_SETS = frozenset(  # exactly one of private/shared, no pfnmap (rules.md)
    fl for fl in _FLAG_SUBSETS if (O.MapFlag.PRIVATE in fl) != (O.MapFlag.SHARED in fl)
    and O.MapFlag.PFNMAP not in fl)


_FILELESS = {fl: fl | {O.MapFlag.ANON} for fl in _FLAGS}
_PRIVATE_ANON = _FLAGS[0]
assert _PRIVATE_ANON == {O.MapFlag.PRIVATE, O.MapFlag.ANON}


_PFN_SHARED = frozenset({O.MapFlag.SHARED, O.MapFlag.PFNMAP})
_PFN_PRIVATE = frozenset({O.MapFlag.PRIVATE, O.MapFlag.PFNMAP})   # EINVAL: no COW of a BO
_PFN_SETS = frozenset(fl for fl in _FLAG_SUBSETS if O.MapFlag.PFNMAP in fl)


def _protflags_dec(t, v, b, x):
    """(prot, flags): _PROTS by the low 3 bits, _FLAGS by the high 5; while a devmem
    file exists, bytes 0x80-0x9f for whole blocks (as below), 0x80-0x87 for others
    (a private file mapping otherwise), give shared,pfnmap (0x87 and from 0x9c
    private,pfnmap: EINVAL); for whole 512-aligned blocks (vpn and npages multiples
    of 512) the other bytes below 0xa0 give private anon (no populate): where THPs
    are faulted in, split and collapsed."""
    if b == ESC:
        return _PROT_LIST[x % 3], _FLAG_SUBSETS[(x // 3) % len(_FLAG_SUBSETS)]
    whole = v["npages"] and not (v["vpn"] | v["npages"]) & _HMASK
    if 0x80 <= b < (0xA0 if whole else 0x88) and t.devmem:
        # a device-memory BO exists: map it (pfnmap), mostly whole aligned blocks
        return _PROTS[b & 7], _PFN_PRIVATE if b >= 0x9C or b == 0x87 else _PFN_SHARED
    if b < 0xA0 and whole:
        return _PROTS[b & 7], _PRIVATE_ANON
    flags = _FLAGS[b >> 3]
    if not t.files and flags not in _ANON_SETS and flags in _MAPPABLE_SETS:
        flags = _FILELESS[flags]          # no file to map yet: the anon equivalent
    return _PROTS[b & 7], flags


PROTFLAGS = _Slot(_protflags_dec,
                  lambda t, v, value: _PROT_LIST.index(value[0]) + 3 * _FLAG_SUBSETS.index(value[1]))


def _fileoff_dec(t, v, b, x):
    """mmap's (file, off): a defined file for file-backed flags, rarely for anon ones."""
    files = t.files
    if b == ESC:
        f = files[(x >> 2 & 0xFF) % len(files)] if x & 1 and files else None
        return f, (x >> 10 & U64_MASK) if x & 2 else None
    if not files or (v["flags"] in _ANON_SETS and b < 240):
        return None, None
    if v["flags"] in _PFN_SETS and t.devmem:
        return _pfn_fileoff(t, v, b)
    f = files[min(b & 7, len(files) - 1)]
    if b < 0xE0 and t.devmem and f in t.devmem:    # mostly a shmem file (a BO: EINVAL)
        shm = [g for g in files if g not in t.devmem]
        if shm:
            f = shm[min(b & 7, len(shm) - 1)]
    mode = b >> 4
    if mode < 8:
        return f, None
    size = t.file_pages.get(f, 0)
    off = (0, 0, 0, 1, 2, HPAGE_PMD_NR, size, max(size - 1, 0))[mode - 8]
    return f, off


def _pfn_fileoff(t: _Track, v, b: int) -> tuple:
    """A pfnmap's (file, off): the ((b & 7) % n)-th newest devmem file; by b >> 4 a
    512-aligned offset where N pages fit (0 first: special PMDs where the VPN is
    aligned too), an unaligned one (1, 0x100), none (0), past the end or N pages
    before it (EINVAL unless N fits), or a shmem file (EINVAL)."""
    dm = t.devmem
    f = dm[-1 - (b & 7) % len(dm)]
    size, n = t.file_pages.get(f, 0), v["npages"]
    mode = b >> 4
    if mode == 11:
        return f, 0x100 if b & 8 else 1
    if mode == 12:
        return f, None
    if mode == 13:
        return f, size
    if mode == 14:
        return f, max(size - n, 0)
    if mode == 15:
        shm = [g for g in t.files if g not in dm]
        if shm:
            return shm[-1], 0
    fits = (size - n) // HPAGE_PMD_NR + 1 if 0 < n <= size else 1
    return f, HPAGE_PMD_NR * ((0, 0, 1, 0, 2, 1, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0)[mode] % fits)


def _fileoff_lit(t, v, value):
    f, off = value
    if f is not None and f not in t.files:
        return None
    x = (1 if f is not None else 0) | (2 if off is not None else 0)
    if f is not None:
        i = t.files.index(f)
        if i > 0xFF:
            return None
        x |= i << 2
    if off is not None:
        x |= off << 10
    return x


FILEOFF = _Slot(_fileoff_dec, _fileoff_lit)

# Advice, weighted toward the advices the models implement (rules.md, then swap and
# KSM: pageout 5 in 32, mergeable 4, unmergeable 2; THP (issue 5): hugepage 2,
# nohugepage 1, collapse 2); 32 entries. While the process has a THP-capable VMA
# (_thp_regions) not yet madvised hugepage, and `set thp always` is not in effect,
# bytes from 0xc0 on are hugepage (MADV_VPN / MADV_NPAGES then cover that VMA).
_A = O.Advice
_ADVICES = (_A.DONTNEED,) * 4 + (_A.DONTFORK, _A.DOFORK, _A.WIPEONFORK, _A.KEEPONFORK,
                                  _A.POPULATE_READ, _A.POPULATE_WRITE) * 2 \
    + (_A.PAGEOUT,) * 5 + (_A.MERGEABLE,) * 4 + (_A.UNMERGEABLE,) * 2 \
    + (_A.HUGEPAGE, _A.NOHUGEPAGE, _A.COLLAPSE, _A.HUGEPAGE, _A.COLLAPSE)
assert len(_ADVICES) == 32, len(_ADVICES)
_ADVICE_LIST = tuple(_A)
_HUGEPAGE, _NOHUGEPAGE, _COLLAPSE = _A.HUGEPAGE, _A.NOHUGEPAGE, _A.COLLAPSE
_THP_ADVICE = frozenset((_HUGEPAGE, _NOHUGEPAGE, _COLLAPSE))


def _pending(regs) -> list:
    """_thp_regions not yet madvised hugepage, newest first, then up to 4 such pfnmap
    VMAs holding a whole 512-aligned block (a special PMD needs the hugepage advice
    too while `set thp madvise` holds: the sysfs setting gates non-anon huge faults)."""
    pfn = [r for r in reversed(regs) if r is not None and r[2] & _PF
           and not r[2] & (_H | _NH) and ((r[0] + _HMASK) & ~_HMASK) + HPAGE_PMD_NR <= r[1]]
    return [r for r in _thp_regions(regs) if not r[2] & _H] + pfn[:4]


def _advice_dec(t, v, b, x):
    if b == ESC:
        return _ADVICE_LIST[x % len(_ADVICE_LIST)]
    if b >= 0xC0 and t.thp != "always" and _pending(t.regions.get(v["proc"], ())):
        return _HUGEPAGE
    return _ADVICES[b % len(_ADVICES)]


ADVICE = _Slot(_advice_dec, lambda t, v, value: _ADVICE_LIST.index(value))

_PINMODES = tuple(O.PinMode)     # r, rw, r,longterm, rw,longterm
PIN_MAX_PAGES = 1 << 18          # a longer pin fails before any walk (io_uring's 1 GiB limit)
PIN_CAP = 64                     # "the rest of the VMA" pins at most this many pages


def _pinmode_dec(t, v, b, x):
    """All four modes, FOLL_WRITE 5 times in 8 (pwrite needs one); on a tracked VMA
    without VM_WRITE, bytes below 0xc0 pick a read-only mode (a FOLL_WRITE pin there
    is always EFAULT)."""
    if b == ESC:
        return _PINMODES[x & 3]
    if b < 0xC0:
        r = _containing(t.regions.get(v["proc"], ()), v["vpn"])
        if r is not None and not r[2] & _W:
            return _PINMODES[(b & 1) << 1]
    return _PINMODES[(b & 3) | 1 if (b & 12) == 12 else b & 3]


PINMODE = _Slot(_pinmode_dec, lambda t, v, value: _PINMODES.index(value))


def _pin_npages_dec(t, v, b, x):
    """A pin length: 1 page, a few, the rest of the VMA (capped at PIN_CAP, or all of
    it, or past its end: EFAULT there), a PMD, sometimes 0 / > PIN_MAX_PAGES /
    2^64-1 (EFAULT before any walk) or exactly PIN_MAX_PAGES (valid: the walk stops
    at the first page without a VMA). Relative to the VMA containing vpn (if none,
    2..5 pages)."""
    if b == ESC:
        return x & U64_MASK
    mode, j = b >> 4, b & 15
    if mode < 5:
        return 1
    if mode == 13:
        return 0 if j < 8 else PIN_MAX_PAGES + 1 + (j & 7)
    if mode == 14:
        return PIN_MAX_PAGES if j < 4 else U64_MASK - (j & 3) if j < 8 else 1 + (j & 7)
    if j < 8 and (mode == 7 or mode == 12):
        return 1 + j if mode == 7 else HPAGE_PMD_NR   # may run past a small VMA
    vpn = v["vpn"]
    r = _containing(t.regions.get(v["proc"], ()), vpn)
    if r is None:
        return 2 + (j & 3)
    rest = r[1] - vpn
    if mode == 8:
        return min(rest, PIN_CAP)
    if mode == 9:
        return max(min(rest, PIN_CAP) - (j & 3), 1)
    if mode == 10:
        return rest + 1 + (j & 3)
    if mode == 11:
        return rest                                   # all of it (walk_too_long caps it)
    if mode == 12:
        return min(rest, HPAGE_PMD_NR)
    return min(2 + (j & 3), rest)                     # 5, 6, 7, 15: a few, inside


PIN_NPAGES = _Slot(_pin_npages_dec, lambda t, v, value: value)


def _small_index(n: int, b: int) -> int:
    """An index into something n long: mostly inside, sometimes at/after its end."""
    mode, j = b >> 4, b & 15
    if mode < 11:
        return j % n if n else j
    if mode == 11:
        return n
    if mode == 12:
        return max(n - 1, 0)
    if mode == 13:
        return HPAGE_PMD_NR + j
    return j


def _pin_index_dec(t, v, b, x):
    """An index into the pin (its tracked npages; 1 if dead): 7 in 8 inside, favouring
    the first and last page; else one past the end or far past it (EINVAL)."""
    if b == ESC:
        return x & U64_MASK
    n = t.pins.get(v["pin"]) or 1
    mode, j = b >> 4, b & 15
    if mode < 10:
        return j % n
    if mode < 12:
        return 0
    if mode < 14:
        return n - 1
    if mode == 14:
        return n
    return n + j if j < 8 else HPAGE_PMD_NR + j if j < 12 else U64_MASK - (j & 3)


PIN_INDEX = _Slot(_pin_index_dec, lambda t, v, value: value)
def _pgoff_dec(t, v, b, x):
    """A file page: _small_index of the file's size; in a devmem file (a BO of
    512-page blocks) bytes 0xa0-0xaf the start or a page of a later block."""
    if b == ESC:
        return x & U64_MASK
    if b >> 4 == 10 and t.devmem and v["file"] in t.devmem:
        return HPAGE_PMD_NR * (b & 3) + (b >> 2 & 3)
    return _small_index(t.file_pages.get(v["file"], 0), b)


PGOFF = _Slot(_pgoff_dec, lambda t, v, value: value)


def _span_dec(t, v, b, x):
    if b == ESC:
        return x & U64_MASK
    size, pgoff = t.file_pages.get(v["file"], 0), v["pgoff"]
    mode, j = b >> 4, b & 15
    if mode < 4:
        return max(size - pgoff, 1)               # to the end of the file
    if mode == 4:
        return 0
    if mode == 5:
        return HPAGE_PMD_NR
    return 1 + j


FILE_SPAN = _Slot(_span_dec, lambda t, v, value: value)

_FILE_SIZES = (1, 2, 4, 8, 16, 3, 0, HPAGE_PMD_NR, 2 * HPAGE_PMD_NR, 32, 64, 5, 6, 7, 12, 1)
# devmem BOs: mostly whole 512-page blocks (512..2048), sometimes small, odd or empty
_DEV_SIZES = (HPAGE_PMD_NR, 2 * HPAGE_PMD_NR, HPAGE_PMD_NR, 4 * HPAGE_PMD_NR,
              3 * HPAGE_PMD_NR, HPAGE_PMD_NR, 2 * HPAGE_PMD_NR, 1, 4, 16, 0,
              HPAGE_PMD_NR, 2 * HPAGE_PMD_NR, 3, 4 * HPAGE_PMD_NR, HPAGE_PMD_NR + 1)
FILE_NPAGES = _Slot(lambda t, v, b, x: x & U64_MASK if b == ESC
                    else (_DEV_SIZES if v["devmem"] else _FILE_SIZES)[b >> 4],
                    lambda t, v, value: value)
# devmem one file in 4 (decoded before npages: a BO gets _DEV_SIZES)
DEVMEM = _Slot(lambda t, v, b, x: bool(x & 1) if b == ESC else b >= 192,
               lambda t, v, value: int(value))
ASYNC = _Slot(lambda t, v, b, x: bool(x & 1) if b == ESC else b >= 192,
              lambda t, v, value: int(value))

# GPU VM ranges: drm_gpuvm_init's [start, start+npages); None = the default range.
VM_START = _Slot(lambda t, v, b, x: (None if x == 0 else (x - 1) & U64_MASK) if b == ESC
                 else None if b < 128 else (b & 15) * HPAGE_PMD_NR,
                 lambda t, v, value: 0 if value is None else value + 1)
VM_NPAGES = _Slot(lambda t, v, b, x: None if v["start"] is None
                  else x & U64_MASK if b == ESC else HPAGE_PMD_NR * (1 + (b & 7)) - (b >> 7),
                  lambda t, v, value: 0 if value is None else value)


def _va_dec(t, v, b, x):
    if b == ESC:
        return x & U64_MASK
    start, n = t.vm_range.get(v["vm"], (0, 4 * HPAGE_PMD_NR))
    mode, j = b >> 4, b & 15
    if mode < 6:
        return start + j
    if mode < 10:
        return start + HPAGE_PMD_NR * (j & 3) + (j >> 2) * 16
    if mode < 12:
        return start + n + (j & 3) - 2                # the range's end edge
    if mode == 12:
        return max(start - 1 - j, 0)
    return start + (n * (1 + (j & 3))) // 4


VA = _Slot(_va_dec, lambda t, v, value: value)
VA_NPAGES = _Slot(lambda t, v, b, x: x & U64_MASK if b == ESC
                  else (1 + (b & 15), 16, HPAGE_PMD_NR, 0)[(b >> 4) & 3] if b < 224
                  else t.vm_range.get(v["vm"], (0, 1))[1],
                  lambda t, v, value: value)


def _off_async_dec(t, v, b, x):
    if b == ESC:
        return (x >> 1) & U64_MASK, bool(x & 1)
    size = t.file_pages.get(v["file"], 0)
    return _small_index(size, (b & 0x3F) << 2), (b & 0xC0) == 0xC0


OFF_ASYNC = _Slot(_off_async_dec, lambda t, v, value: value[0] << 1 | int(value[1]))
COUNT = _Slot(lambda t, v, b, x: (None if x == 0 else (x - 1) & U64_MASK) if b == ESC
              else None if b < 128 else b & 3,
              lambda t, v, value: 0 if value is None else value + 1)

_SETKEYS = tuple(O.SetKey)
_SK = O.SetKey
# Clustered keys (b & 15): thp 7 in 16, thp_zero 5, thp_alloc 3, max_ptes_none 1.
_SETKEY_TABLE = (_SK.THP,) * 7 + (_SK.THP_ZERO,) * 5 + (_SK.THP_ALLOC,) * 3 \
    + (_SK.MAX_PTES_NONE,)
SETKEY = _Slot(lambda t, v, b, x: _SETKEYS[x & 3] if b == ESC else _SETKEY_TABLE[b & 15],
               lambda t, v, value: _SETKEYS.index(value))
_MAX_PTES_NONE = HPAGE_PMD_NR   # values 0..511
_THP_MODES = ("always", "madvise", "always", "never")   # clustered `set thp` values


def _setvalue_dec(t, v, b, x):
    """thp: always half the time (every eligible fault a THP), madvise, never;
    thp_zero, thp_alloc: alternate (fail: _needs turns a later read or write into
    `set thp_alloc ok`); max_ptes_none: 0, 1, 8, 64, 256, 511 or the byte."""
    key = v["key"]
    allowed = O.SET_VALUES[key]
    n = x if b == ESC else b
    if allowed is not None:
        if key is _SK.THP and b != ESC:
            return _THP_MODES[b & 3]
        return allowed[n % len(allowed)]
    return str(n % _MAX_PTES_NONE if b == ESC else (0, 1, 8, 64, 256, 511, b, b >> 1)[b & 7])


def _setvalue_lit(t, v, value):
    allowed = O.SET_VALUES[v["key"]]
    return allowed.index(value) if allowed is not None else int(value)


SETVALUE = _Slot(_setvalue_dec, _setvalue_lit)


def _split_vpn_dec(t, v, b, x):
    """split's VPN: bytes below 0x80 a page (first, second, middle, last) of a recently
    written THP block of the process (t.thps: where a huge PMD may be), below 0xc0 a
    page of a block (_block_page), 0xc0-0xdf a page of a pfnmap block (_pfn_page:
    a special PMD is zapped); else _vpn (EFAULT without a VMA, EINVAL without a
    huge PMD)."""
    if 0xC0 <= b < 0xE0 and t.pfns:       # a page of a pfnmap block (a special PMD)
        got = _pfn_page(t, v["proc"], b & 15)
        if got >= 0:
            return got
    if b < 0xC0:
        proc = v["proc"]
        regs = t.regions.get(proc, ())
        if b < 0x80 and t.thps:
            h = _thp_block(t, proc, regs, b & 3)
            if h >= 0:
                return h + (0, 1, HPAGE_PMD_NR // 2, _HMASK)[(b >> 2) & 3]
        got = _block_page(regs, b & 15, t, proc)
        if got >= 0:
            return got
    return _vpn_p(t, v, b, x)


SPLIT_VPN = _Slot(_split_vpn_dec, lambda t, v, value: value)


def _split_proc_dec(t, v, b, x):
    """split's process: bytes below 0x80 the process of a recently written THP block
    (the (b & 3)-th newest of t.thps), 0x80-0x9f of a pfnmap block (t.pfns), if
    alive; else as PROC."""
    if b < 0x80 and t.thps:
        p = t.thps[-1 - (b & 3) % len(t.thps)][0]
        if p in t.regions:
            return p
    if 0x80 <= b < 0xA0 and t.pfns:      # the process of a pfnmap block
        p = t.pfns[-1 - (b & 3) % len(t.pfns)][0]
        if p in t.regions:
            return p
    return _proc_dec(t, v, b, x)


SPLIT_PROC = _Slot(_split_proc_dec, PROC.lit)


def _shared_maps(t: _Track, file: Optional[str] = None) -> list:
    """Up to 8 shared file mappings (tracked VMAs with _S and a file; of ``file`` if
    given) of live processes, newest process first: what wp_range and clean_record
    walk."""
    out = []
    for regs in reversed(t.regions.values()):
        for k in range(len(regs) - 1, -1, -1):
            r = regs[k]
            if r is not None and r[2] & _S and r[3] is not None \
                    and (file is None or r[3] == file):
                out.append(r)
                if len(out) == 8:
                    return out
    return out


def _dfile_dec(t, v, b, x):
    """wp_range / clean_record's file: bytes below 0x80 the file of a recent CPU write
    through a shared file mapping, below 0xc0 the file of one of the newest shared
    file mappings, if any; else as FILE."""
    if b < 0xC0 and t.files:
        if b < 0x80 and t.dirtied:
            return t.dirtied[-1 - (b & 3) % len(t.dirtied)][0]
        maps = _shared_maps(t)
        if maps:
            return maps[(b & 7) % len(maps)][3]
    return _defined(t.files, b, x)


def _dpgoff_dec(t, v, b, x):
    """Their first page: bytes below 0x80 the pgoff of a recent CPU write through a
    shared mapping of the file (or the one before it); below 0xc0 the first, second
    or middle pgoff a newest shared mapping of the file maps, or the one before it;
    else as PGOFF."""
    if b == ESC:
        return x & U64_MASK
    if b < 0x80 and t.dirtied:
        f = v["file"]
        pgs = [pg for g, pg in t.dirtied if g == f]
        if pgs:
            pg = pgs[-1 - (b & 3) % len(pgs)]
            return max(pg - 1, 0) if b & 4 else pg
    if b < 0xC0:
        maps = _shared_maps(t, v["file"])
        if maps:
            r = maps[(b & 3) % len(maps)]
            n = r[1] - r[0]
            return (r[4], r[4] + 1 % n, r[4] + n // 2, max(r[4] - 1, 0))[(b >> 2) & 3]
    return _small_index(t.file_pages.get(v["file"], 0), b)


def _dspan_dec(t, v, b, x):
    """Their length: bytes below 0xc0 from pgoff to the end of a shared mapping of the
    file that maps pgoff (the newest), or 1, 2-4 pages, or to the file's end; else as
    FILE_SPAN."""
    if b == ESC:
        return x & U64_MASK
    if b < 0xC0:
        pg = v["pgoff"]
        for r in _shared_maps(t, v["file"]):
            if r[4] <= pg < r[4] + r[1] - r[0]:
                mode = (b >> 4) & 3
                if mode == 0 or mode == 1:
                    return r[4] + r[1] - r[0] - pg
                if mode == 2:
                    return 1 + (b & 3)
                return max(t.file_pages.get(v["file"], 0) - pg, 1)
    return _span_dec(t, v, b, x)


def _shared_wmaps(t: _Track) -> list:
    """(proc, VMA) of up to 8 writable shared file mappings, newest process first."""
    out = []
    for p, regs in reversed(t.regions.items()):
        for k in range(len(regs) - 1, -1, -1):
            r = regs[k]
            if r is not None and r[2] & (_S | _W) == _S | _W and r[3] is not None:
                out.append((p, r))
                if len(out) == 8:
                    return out
    return out


def _dirty_proc_dec(t, v, b, x):
    maps = _shared_wmaps(t)
    return maps[(b & 7) % len(maps)][0]


def _dirty_vpn_dec(t, v, b, x):
    mine = [r for p, r in _shared_wmaps(t) if p == v["proc"]]
    r = mine[(b & 3) % len(mine)]
    return r[0] + ((b >> 2) & 3) % (r[1] - r[0])


def _apply_clean(t: _Track, op) -> None:
    """wp_range / clean_record: the pages they cover are clean (or write-protected)."""
    if t.dirtied:
        a, f = op.pgoff, op.file
        t.dirtied = [d for d in t.dirtied if d[0] != f or not 0 <= d[1] - a < op.npages]


DFILE = _Slot(_dfile_dec, FILE.lit)
DPGOFF = _Slot(_dpgoff_dec, lambda t, v, value: value)
DSPAN = _Slot(_dspan_dec, lambda t, v, value: value)


# --- the op table: which slot decodes which field, in slot order -------------------------

_ANY_SCAN = 0xC0         # ksm_scan's (unused) slot-0 bytes from here on keep it a scan
_MERGE_KEY = "madvise mergeable"     # _needs' substitute for a ksm_scan: a plan, no class
_ALLOC_OK_KEY = "set thp_alloc ok"   # _needs' substitute for a read / write after a fail
_FAIL_MIN_OPS = 2        # ops `set thp_alloc fail` stays on before _needs may end it
_HUGE_KEY = "madvise hugepage"       # _needs' substitute for a read / write after a fresh block
_READ, _WRITE, _CLEAN, _WP = O.Read, O.Write, O.CleanRecord, O.WpRange
_FRESH_OPS = 4           # ops after a whole-block mmap in which _needs may madvise it
_DIRTY_KEY = "write shared"          # _needs' substitute for a clean_record / wp_range
_SHMAP_KEY = "mmap shared"           # ... and the one while no shared file mapping exists
_DEVMAP_KEY = "mmap pfnmap"          # _needs' substitute for a read / write after a new BO
_PFN_READ_KEY = "read pfn"           # ... a read / write aimed at a fresh pfnmap's block
_PFN_WRITE_KEY = "write pfn"

_P, _V, _N = ("proc", PROC), ("vpn", _vpn("proc")), ("npages", _npages("proc", "vpn"))
_VAL, _VAL_AT = ("value", VALUE), ("value", VAL_AT)
_F, _PG = ("file", FILE), ("pgoff", PGOFF)
_D, _AP, _VMN = ("dev", ADEV), ("proc", APROC), ("vm", VM)

_SPECS: dict[type, tuple] = {
    O.Mmap: (_P, ("vpn", _vpn_mmap("proc")), ("npages", MMAP_NPAGES),
             (("prot", "flags"), PROTFLAGS),
             (("file", "off"), FILEOFF)),
    O.Munmap: (_P, _V, _N),
    O.Mprotect: (_P, _V, _N, ("prot", PROT)),
    O.Madvise: (_P, ("advice", ADVICE), ("vpn", MADV_VPN), ("npages", MADV_NPAGES)),
    O.Read: (_P, _V),
    O.Write: (_P, _V, _VAL_AT),
    O.Fork: (("proc", FORK_PROC),),
    O.Exit: (_P,),
    O.Poke: (_P, ("vpn", POKE_VPN), _VAL_AT),
    O.ClearRefs: (_P,),
    O.Pin: (_P, ("vpn", PIN_VPN), ("npages", PIN_NPAGES), ("mode", PINMODE)),
    O.PinRead: (("pin", PIN), ("index", PIN_INDEX)),
    O.PinWrite: (("pin", PIN_W), ("index", PIN_INDEX), _VAL),
    O.Unpin: (("pin", PIN),),
    O.File: (("file", NEWFILE), ("devmem", DEVMEM), ("npages", FILE_NPAGES)),
    O.FileRead: (_F, _PG),
    O.FileWrite: (_F, _PG, _VAL),
    O.WpRange: (("file", DFILE), ("pgoff", DPGOFF), ("npages", DSPAN)),
    O.CleanRecord: (("file", DFILE), ("pgoff", DPGOFF), ("npages", DSPAN)),
    O.Split: (("proc", SPLIT_PROC), ("vpn", SPLIT_VPN)),
    O.SplitFolio: (("proc", SPLIT_PROC), ("vpn", SPLIT_VPN)),
    O.KsmScan: (),
    O.Mirror: (("dev", MDEV), _P, _V, ("npages", MIRROR_NPAGES)),
    O.Unmirror: (("sub", SUB),),
    O.DevRead: (_D, _AP, ("vpn", AVPN_R)),
    O.DevWrite: (_D, _AP, ("vpn", AVPN_W), _VAL_AT),
    O.DevExclusive: (_D, _AP, ("vpn", AVPN_X)),
    O.DevAtomic: (_D, _AP, ("vpn", AVPN_X), ("add", VALUE)),
    O.DevEvents: (_D,),
    O.Lock: (_P, ("vpn", LOCK_VPN)),
    O.Unlock: (("proc", UNLOCK_PROC), ("vpn", UNLOCK_VPN)),
    O.VmInit: (("vm", NEWVM), ("start", VM_START), ("npages", VM_NPAGES)),
    O.BindMap: (_VMN, ("va", VA), ("npages", VA_NPAGES), _F, (("off", "is_async"), OFF_ASYNC)),
    O.BindUnmap: (_VMN, ("va", VA), ("npages", VA_NPAGES), ("is_async", ASYNC)),
    O.VmRun: (_VMN, ("count", COUNT)),
    O.GpuRead: (_VMN, ("va", VA)),
    O.UnbindObj: (_F,),
    O.VmState: (_VMN,),
    O.Set: (("key", SETKEY), ("value", SETVALUE)),
    O.State: (_P, _V),
    O.Same: (_P, _V, ("proc2", PROC), ("vpn2", _vpn("proc2"))),
}


def _needs(cls: type, t: _Track, slot0: int) -> Optional[type]:
    """The op to emit instead of cls when a name kind cls needs does not exist yet.

    When slot 0 is clustered (not ESC), also: an access to a process with no tracked
    VMA becomes ``mmap`` in that process (else every op before the first mmap is a
    SEGV), an ``exit`` of the last live process becomes ``fork`` (after it every
    later op is ESRCH: a wasted input), a pin access (pread, pwrite, unpin) while
    no pin is live becomes ``pin``, unless its byte is >= _ANY_PIN (a dead handle on
    purpose), an ``unmirror`` while no subscription is live becomes ``mirror`` (unless
    its byte is >= _ANY_SUB), and a device access (dread, dwrite, dexcl, datomic)
    while no live subscription watches part of a tracked VMA becomes ``mirror``
    (unless its device byte is >= _ANY_DEV: EINVAL on purpose), an ``unlock`` while
    no lock is tracked becomes ``lock`` (unless its byte is >= 0xc0), and a ``ksm_scan``
    while no tracked VMA is mergeable becomes ``madvise P VPN N mergeable`` (_MERGE_KEY;
    unless its unused slot 0 is >= _ANY_SCAN), and while `set thp_alloc fail` is
    in effect (for _FAIL_MIN_OPS ops or more) a ``read`` or ``write`` whose slot 0 is
    below 0xc0 becomes ``set thp_alloc ok`` (_ALLOC_OK_KEY); within _FRESH_OPS ops of
    a whole-block private anon mmap (512-aligned, 512-page multiple), while `set thp
    madvise` is in effect and that VMA is neither hugepage nor nohugepage, a ``read``
    or ``write`` whose slot 0 is below 0xa0 becomes ``madvise P VPN N hugepage`` on
    it (_HUGE_KEY); within _FRESH_OPS ops of a pfnmap mmap with a whole aligned
    block, one whose slot 0 is below 0x60 aims at a page of its blocks (_pfn_page,
    _PFN_READ_KEY / _PFN_WRITE_KEY: the fault that inserts a special PMD); else
    within _FRESH_OPS ops of a ``file F N devmem`` no pfnmap maps yet, such a read
    or write becomes ``mmap P VPN N rw shared,pfnmap file=F off=O`` of it
    (_DEVMAP_KEY); a ``clean_record`` or ``wp_range`` whose slot 0 is below 0x80,
    while no tracked CPU write dirtied a shared file page since the last of them
    (t.dirtied), becomes a ``write`` to a writable shared file mapping (_DIRTY_KEY),
    or while there is none an ``mmap P VPN N rw shared file=F off=0`` of the newest
    shmem file (else a pfnmap of the newest BO) (_SHMAP_KEY).
    A literal slot 0 keeps the op as written.
    """
    kinds = _NEEDED[cls]
    if "vma" in kinds:
        if slot0 != ESC:
            if cls is _READ or cls is _WRITE:
                if t.alloc_fail and slot0 < 0xC0 and t.nops - t.fail_at >= _FAIL_MIN_OPS:
                    return _ALLOC_OK_KEY     # thp_alloc fail does not stay on for long
                fresh = t.fresh
                if fresh is not None and slot0 < 0xA0 and t.nops - fresh[3] <= _FRESH_OPS \
                        and t.thp == "madvise":
                    r = _containing(t.regions.get(fresh[0], ()), fresh[1])
                    if r is not None and r[0] == fresh[1] and not r[2] & (_H | _NH):
                        return _HUGE_KEY     # a fresh THP block: madvised before touched
                if slot0 < 0x60 and t.nops - t.fresh_pfn <= _FRESH_OPS \
                        and t.pfns and t.pfns[-1][0] in t.regions:
                    return _PFN_WRITE_KEY if cls is _WRITE else _PFN_READ_KEY
                fd = t.fresh_dev
                if fd is not None and slot0 < 0xA0 and t.nops - fd[1] <= _FRESH_OPS \
                        and t.top:
                    return _DEVMAP_KEY       # a new devmem BO: map it (pfnmap) first
            regs = t.regions.get(_proc_dec(t, None, slot0, 0))
            if regs is not None and not any(regs):
                return O.Mmap
        return None
    if "live" in kinds:
        return O.Fork if len(t.regions) <= 1 and slot0 != ESC else None
    if "pin" in kinds and (t.next_pin == 1 or (not t.pins and slot0 < _ANY_PIN)):
        return O.Pin       # no pin yet; or none alive and the byte asks for a live one
    if "sub" in kinds and (t.next_sub == 1 or (not t.subs and slot0 < _ANY_SUB)):
        return O.Mirror    # no mirror yet; or none alive and the byte asks for a live one
    if "dsub" in kinds:    # a device access while no mapped range is watched: mirror
        return O.Mirror if slot0 < _ANY_DEV and not _overlapping(t, 1) else None
    if "lock" in kinds:    # unlock while no lock is tracked: lock
        return O.Lock if slot0 < 0xC0 and not t.locked else None
    if "merge" in kinds:   # ksm_scan while no tracked VMA is mergeable: make some so
        return _MERGE_KEY if slot0 < _ANY_SCAN and not _any_mergeable(t) else None
    if (cls is _CLEAN or cls is _WP) and slot0 < 0x80 and not t.dirtied \
            and t.files and t.top:
        # nothing dirty to find: write a shared file page first, or map a file shared
        return _DIRTY_KEY if _shared_wmaps(t) else _SHMAP_KEY
    if "vm" in kinds and not t.vms:
        return O.VmInit
    if "file" in kinds and not t.files:
        return O.File
    return None


# Name fields an op cannot be written without (mmap's file= is optional; file/vm
# define their name rather than use one).
_NEEDED = {cls: frozenset(f for f, slot in spec if f in ("pin", "sub", "vm", "file")
                          and slot in (PIN, PIN_W, SUB, VM, FILE, DFILE))
           for cls, spec in _SPECS.items()}
_NEEDED[O.Exit] = frozenset(("live",))
_NEEDED[O.KsmScan] = frozenset(("merge",))
_NEEDED[O.Unlock] = frozenset(("lock",))
_NEEDED[_MERGE_KEY] = _NEEDED[O.Madvise]
_NEEDED[_ALLOC_OK_KEY] = frozenset()
_NEEDED[_HUGE_KEY] = frozenset()
_NEEDED[_DIRTY_KEY] = frozenset()
_NEEDED[_SHMAP_KEY] = frozenset()
_NEEDED[_DEVMAP_KEY] = _NEEDED[_PFN_READ_KEY] = _NEEDED[_PFN_WRITE_KEY] = frozenset()
_NEEDED.update({cls: frozenset(("dsub",))
                for cls in (O.DevRead, O.DevWrite, O.DevExclusive, O.DevAtomic)})
_NEEDED.update({cls: frozenset(("vma",)) for cls, spec in _SPECS.items()
                if cls is not O.Mmap and spec[:1] == (_P,)
                and any(f == "vpn" for f, _ in spec)})
_NEEDED[O.Split] = _NEEDED[O.SplitFolio] = frozenset(("vma",))


_POPULATE_ADVICE = frozenset((O.Advice.POPULATE_READ, O.Advice.POPULATE_WRITE))


def _any_mergeable(t: _Track) -> bool:
    return t.merging and any(r is not None and r[2] & _M
                             for regs in t.regions.values() for r in regs)


def walk_too_long(t: _Track, op) -> bool:
    """Would op populate more than POPULATE_MAX pages, page by page?

    mmap populates its whole (valid) range; madvise_populate and pin_user_pages stop
    at the first page without a VMA, so they count only when the tracked VMAs cover
    more than POPULATE_MAX pages from op.vpn on (a pin of more than PIN_MAX_PAGES is
    EINVAL before any walk). decode() caps npages at POPULATE_MAX there and encode()
    refuses such an op: an input that stalls the models is no use to a fuzzer.
    """
    if op.__class__ is O.Mmap:
        return (op.flags in _POPULATE_SETS and op.npages > POPULATE_MAX
                and op.vpn + op.npages <= TASK_SIZE_PAGES)
    if (op.__class__ is O.Madvise and op.advice in _POPULATE_ADVICE
            or op.__class__ is O.Pin and op.npages <= PIN_MAX_PAGES) \
            and op.npages > POPULATE_MAX:
        regs = t.regions.get(op.proc, ())
        end, limit = op.vpn, min(op.vpn + POPULATE_MAX, ADDR_LIMIT_PAGES)
        while end <= limit:                       # follow contiguous tracked VMAs
            r = _containing(regs, end)
            if r is None:
                return False
            end = r[1]
        return True
    return False


class DecoderTableError(TypeError):
    """_SPECS or OP_WEIGHTS does not match reference/ops.py; raised at import."""


def _selector_table() -> tuple[type, ...]:
    table = [cls for cls in O.ALL_OPS for _ in range(OP_WEIGHTS[cls])]
    if len(table) != 256:
        raise DecoderTableError(f"OP_WEIGHTS sum to {len(table)}, need 256: adjust the "
                                f"weights in fuzz/decoder.py")
    return tuple(table)


def _check_specs() -> None:
    from dataclasses import fields
    for cls in O.ALL_OPS:
        if cls not in _SPECS:
            raise DecoderTableError(f"op {cls.__name__} has no slot spec in fuzz/decoder.py "
                                    f"_SPECS: add one so the decoder can emit it")
        spec = _SPECS[cls]
        named = [n for f, _ in spec for n in ((f,) if isinstance(f, str) else f)]
        declared = [f.name for f in fields(cls)]
        if sorted(named) != sorted(declared) or len(spec) > NSLOTS:
            raise DecoderTableError(f"op {cls.__name__}: slots {named} must name exactly "
                                    f"its fields {declared} in at most {NSLOTS} slots")


_check_specs()
SELECTOR = _selector_table()


# --- applying an op to the tracked state -------------------------------------------------

def _mmap_ok(op: O.Mmap, t: Optional[_Track] = None) -> bool:
    """rules.md's mmap checks, roughly: would this mmap create a VMA? A pfnmap needs
    shared, a devmem file and off + N inside the BO (devmem.md)."""
    fl = op.flags
    if fl == _PFN_SHARED:
        return (t is not None and op.npages > 0 and op.file in t.devmem
                and (op.off or 0) + op.npages <= t.file_pages.get(op.file, 0)
                and (op.vpn == 0 or MMAP_MIN_PAGES <= op.vpn <= TASK_SIZE_PAGES - op.npages))
    return (op.npages > 0 and fl in _MAPPABLE_SETS
            and (fl in _ANON_SETS) != (op.file is not None)
            and (op.vpn == 0 or MMAP_MIN_PAGES <= op.vpn <= TASK_SIZE_PAGES - op.npages))


def _apply_mmap(t: _Track, op: O.Mmap) -> None:
    regs = t.regions.get(op.proc)
    if regs is None or not _mmap_ok(op, t):
        return
    vpn, pfn, off = op.vpn, op.flags == _PFN_SHARED, op.off or 0
    if vpn == 0:                         # thp_get_unmapped_area aligns private anon
        huge = op.file is None and op.flags in _PRIVATE_SETS \
            and op.npages % HPAGE_PMD_NR == 0
        if pfn and op.npages >= HPAGE_PMD_NR:   # drm_get_unmapped_area: VA ~ PFN in 2 MiB
            vpn = _pick_addr(regs, op.npages, HPAGE_PMD_NR, off & _HMASK)
        else:
            vpn = _pick_addr(regs, op.npages, HPAGE_PMD_NR if huge else 1)
    _subtract(regs, vpn, vpn + op.npages)
    if pfn:
        if t.fresh_dev is not None and t.fresh_dev[0] == op.file:
            t.fresh_dev = None
        h = (vpn + _HMASK) & ~_HMASK     # its blocks where a special PMD can be inserted
        blocks = range(h, min(vpn + op.npages - _HMASK, h + 4 * HPAGE_PMD_NR),
                       HPAGE_PMD_NR)
        if blocks and not (off + h - vpn) & _HMASK:
            t.pfns.extend((op.proc, h) for h in blocks)
            del t.pfns[:-_WRITTEN]
            t.fresh_pfn = t.nops
            if h == vpn:             # madvised hugepage first (_HUGE_KEY): under `thp
                t.fresh = (op.proc, vpn, op.npages, t.nops)   # madvise` it gates huge faults
    if len(regs) < _MAX_REGIONS:
        attr = _prot_attr(op.prot) | (0 if op.flags in _PRIVATE_SETS else _S) \
            | (_PF if pfn else 0)
        regs.append((vpn, vpn + op.npages, attr, op.file, off))
        if not attr & _S and op.file is None and not (vpn | op.npages) & _HMASK:
            t.fresh = (op.proc, vpn, op.npages, t.nops)


def _apply_mprotect(t: _Track, op: O.Mprotect) -> None:
    regs = t.regions.get(op.proc)
    if regs is not None and 0 < op.npages <= TASK_SIZE_PAGES - op.vpn:
        _reattr(regs, op.vpn, op.vpn + op.npages, ~(_W | _NONE), _prot_attr(op.prot))


def _apply_munmap(t: _Track, op: O.Munmap) -> None:
    regs = t.regions.get(op.proc)
    if regs is not None and 0 < op.npages <= TASK_SIZE_PAGES - op.vpn:
        _subtract(regs, op.vpn, op.vpn + op.npages)


def _apply_fork(t: _Track, op: O.Fork) -> None:
    parent = t.regions.get(op.proc)
    if parent is not None:               # a fork of a dead process fails: no child
        t.top = _PNAMES[t.next_proc]
        t.regions[t.top] = list(parent)
    t.next_proc += 1                     # the parser counts it either way


def _apply_exit(t: _Track, op: O.Exit) -> None:
    t.regions.pop(op.proc, None)
    if op.proc == t.top:
        t.top = max(t.regions, key=_pidx, default="")


_PINNED = 4     # recent pinned ranges that _vpn aims at


def _pin_ok(t: _Track, op: O.Pin) -> bool:
    """Would the pin succeed (reference/gup.py)? 0 < N <= PIN_MAX_PAGES, a live process, every
    page in a tracked VMA that is not PROT_NONE, has VM_WRITE for a FOLL_WRITE pin,
    and is not past its file's EOF (SIGBUS). Optimistic about what is not tracked."""
    n = op.npages
    regs = t.regions.get(op.proc)
    if regs is None or not 0 < n <= PIN_MAX_PAGES:
        return False
    vpn, end, write = op.vpn, op.vpn + n, _is_write(op.mode)
    while vpn < end:                     # one step per VMA
        r = _containing(regs, vpn)
        if r is None or r[2] & (_NONE | _PF) or (write and not r[2] & _W):
            return False                 # GUP refuses VM_IO|VM_PFNMAP: EFAULT
        if r[3] is not None and \
                r[4] + min(end, r[1]) - 1 - r[0] >= t.file_pages.get(r[3], 0):
            return False                 # its last page needed is past EOF
        vpn = r[1]
    return True


def _is_write(mode: O.PinMode) -> bool:
    return mode is O.PinMode.RW or mode is O.PinMode.RW_LONGTERM   # no Enum hashing


def _apply_pin(t: _Track, op: O.Pin) -> None:
    t.next_pin += 1                      # the parser counts every pin line
    if _pin_ok(t, op):                   # the models name successful pins only
        t.pin_ok += 1
        t.pins[_HNAMES[t.pin_ok]] = op.npages
        if _is_write(op.mode):
            t.wpins.add(_HNAMES[t.pin_ok])
        t.pinned.append((op.vpn, min(op.npages, PIN_CAP)))
        if len(t.pinned) > _PINNED:
            del t.pinned[0]


def _mirror_ok(t: _Track, op: O.Mirror) -> bool:
    """Would the mirror succeed (reference/notifier.py insert)? A live process, N > 0
    and VPN + N <= 2^52; no VMA is needed."""
    return op.proc in t.regions and 0 < op.npages and op.vpn + op.npages <= ADDR_LIMIT_PAGES


def _apply_mirror(t: _Track, op: O.Mirror) -> None:
    t.next_sub += 1                      # the parser counts every mirror line
    if _mirror_ok(t, op):                # the models name successful mirrors only
        t.sub_ok += 1
        t.subs[_MNAMES[t.sub_ok]] = (op.dev, op.proc, op.vpn, op.vpn + op.npages)


_HOT = 6        # recent hot ranges that _vpn, lock and device accesses aim at
_HOT_CAP = 16   # pages of a pageout / mergeable range kept hot
_LOCKED = 4     # recent locks that unlock aims at


def _heat(t: _Track, proc: str, vpn: int, npages: int) -> None:
    t.hot_proc = proc
    t.hot.append((vpn, npages))
    if len(t.hot) > _HOT:
        del t.hot[0]


def _apply_grant(t: _Track, op) -> None:
    """dexcl / datomic: the page becomes (or stays) device-exclusive, if it is in a
    private writable tracked VMA (else EFAULT / EOPNOTSUPP: nothing to heat)."""
    r = _containing(t.regions.get(op.proc, ()), op.vpn)
    if r is not None and r[2] & (_W | _S | _NONE) == _W:
        _heat(t, op.proc, op.vpn, 1)


def _apply_devaccess(t: _Track, op) -> None:
    """dread / dwrite: the page the device now mirrors gets hot (CPU faults, fork and
    range ops then meet it: 512-page THP VMAs would dilute those meetings)."""
    if _containing(t.regions.get(op.proc, ()), op.vpn) is not None:
        _heat(t, op.proc, op.vpn, 1)


def _apply_lock(t: _Track, op: O.Lock) -> None:
    _heat(t, op.proc, op.vpn, 1)
    t.locked.append((op.proc, op.vpn))
    if len(t.locked) > _LOCKED:
        del t.locked[0]


_WRITTEN = 4    # recent CPU writes that pageout / mergeable ranges aim at


def _apply_write(t: _Track, op: O.Write) -> None:
    r = _containing(t.regions.get(op.proc, ()), op.vpn)
    if r is None or not r[2] & _W:
        return                           # SEGV: nothing made present
    t.written.append((op.proc, op.vpn))
    if len(t.written) > _WRITTEN:
        del t.written[0]
    if not r[2] & (_S | _NH) and r[3] is None and t.thp != "never" \
            and (r[2] & _H or t.thp == "always"):
        h = op.vpn & ~_HMASK
        if r[0] <= h and h + HPAGE_PMD_NR <= r[1] and (op.proc, h) not in t.thps:
            t.thps.append((op.proc, h))       # a THP now, or a PTE-level page in its block
            if len(t.thps) > _WRITTEN:
                del t.thps[0]
    pg = r[4] + op.vpn - r[0]
    if r[2] & _S and r[3] is not None and pg < t.file_pages.get(r[3], 0):
        t.dirtied.append((r[3], pg))          # a dirty PTE for clean_record / wp_range
        if len(t.dirtied) > _WRITTEN:
            del t.dirtied[0]


def _apply_unlock(t: _Track, op: O.Unlock) -> None:
    t.locked = [k for k in t.locked if k[1] != op.vpn]


_PAGEOUT, _MERGEABLE, _UNMERGEABLE = _A.PAGEOUT, _A.MERGEABLE, _A.UNMERGEABLE


def _apply_madvise(t: _Track, op: O.Madvise) -> None:
    """pageout ranges get hot (later ops fault them back, fork, pin or write them),
    mergeable ones are kept for _vpn mode 12 (equal values written there, pins);
    mergeable / unmergeable set / clear _M on private tracked VMAs, hugepage /
    nohugepage set _H / _NH (clearing the other) on tracked VMAs."""
    adv = op.advice
    if adv is _HUGEPAGE or adv is _NOHUGEPAGE:    # VM_HUGEPAGE / VM_NOHUGEPAGE
        regs = t.regions.get(op.proc)
        if regs is not None and 0 < op.npages <= TASK_SIZE_PAGES - op.vpn:
            if adv is _HUGEPAGE:
                _reattr(regs, op.vpn, op.vpn + op.npages, ~_NH, _H)
            else:
                _reattr(regs, op.vpn, op.vpn + op.npages, ~_H, _NH)
        return
    if adv is _PAGEOUT or adv is _MERGEABLE or adv is _UNMERGEABLE:
        n = op.npages
        if not 0 < n <= TASK_SIZE_PAGES - op.vpn:
            return
        if adv is _PAGEOUT:
            _heat(t, op.proc, op.vpn, min(n, _HOT_CAP))
            return
        regs = t.regions.get(op.proc)
        if regs is not None:
            if adv is _MERGEABLE:
                t.merging = True
                t.merged.append((op.vpn, min(n, _HOT_CAP)))
                if len(t.merged) > _HOT:
                    del t.merged[0]
                _reattr(regs, op.vpn, op.vpn + n, -1, _M, private=True)
            else:
                _reattr(regs, op.vpn, op.vpn + n, ~_M, 0)


def _apply_file(t: _Track, op: O.File) -> None:
    t.files.append(op.file)
    t.file_pages[op.file] = op.npages
    if op.devmem and op.npages < O.FILE_LIMIT_PAGES:   # a BO (else EINVAL)
        t.devmem.append(op.file)
        if op.npages:
            t.fresh_dev = (op.file, t.nops)


def _apply_fwrite(t: _Track, op: O.FileWrite) -> None:
    if op.pgoff >= t.file_pages.get(op.file, 0):   # a write past EOF grows the file
        t.file_pages[op.file] = op.pgoff + 1


def _apply_vm(t: _Track, op: O.VmInit) -> None:
    t.vms.append(op.vm)
    if op.start is not None:
        t.vm_range[op.vm] = (op.start, op.npages)


def _apply_set(t: _Track, op: O.Set) -> None:
    if op.key is _SK.THP:
        t.thp = op.value
    elif op.key is _SK.THP_ALLOC:
        t.alloc_fail = op.value == "fail"
        t.fail_at = t.nops


def _apply_unpin(t: _Track, op: O.Unpin) -> None:
    t.pins.pop(op.pin, None)
    t.wpins.discard(op.pin)


# How each op changes the tracked state (ops not listed change nothing tracked).
_APPLY: dict[type, Callable] = {
    O.Mmap: _apply_mmap,
    O.Munmap: _apply_munmap,
    O.Mprotect: _apply_mprotect,
    O.Fork: _apply_fork,
    O.Exit: _apply_exit,
    O.Pin: _apply_pin,
    O.Unpin: _apply_unpin,
    O.Madvise: _apply_madvise,
    O.Write: _apply_write,
    O.Mirror: _apply_mirror,
    O.Unmirror: lambda t, op: t.subs.pop(op.sub, None),
    O.DevExclusive: _apply_grant,
    O.DevAtomic: _apply_grant,
    O.DevRead: _apply_devaccess,
    O.DevWrite: _apply_devaccess,
    O.Lock: _apply_lock,
    O.Unlock: _apply_unlock,
    O.File: _apply_file,
    O.FileWrite: _apply_fwrite,
    O.VmInit: _apply_vm,
    O.Set: _apply_set,
    O.CleanRecord: _apply_clean,
    O.WpRange: _apply_clean,
}


def _apply(t: _Track, op) -> None:
    f = _APPLY.get(type(op))
    if f is not None:
        f(t, op)
    t.nops += 1


# --- decoding ------------------------------------------------------------------------------

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """LEB128 at pos: (value, next pos); (-1, pos) if the input ends inside it."""
    x = shift = 0
    end = len(data)
    for k in range(MAX_VARINT):
        if pos >= end:
            return -1, pos
        c = data[pos]
        pos += 1
        if k == MAX_VARINT - 1:
            return x | c << shift, pos
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, pos
        shift += 7
    return x, pos   # not reached


def _defaults(cls: type) -> dict:
    """Field defaults of an op class, for building it by filling its __dict__ (decode).

    decode() skips the frozen dataclass __init__ (object.__new__, then the fields
    go straight into __dict__: 2-3x faster); that is only valid for a plain frozen
    dataclass, which this checks at import.
    """
    from dataclasses import MISSING, fields
    if "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise DecoderTableError(f"{cls.__name__} has __slots__ or __post_init__: decode() "
                                f"builds ops through __dict__; build it with cls(**vals)")
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


# Per op class: (field defaults, ((field or (field, field), slot decoder), ...)).
_PLANS: dict[type, tuple] = {cls: (_defaults(cls), tuple((f, slot.dec) for f, slot in spec))
                             for cls, spec in _SPECS.items()}
_defaults(Stmt)


def _decode_record(t: _Track, cls: type, data: bytes, pos: int, end: int):
    """Decode one record's slots at data[pos:pos+RECORD_SIZE]; (op, next pos) or (None, _)."""
    defaults, plan = _PLANS[cls]
    vals = dict(defaults)
    ext = pos + RECORD_SIZE
    i = pos + 1
    for field, dec in plan:
        b = data[i]
        i += 1
        x = 0
        if b == ESC:
            x, ext = _varint(data, ext)
            if x < 0:
                return None, end
        if field.__class__ is str:
            vals[field] = dec(t, vals, b, x)
        else:
            vals[field[0]], vals[field[1]] = dec(t, vals, b, x)
    if walk_too_long(t, cls(**vals)):
        vals["npages"] = POPULATE_MAX
    return cls(**vals), ext


# Per op class, everything decode() looks up: (class, substitution kinds, field
# defaults, slot plan, state update or None); and the same by selector byte.
_INFO: dict = {cls: (cls, _NEEDED[cls]) + _PLANS[cls] + (_APPLY.get(cls),)
               for cls in O.ALL_OPS}
# A madvise whose advice slot is ignored: always mergeable (ksm_scan's substitute).
_INFO[_MERGE_KEY] = (O.Madvise, _NEEDED[_MERGE_KEY], _PLANS[O.Madvise][0],
                     tuple((f, (lambda t, v, b, x: _A.MERGEABLE) if f == "advice" else dec)
                           for f, dec in _PLANS[O.Madvise][1]),
                     _APPLY[O.Madvise])
# `set thp_alloc ok` whatever the slot bytes say.
_INFO[_ALLOC_OK_KEY] = (O.Set, _NEEDED[_ALLOC_OK_KEY], _PLANS[O.Set][0],
                        (("key", lambda t, v, b, x: _SK.THP_ALLOC),
                         ("value", lambda t, v, b, x: "ok")),
                        _APPLY[O.Set])
# `write P VPN VALUE` into a writable shared file mapping (t.dirtied was empty).
_INFO[_DIRTY_KEY] = (O.Write, _NEEDED[_DIRTY_KEY], _PLANS[O.Write][0],
                     (("proc", _dirty_proc_dec), ("vpn", _dirty_vpn_dec),
                      ("value", VALUE.dec)),
                     _APPLY[O.Write])
# `mmap P VPN N rw shared file=F off=0`: the newest shmem file (else the newest BO,
# mapped shared,pfnmap), at most 16 pages of it, in a fresh small area (or over what
# is there: MAP_FIXED), by a live process.
def _shmap_file(t: _Track) -> str:
    for f in reversed(t.files):
        if f not in t.devmem:
            return f
    return t.files[-1]



_SHARED_RW = (O.Prot.RW, frozenset({O.MapFlag.SHARED}))
_INFO[_SHMAP_KEY] = (O.Mmap, _NEEDED[_SHMAP_KEY], _PLANS[O.Mmap][0],
                     (("proc", lambda t, v, b, x: t.top),
                      ("vpn", lambda t, v, b, x: 0x100 + 0x10 * (b & 31)),
                      ("npages", lambda t, v, b, x:
                       min(max(t.file_pages.get(_shmap_file(t), 1), 1), 16)),
                      (("prot", "flags"), lambda t, v, b, x:
                       _PFN_RW if _shmap_file(t) in t.devmem else _SHARED_RW),
                      (("file", "off"), lambda t, v, b, x: (_shmap_file(t), 0))),
                     _APPLY[O.Mmap])
# `mmap P VPN N rw|r shared,pfnmap file=F off=O` of the newest BO (t.fresh_dev) by the
# newest process: a fresh 512-aligned VPN (blocks 49..64, past the fresh THP areas of
# _vpn_mmap: no PTE table left there, so the first fault inserts a special PMD), or 0
# (the model picks) for bytes from 0xc0; one block, two, or all of the BO; off 0 (or
# 512 when it fits).
_DEVMAP_BLOCK = 49
def _devmap_npages(t, v, b, x):
    size = t.file_pages.get(t.fresh_dev[0], 1)
    return min(size, (HPAGE_PMD_NR, 2 * HPAGE_PMD_NR, size, HPAGE_PMD_NR)[b & 3])


def _devmap_fileoff(t, v, b, x):
    f = t.fresh_dev[0]
    off = HPAGE_PMD_NR if b >= 0xC0 and v["npages"] + HPAGE_PMD_NR <= t.file_pages[f] else 0
    return f, off


_PFN_RW, _PFN_R = (O.Prot.RW, _PFN_SHARED), (O.Prot.R, _PFN_SHARED)
_INFO[_DEVMAP_KEY] = (O.Mmap, _NEEDED[_DEVMAP_KEY], _PLANS[O.Mmap][0],
                      (("proc", lambda t, v, b, x: t.top),
                       ("vpn", lambda t, v, b, x:
                        0 if b >= 0xC0 else HPAGE_PMD_NR * (_DEVMAP_BLOCK + (b & 15))),
                       ("npages", _devmap_npages),
                       (("prot", "flags"), lambda t, v, b, x: _PFN_R if b & 7 == 7 else _PFN_RW),
                       (("file", "off"), _devmap_fileoff)),
                      _APPLY[O.Mmap])
# A read / write at a page of the newest pfnmap blocks (t.pfns), by their process.
def _pfn_vpn(t, v, b, x):
    got = _pfn_page(t, v["proc"], b & 15)
    return got if got >= 0 else t.pfns[-1][1]


_PFN_PROC = ("proc", lambda t, v, b, x: t.pfns[-1][0])
_INFO[_PFN_READ_KEY] = (O.Read, frozenset(), _PLANS[O.Read][0],
                        (_PFN_PROC, ("vpn", _pfn_vpn)), _APPLY.get(O.Read))
_INFO[_PFN_WRITE_KEY] = (O.Write, frozenset(), _PLANS[O.Write][0],
                         (_PFN_PROC, ("vpn", _pfn_vpn), ("value", VALUE.dec)), _APPLY[O.Write])
# `madvise P VPN N hugepage` over the fresh block's VMA whatever the slot bytes say.
_INFO[_HUGE_KEY] = (O.Madvise, _NEEDED[_HUGE_KEY], _PLANS[O.Madvise][0],
                    (("proc", lambda t, v, b, x: t.fresh[0]),
                     ("advice", lambda t, v, b, x: _HUGEPAGE),
                     ("vpn", lambda t, v, b, x: t.fresh[1]),
                     ("npages", lambda t, v, b, x: t.fresh[2])),
                    _APPLY[O.Madvise])
_BY_SELECTOR = tuple(_INFO[cls] for cls in SELECTOR)
_MMAP, _MADVISE, _PIN = O.Mmap, O.Madvise, O.Pin


def decode(data: bytes) -> Prog:
    """The program the bytes spell (module docstring); never raises."""
    t = _Track()
    stmts = []
    pos, end = 0, len(data)
    last = end - RECORD_SIZE            # the last position a whole record starts at
    new, by_selector = object.__new__, _BY_SELECTOR
    while pos <= last and len(stmts) < MAX_OPS:
        cls, need, defaults, plan, apply = by_selector[data[pos]]
        if need:
            slot0 = data[pos + 1]
            sub = _needs(cls, t, slot0)
            if sub is not None:
                while sub is not None:       # e.g. pread -> pin -> mmap (no VMA yet)
                    cls = sub
                    sub = _needs(cls, t, slot0) if _NEEDED[cls] else None
                cls, need, defaults, plan, apply = _INFO[cls]
        # _decode_record, inlined: this loop is the fuzzer's per-input cost
        op = new(cls)                    # fields go straight into __dict__ (_defaults)
        vals = op.__dict__
        if defaults:
            vals.update(defaults)
        ext = pos + RECORD_SIZE
        i = pos + 1
        for field, dec in plan:
            b = data[i]
            i += 1
            x = 0
            if b == ESC:
                x, ext = _varint(data, ext)
                if x < 0:
                    return Prog(tuple(stmts), "<decoded>")
            if field.__class__ is str:
                vals[field] = dec(t, vals, b, x)
            else:
                vals[field[0]], vals[field[1]] = dec(t, vals, b, x)
        pos = ext
        if (cls is _MMAP or cls is _MADVISE or cls is _PIN) and walk_too_long(t, op):
            vals["npages"] = POPULATE_MAX    # op is not visible to anyone yet
        if apply is not None:
            apply(t, op)
        t.nops += 1
        stmt = new(Stmt)                 # Stmt(op=op) without the frozen __init__
        stmt.__dict__.update(op=op, expect=None, comment=None, line=0)
        stmts.append(stmt)
    return Prog(tuple(stmts), "<decoded>")


def encode(prog: Prog) -> bytes:
    """Bytes that decode back to prog's ops (see fuzz/encoder.py)."""
    from mmdiff.fuzz.encoder import encode as _encode
    return _encode(prog)
