"""The op vocabulary shared by every layer: one frozen dataclass per op of SPEC §3.

Programs are data (syzkaller prog/prog.go): the text parser, the byte decoder,
the strategies, the runner and both models all build or consume these classes.
Each class declares its text syntax in ``SYNTAX`` so that the parser and the
printer (``mmdiff.fuzz.text``) are generic over this table and cannot drift
from it.

Units: every address (``vpn``, ``va``) and every length (``npages``) is in
4 KiB pages; file offsets (``pgoff``, ``off``) are in pages too.

SYNTAX mini-language, one token spec per word after the op name:
  ``field:KIND``      a positional argument of ArgKind KIND
  ``'word'``          a literal word that must appear as is
  ``[...]``           an optional group (all its fields default to None/False)
  ``key=field:KIND``  a ``key=value`` argument
  ``?word=field``     an optional bare flag word; the field is a bool
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import ClassVar, Optional, Union

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PTRS_PER_TABLE = 512          # entries per page-table page at every level
HPAGE_PMD_NR = 512            # pages per PMD-mapped THP (2 MiB)
HPAGE_PUD_NR = 512 * 512      # pages per PUD leaf (1 GiB)
TASK_SIZE_PAGES = (1 << 35) - 1  # x86-64 TASK_SIZE_MAX = 2^47 - 4096 bytes
MMAP_MIN_PAGES = 16           # address hints are rounded up to 64 KiB (LSM mmap_min_addr)
ADDR_LIMIT_PAGES = 1 << 52    # a byte address past 2^64 wraps: such ranges are invalid
FILE_LIMIT_PAGES = 1 << 51    # a byte offset >= 2^63 is a negative loff_t (MAX_LFS_FILESIZE)
U64_MASK = (1 << 64) - 1


class ArgKind(enum.Enum):
    """How one argument is written and checked; name kinds carry their prefix letter."""

    PROC = "p"      # process name p0, p1, ...
    PIN = "h"       # pin handle h1, h2, ...
    SUB = "m"       # notifier subscription m1, m2, ...
    FILE = "f"      # file f0, f1, ...
    DEV = "d"       # device d0, d1, ...
    VM = "v"        # GPU VM v0, v1, ...
    NUM = "num"     # unsigned integer (pages, counts, indexes)
    VALUE = "value"  # 64-bit page contents; wraps modulo 2^64
    PROT = "prot"
    FLAGS = "flags"
    ADVICE = "advice"
    PINMODE = "pinmode"
    KEY = "key"     # a `set` key
    WORD = "word"   # a `set` value: a word or a number

    @property
    def is_name(self) -> bool:
        return len(self.value) == 1


class Prot(enum.Enum):
    """mmap/mprotect protection; PROT_EXEC is out of scope."""

    NONE = "none"
    R = "r"
    RW = "rw"

    @property
    def read(self) -> bool:
        return self is not Prot.NONE

    @property
    def write(self) -> bool:
        return self is Prot.RW


class MapFlag(enum.Enum):
    """mmap flags of the op language (MAP_FIXED is implied by a nonzero VPN)."""

    PRIVATE = "private"
    SHARED = "shared"
    ANON = "anon"
    POPULATE = "populate"
    PFNMAP = "pfnmap"


# Printing order of flags: the order of the enum.
_FLAG_ORDER = {f: i for i, f in enumerate(MapFlag)}


class Advice(enum.Enum):
    """madvise(2) advice values of the op language."""

    DONTNEED = "dontneed"
    HUGEPAGE = "hugepage"
    NOHUGEPAGE = "nohugepage"
    COLLAPSE = "collapse"
    PAGEOUT = "pageout"
    MERGEABLE = "mergeable"
    UNMERGEABLE = "unmergeable"
    DONTFORK = "dontfork"
    DOFORK = "dofork"
    WIPEONFORK = "wipeonfork"
    KEEPONFORK = "keeponfork"
    POPULATE_READ = "populate_read"
    POPULATE_WRITE = "populate_write"


class PinMode(enum.Enum):
    """pin_user_pages flags: FOLL_WRITE and FOLL_LONGTERM (FOLL_PIN always)."""

    R = "r"
    RW = "rw"
    R_LONGTERM = "r,longterm"
    RW_LONGTERM = "rw,longterm"

    @property
    def write(self) -> bool:
        return self in (PinMode.RW, PinMode.RW_LONGTERM)

    @property
    def longterm(self) -> bool:
        return self in (PinMode.R_LONGTERM, PinMode.RW_LONGTERM)


class SetKey(enum.Enum):
    """Keys of the `set` op: the deterministic stand-ins for kernel choices."""

    THP = "thp"                      # always / madvise / never
    THP_ZERO = "thp_zero"            # 0 / 1: use the huge zero page
    THP_ALLOC = "thp_alloc"          # ok / fail: THP allocation outcome
    MAX_PTES_NONE = "max_ptes_none"  # khugepaged knob, 0..511


SET_VALUES: dict[SetKey, Optional[tuple[str, ...]]] = {
    SetKey.THP: ("always", "madvise", "never"),
    SetKey.THP_ZERO: ("0", "1"),
    SetKey.THP_ALLOC: ("ok", "fail"),
    SetKey.MAX_PTES_NONE: None,      # a number 0..511
}


def flags_canonical(flags: frozenset[MapFlag]) -> tuple[MapFlag, ...]:
    """Flags in printing order."""
    return tuple(sorted(flags, key=_FLAG_ORDER.__getitem__))


class Op:
    """Base of all ops. Subclasses are frozen dataclasses with ``NAME`` and ``SYNTAX``."""

    NAME: ClassVar[str]
    SYNTAX: ClassVar[str]
    # The name kind this op creates when it succeeds. fork/pin/mirror return the
    # next name of that kind (p1, h1, m1: creation order); file/vm define the name
    # given as their argument DEFINES, which must not exist yet.
    CREATES: ClassVar[Optional[ArgKind]] = None
    DEFINES: ClassVar[Optional[str]] = None


def _op(name: str, syntax: str, creates: Optional[ArgKind] = None,
        defines: Optional[str] = None):
    def deco(cls):
        cls = dataclass(frozen=True)(cls)
        cls.NAME = name
        cls.SYNTAX = syntax
        cls.CREATES = creates
        cls.DEFINES = defines
        return cls
    return deco


# --- address space -------------------------------------------------------------

@_op("mmap", "proc:PROC vpn:NUM npages:NUM prot:PROT flags:FLAGS [file=file:FILE off=off:NUM]")
class Mmap(Op):
    """do_mmap with MAP_FIXED semantics (vpn 0: the model picks the address)."""
    proc: str
    vpn: int
    npages: int
    prot: Prot
    flags: frozenset
    file: Optional[str] = None
    off: Optional[int] = None


@_op("munmap", "proc:PROC vpn:NUM npages:NUM")
class Munmap(Op):
    """do_vmi_munmap."""
    proc: str
    vpn: int
    npages: int


@_op("mprotect", "proc:PROC vpn:NUM npages:NUM prot:PROT")
class Mprotect(Op):
    """mprotect_fixup / change_protection."""
    proc: str
    vpn: int
    npages: int
    prot: Prot


@_op("madvise", "proc:PROC vpn:NUM npages:NUM advice:ADVICE")
class Madvise(Op):
    """madvise_* (see Advice)."""
    proc: str
    vpn: int
    npages: int
    advice: Advice


@_op("read", "proc:PROC vpn:NUM")
class Read(Op):
    """CPU load from the page: handle_mm_fault(read) when not mapped readable."""
    proc: str
    vpn: int


@_op("write", "proc:PROC vpn:NUM value:VALUE")
class Write(Op):
    """CPU store to the page: handle_mm_fault(write) when not mapped writable."""
    proc: str
    vpn: int
    value: int


@_op("fork", "proc:PROC", creates=ArgKind.PROC)
class Fork(Op):
    """dup_mmap / copy_page_range; result is the child's name."""
    proc: str


@_op("exit", "proc:PROC")
class Exit(Op):
    """exit_mmap."""
    proc: str


@_op("poke", "proc:PROC vpn:NUM value:VALUE")
class Poke(Op):
    """FOLL_FORCE write, as a write to /proc/pid/mem."""
    proc: str
    vpn: int
    value: int


@_op("clear_refs", "proc:PROC")
class ClearRefs(Op):
    """echo 4 > /proc/pid/clear_refs: clear soft-dirty, write-protect."""
    proc: str


# --- pins ------------------------------------------------------------------------

@_op("pin", "proc:PROC vpn:NUM npages:NUM mode:PINMODE", creates=ArgKind.PIN)
class Pin(Op):
    """pin_user_pages (FOLL_PIN); result is the handle."""
    proc: str
    vpn: int
    npages: int
    mode: PinMode


@_op("pread", "pin:PIN index:NUM")
class PinRead(Op):
    """DMA read through page `index` of a pin."""
    pin: str
    index: int


@_op("pwrite", "pin:PIN index:NUM value:VALUE")
class PinWrite(Op):
    """DMA write through page `index` of a pin."""
    pin: str
    index: int
    value: int


@_op("unpin", "pin:PIN")
class Unpin(Op):
    """unpin_user_pages."""
    pin: str


# --- files -----------------------------------------------------------------------

@_op("file", "file:FILE npages:NUM ?devmem=devmem", creates=ArgKind.FILE, defines="file")
class File(Op):
    """Create a shmem file (or a TTM-like device-memory buffer object) of npages."""
    file: str
    npages: int
    devmem: bool = False


@_op("fread", "file:FILE pgoff:NUM")
class FileRead(Op):
    """read(2) of the page's value at pgoff."""
    file: str
    pgoff: int


@_op("fwrite", "file:FILE pgoff:NUM value:VALUE")
class FileWrite(Op):
    """write(2) of the page's value at pgoff."""
    file: str
    pgoff: int
    value: int


@_op("wp_range", "file:FILE pgoff:NUM npages:NUM")
class WpRange(Op):
    """wp_shared_mapping_range."""
    file: str
    pgoff: int
    npages: int


@_op("clean_record", "file:FILE pgoff:NUM npages:NUM")
class CleanRecord(Op):
    """clean_record_shared_mapping_range (bitmap_pgoff = pgoff)."""
    file: str
    pgoff: int
    npages: int


# --- huge pages, KSM ---------------------------------------------------------------

@_op("split", "proc:PROC vpn:NUM")
class Split(Op):
    """split_huge_pmd (debugfs-style forced split)."""
    proc: str
    vpn: int


@_op("split_folio", "proc:PROC vpn:NUM")
class SplitFolio(Op):
    """split_folio of the large folio mapped at vpn (debugfs split_huge_pages, order 0)."""
    proc: str
    vpn: int


@_op("ksm_scan", "")
class KsmScan(Op):
    """One complete ksmd pass; result is the number of pages merged."""


# --- devices and notifiers ------------------------------------------------------------

@_op("mirror", "dev:DEV proc:PROC vpn:NUM npages:NUM", creates=ArgKind.SUB)
class Mirror(Op):
    """mmu_interval_notifier_insert; result is the subscription name."""
    dev: str
    proc: str
    vpn: int
    npages: int


@_op("unmirror", "sub:SUB")
class Unmirror(Op):
    """mmu_interval_notifier_remove."""
    sub: str


@_op("dread", "dev:DEV proc:PROC vpn:NUM")
class DevRead(Op):
    """hmm_range_fault then a device read."""
    dev: str
    proc: str
    vpn: int


@_op("dwrite", "dev:DEV proc:PROC vpn:NUM value:VALUE")
class DevWrite(Op):
    """hmm_range_fault(write) then a device write."""
    dev: str
    proc: str
    vpn: int
    value: int


@_op("dexcl", "dev:DEV proc:PROC vpn:NUM")
class DevExclusive(Op):
    """make_device_exclusive with owner = dev."""
    dev: str
    proc: str
    vpn: int


@_op("datomic", "dev:DEV proc:PROC vpn:NUM add:VALUE")
class DevAtomic(Op):
    """Device atomic add; takes exclusive access first if dev lacks it."""
    dev: str
    proc: str
    vpn: int
    add: int


@_op("devents", "dev:DEV")
class DevEvents(Op):
    """The invalidations dev received since the last devents."""
    dev: str


@_op("lock", "proc:PROC vpn:NUM")
class Lock(Op):
    """Hold the folio lock of the page mapped at vpn."""
    proc: str
    vpn: int


@_op("unlock", "proc:PROC vpn:NUM")
class Unlock(Op):
    """Release a folio lock taken by `lock`."""
    proc: str
    vpn: int


# --- GPU VA manager -----------------------------------------------------------------------

@_op("vm", "vm:VM [start:NUM npages:NUM]", creates=ArgKind.VM, defines="vm")
class VmInit(Op):
    """drm_gpuvm_init."""
    vm: str
    start: Optional[int] = None
    npages: Optional[int] = None


@_op("bind", "vm:VM 'map' va:NUM npages:NUM file:FILE off:NUM ?async=is_async")
class BindMap(Op):
    """drm_gpuvm_sm_map, queued as a job."""
    vm: str
    va: int
    npages: int
    file: str
    off: int
    is_async: bool = False


@_op("bind", "vm:VM 'unmap' va:NUM npages:NUM ?async=is_async")
class BindUnmap(Op):
    """drm_gpuvm_sm_unmap, queued as a job."""
    vm: str
    va: int
    npages: int
    is_async: bool = False


@_op("vmrun", "vm:VM [count:NUM]")
class VmRun(Op):
    """Run the next `count` queued bind jobs (all when omitted)."""
    vm: str
    count: Optional[int] = None


@_op("gpuread", "vm:VM va:NUM")
class GpuRead(Op):
    """Read through the GPU page table."""
    vm: str
    va: int


@_op("unbind_obj", "file:FILE")
class UnbindObj(Op):
    """drm_gpuvm_bo_unmap_ops_create."""
    file: str


@_op("vmstate", "vm:VM")
class VmState(Op):
    """The drm_gpuvm VA tree."""
    vm: str


# --- settings and probes ----------------------------------------------------------------

@_op("set", "key:KEY value:WORD")
class Set(Op):
    """A setting (see SetKey)."""
    key: SetKey
    value: str


@_op("state", "proc:PROC vpn:NUM")
class State(Op):
    """Probe: the entry description of one page (SPEC §4)."""
    proc: str
    vpn: int


@_op("same", "proc:PROC vpn:NUM proc2:PROC vpn2:NUM")
class Same(Op):
    """Probe: do two pages map the same physical page right now."""
    proc: str
    vpn: int
    proc2: str
    vpn2: int


ALL_OPS: tuple[type, ...] = (
    Mmap, Munmap, Mprotect, Madvise, Read, Write, Fork, Exit, Poke, ClearRefs,
    Pin, PinRead, PinWrite, Unpin, File, FileRead, FileWrite, WpRange, CleanRecord,
    Split, SplitFolio, KsmScan, Mirror, Unmirror, DevRead, DevWrite, DevExclusive, DevAtomic,
    DevEvents, Lock, Unlock, VmInit, BindMap, BindUnmap, VmRun, GpuRead, UnbindObj,
    VmState, Set, State, Same,
)

AnyOp = Union[tuple(ALL_OPS)]  # type: ignore[valid-type]


def _check_table() -> None:
    """Definition check at import time: every op names its syntax fields exactly."""
    import re
    for cls in ALL_OPS:
        declared = [f.name for f in fields(cls)]
        in_syntax = re.findall(r"(?:^|[\s\[=])([a-z_0-9]+):[A-Z]+", cls.SYNTAX)
        in_syntax += re.findall(r"\?[a-z_]+=([a-z_]+)", cls.SYNTAX)
        if sorted(declared) != sorted(in_syntax):
            raise TypeError(
                f"op {cls.__name__}: fields {declared} do not match SYNTAX {cls.SYNTAX!r} "
                f"(fields named there: {in_syntax}); fix the table in reference/ops.py")


_check_table()
