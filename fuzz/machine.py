"""Hypothesis stateful test: the reference and the impl driven in lockstep, op by op.

Each rule is one op of SPEC §3; it runs on both models and the two results must be
equal. After every step the invariant compares the canonical snapshots (SPEC §4.2)
and runs both models' SPEC §5 self-checks. Bundles hold what ops create: process
names (fork), file names (file), VMA handles (mmap results, which reach the
addresses the model picked for `mmap P 0 ...`), pin handles (pin results, with
the pages they hold: rules then fork, write, poke, mprotect and unmap those pages
while the pin holds them, and read/write through the pin) and subscriptions
(mirror results, with the range they watch: devices read, write, take exclusive
and atomic access there, then CPU faults, fork, mprotect, munmap, madvise and
folio locks change what they mirror), device-exclusive grants, and mappings paged
out or filled with equal values, made mergeable and scanned (then forked,
written, pinned). THP (issue 5): whole 512-page private anon blocks at 512-aligned
addresses (blocks bundle), madvised hugepage or under `set thp always`, then
written, read, poked, pinned, forked, mprotected, unmapped, dontneed'd, paged out,
split and collapsed at their first and last pages and single pages inside (partial
ranges split the huge PMD), and THP settings (a `set thp_alloc fail` is set back to
ok after a few ops); dirty tracking: shared file mappings (fmaps bundle) written,
then wp_range / clean_record over the pgoffs they map, and clear_refs. Device
memory: devmem BOs mapped shared,pfnmap (pblocks bundle), mostly 512-aligned (special
PMDs), then faulted, split, cut, forked, dirty-tracked, read and written through
the file. The device, swap, KSM, THP, dirty and devmem families are each on in a
third of the runs (``topics``),
so the other rules keep their share of the steps.

A failure raises ``LockstepFailure`` whose message is the runner's report for the
program so far (fuzz/report.py): the divergence and a `.mmd` reproducer that
`mmdiff run` replays and corpus/ accepts unchanged. Hypothesis's own step
printout carries each op's `.mmd` line as a trailing comment.

Use: ``TestLockstep`` (HypoFuzz collects it; unittest/pytest run it), or
``make_lockstep_machine("mutant_name")`` for a machine against a seeded bug.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, NoReturn, Optional

from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize,
                                 invariant, multiple, precondition, rule)

from mmdiff.fuzz import strategies as S
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.report import format_report
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.fuzz.text import format_op, format_prog
from mmdiff.impl import MUTANTS, ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.machine import ReferenceMachine
from mmdiff.reference.results import Result, ResultKind
from mmdiff.reference.state import canonicalize

SOURCE = "<LockstepMachine>"   # Prog.source of the reproducers
MAX_FILES = 3                  # `file` rule stops defining files after this many


@dataclass(frozen=True)
class VmaHandle:
    """Where one successful mmap placed its mapping: process, first page, length (pages)."""

    proc: str
    vpn: int
    npages: int

    def page(self, index: int) -> int:
        """The vpn of page ``index`` of the mapping (modulo its length)."""
        return self.vpn + index % self.npages


@dataclass(frozen=True)
class PfnRef(VmaHandle):
    """One successful pfnmap: a VmaHandle plus the devmem file and its first file page."""

    file: str = ""
    off: int = 0


@dataclass(frozen=True)
class PinRef:
    """One successful pin: its handle name and the range of the process it pinned."""

    name: str
    proc: str
    vpn: int
    npages: int
    write: bool

    def index(self, k: int) -> int:
        """An index into the pin: k >= 0 inside (modulo npages); PAST_END is npages
        (EINVAL), FAR_PAST 2^64-1."""
        if k == PAST_END:
            return self.npages
        if k == FAR_PAST:
            return O.U64_MASK
        return k % self.npages


@dataclass(frozen=True)
class SubRef:
    """One successful mirror: its subscription name, device, process and range."""

    name: str
    dev: str
    proc: str
    vpn: int
    npages: int

    def page(self, index: int) -> int:
        """The vpn of page ``index`` of the watched range (modulo its length)."""
        return self.vpn + index % self.npages

    def span(self) -> int:
        """The range's length, capped at 8 pages (for CPU range ops over it)."""
        return min(self.npages, 8)


@dataclass(frozen=True)
class FileMapRef:
    """One successful shared file mmap: process, first page, length, file, file page."""

    proc: str
    vpn: int
    npages: int
    file: str
    pgoff: int


@dataclass(frozen=True)
class GrantRef:
    """One successful dexcl / datomic: the device and the page it took exclusive."""

    dev: str
    proc: str
    vpn: int


def _cpu_op(kind: type, proc: str, vpn: int, value: int) -> O.Op:
    """A CPU-side access of kind Read, Write, Poke or Pin (a 1-page rw pin) at vpn."""
    if kind is O.Read:
        return O.Read(proc, vpn)
    if kind is O.Pin:
        return O.Pin(proc, vpn, 1, O.PinMode.RW)
    return kind(proc, vpn, value)


def _device_op(kind: type, dev: str, proc: str, vpn: int, value: int) -> O.Op:
    """A device op of kind DevRead, DevWrite, DevExclusive, DevAtomic or DevEvents."""
    if kind is O.DevEvents:
        return O.DevEvents(dev)
    if kind is O.DevRead or kind is O.DevExclusive:
        return kind(dev, proc, vpn)
    return kind(dev, proc, vpn, value)


def _final_run() -> bool:
    """False while Hypothesis searches or shrinks (the report is built only for the run
    it prints); True in its final run and outside Hypothesis (a machine driven by hand)."""
    try:
        return current_build_context().is_final
    except InvalidArgument:      # no build context: not under @given
        return True


class LockstepFailure(AssertionError):
    """The models disagreed; the message is the report with the `.mmd` reproducer."""


# Page indexes into a VMA handle (taken modulo its length).
_VMA_PAGES = st.integers(0, 7)
# Indexes into a pin handle (PinRef.index): inside mostly, one in 8 past its end.
PAST_END, FAR_PAST = -1, -2
_PIN_INDEXES = st.integers(0, 7).flatmap(
    lambda k: st.sampled_from((PAST_END, FAR_PAST)) if k == 7 else st.integers(0, 7))
MAX_DEAD_PINS = 8              # unpinned handles kept for use-after-unpin rules
MAX_LOCKS = 8                  # (proc, vpn) of locks that succeeded, for unlock rules
_DEVICES = st.sampled_from(S.DEVICES)
_CPU = (O.Write, O.Read, O.Poke, O.Pin)       # _cpu_op kinds
# Device ops: exclusive grants and atomics twice as often as reads, writes, events.
_DEVICE_OPS = st.sampled_from((O.DevExclusive, O.DevAtomic, O.DevRead, O.DevWrite,
                               O.DevExclusive, O.DevAtomic, O.DevEvents))
# What follows a grant: CPU accesses (restores) half the time.
_GRANT_FOLLOWUPS = st.sampled_from(_CPU + _CPU + (O.DevAtomic, O.DevRead, O.Lock, O.Fork,
                                                  O.Mprotect, O.Munmap, O.Madvise))
_MIRROR_FOLLOWUPS = st.sampled_from(_CPU + (O.Fork, O.Mprotect, O.Munmap, O.Madvise))
_SWAP_FOLLOWUPS = st.sampled_from((O.Fork,) + _CPU)
_MERGE_FOLLOWUPS = st.sampled_from(_CPU + (O.Madvise,))
_MERGE_BEFORE = st.sampled_from((O.Pin, O.Lock, O.Fork))
_PAGE_ADVICE = st.sampled_from((O.Advice.PAGEOUT, O.Advice.DONTNEED, O.Advice.MERGEABLE,
                                O.Advice.UNMERGEABLE))
# An issue-6 rule family is on in a third of the runs (shrinks to off).
_TOPIC = st.integers(0, 2).map(lambda k: k == 2)
# Page indexes into a subscription: 0..3, so that device ops and CPU ops meet.
_SUB_PAGES = st.integers(0, 3)
# THP blocks: where in a mapping's first whole 512-aligned block an op lands (page
# offset; ranges: (offset, npages), the whole block first, then partial ones: split).
_BLOCK_PAGES = st.sampled_from((0, S.HPAGE - 1, 1, S.HPAGE // 2, 0x37))
_BLOCK_RANGES = st.sampled_from(((0, S.HPAGE), (0, 1), (S.HPAGE - 1, 1), (S.HPAGE // 2, 1),
                                 (S.HPAGE // 2, S.HPAGE // 2), (1, S.HPAGE),
                                 (S.HPAGE - 8, 16)))
_BLOCK_KINDS = st.sampled_from((O.Write, O.Split, O.Munmap, "collapse", O.Fork, O.Read,
                                O.Mprotect, "dontneed", O.Poke, O.Pin, "pageout",
                                O.Write, O.SplitFolio, O.ClearRefs))
# Follow-ups drawn with an entry rule (Hypothesis enables a random subset of rules per
# run, so a chain of separate rules is rare): two block ops after huge_mmap, each
# one draw in 4 left out.
_BLOCK_STEP = st.tuples(_BLOCK_KINDS, _BLOCK_PAGES, _BLOCK_RANGES)
_BLOCK_THEN = st.tuples(*[st.integers(0, 3).flatmap(
    lambda k: st.none() if k == 3 else _BLOCK_STEP)] * 2)
_DIRTY_KINDS = st.sampled_from((O.CleanRecord, O.WpRange, O.CleanRecord, O.ClearRefs))
# What makes a fresh block's faults THPs: madvise hugepage, `set thp always`, or
# nothing (PTE-level pages: collapse's case).
_BLOCK_MODES = st.sampled_from(("hugepage", "always", "hugepage", None))
_THP_SETTINGS = st.sampled_from(((O.SetKey.THP, "always"), (O.SetKey.THP, "madvise"),
                                 (O.SetKey.THP, "never"), (O.SetKey.THP_ZERO, "0"),
                                 (O.SetKey.THP_ZERO, "1"), (O.SetKey.THP_ALLOC, "fail"),
                                 (O.SetKey.MAX_PTES_NONE, "0")))
# Device memory: what follows a pfnmap (offsets into its first 512-aligned block).
_PFN_KINDS = st.sampled_from((O.Write, O.Read, O.Split, O.Munmap, O.Mprotect, O.Fork,
                              O.WpRange, O.CleanRecord, O.Write, O.FileWrite, O.FileRead,
                              "dontneed", O.Pin, O.Poke, O.ClearRefs, O.Read, "mmap",
                              O.WpRange))
_PFN_STEP = st.tuples(_PFN_KINDS, _BLOCK_PAGES, _BLOCK_RANGES)
_PFN_THEN = st.tuples(*[st.integers(0, 3).flatmap(
    lambda k: st.none() if k == 3 else _PFN_STEP)] * 3)
_BO_PAGES = st.sampled_from(S.DEVMEM_PAGES + S.DEVMEM_ODD_PAGES[:1])
MAX_BOS = 2                    # devmem_map defines at most this many BOs, then reuses them


class LockstepMachine(RuleBasedStateMachine):
    """ReferenceMachine (oracle) vs ImplMachine(mutant) on the same op sequence."""

    mutant: ClassVar[Optional[str]] = None   # an impl MUTANTS name, or None: the real impl

    procs = Bundle("procs")    # process names (str); exit consumes them
    files = Bundle("files")    # file names (str), including failed (devmem) definitions
    vmas = Bundle("vmas")      # VmaHandle of each mmap that returned an address
    pins = Bundle("pins")      # PinRef of each pin that returned a handle; unpin consumes
    subs = Bundle("subs")      # SubRef of each mirror that returned a name; unmirror consumes
    grants = Bundle("grants")  # GrantRef of each dexcl / datomic that succeeded
    swapped = Bundle("swapped")    # VmaHandle of each mapping paged out
    merged = Bundle("merged")      # VmaHandle of each mapping made mergeable and scanned
    blocks = Bundle("blocks")      # VmaHandle of each whole-block private anon mapping
    fmaps = Bundle("fmaps")        # FileMapRef of each shared file mapping
    pblocks = Bundle("pblocks")    # PfnRef of each pfnmap of a devmem BO

    def __init__(self) -> None:
        super().__init__()
        self.reference = ReferenceMachine()
        self.impl = ImplMachine(mutant=self.mutant)
        self.ops: list[O.Op] = []         # the program so far, in execution order
        self.scope = S.Scope()            # names valid at the next line (for the parser)
        self.dead_pins: list[str] = []    # handles unpinned (their names stay parseable)
        self.locks: list[tuple[str, int]] = []   # (proc, vpn) of successful locks
        # issue-6 rule families on in this run (topics(); all on when driven by hand)
        self.topics: set[str] = {"devices", "swap", "ksm", "thp", "dirty", "devmem"}
        self.bos: list[str] = []          # devmem files devmem_map defined
        self._printed = 0                 # ops already shown by _repr_step

    # --- the program so far ------------------------------------------------------------

    def prog(self) -> Prog:
        return Prog.of(self.ops, source=SOURCE)

    def _fail(self, what: str, cause: Optional[BaseException] = None) -> NoReturn:
        """Raise LockstepFailure with the runner's report of the program so far.

        The program is replayed on fresh models by run_lockstep, so the message is
        the same report `mmdiff run` prints (one classification of results, states,
        crashes and invariants: fuzz/runner.py). A replay that agrees means a model
        is not deterministic, which is reported as such.
        """
        mutant = f" (impl mutant {self.mutant})" if self.mutant else ""
        if not _final_run():
            raise LockstepFailure(f"{what}{mutant}") from cause   # shrinking: skip the replay
        outcome = run_lockstep(self.prog(), ReferenceMachine(), ImplMachine(mutant=self.mutant),
                               check_every=1, check_invariants=True)
        if outcome.divergence is not None:
            msg = f"{what}{mutant}\n{format_report(outcome)}"
        else:
            msg = (f"{what}{mutant}, but replaying the program on fresh models agreed: a "
                   f"model depends on more than the op sequence (nondeterminism).\n"
                   f"program ({len(self.ops)} ops):\n{format_prog(self.prog())}")
        raise LockstepFailure(msg) from cause

    def _step(self, op: O.Op) -> Result:
        """Run ``op`` on both models; results must be equal (SPEC §4.1)."""
        self.ops.append(op)
        self.scope.record(op)
        try:
            left = self.reference.execute(op)
            right = self.impl.execute(op)
        except Exception as exc:  # noqa: BLE001 -- classified by the replay in _fail
            self._fail(f"a model raised {type(exc).__name__} on `{format_op(op)}`", exc)
        if left != right:
            self._fail(f"results differ on `{format_op(op)}`: reference {left}, impl {right}")
        return left

    def _mapped(self, op: O.Mmap) -> Any:
        got = self._step(op)
        if got.kind is ResultKind.VALUE:
            return VmaHandle(op.proc, int(got.payload), op.npages)   # type: ignore[arg-type]
        return multiple()                                            # no handle on failure

    # --- initial names -----------------------------------------------------------------

    @initialize(target=procs)
    def p0(self) -> str:
        """p0 exists at start (SPEC §3); no op needed."""
        return "p0"

    @initialize(target=subs, devices=_TOPIC, swap=_TOPIC, ksm=_TOPIC, thp=_TOPIC,
                dirty=_TOPIC)
    def topics(self, devices: bool, swap: bool, ksm: bool, thp: bool = False,
               dirty: bool = False) -> Any:
        """Which issue-6 / issue-5 rule families this run uses (each in a third of the
        runs): their entry rules (mirror, device_vma, pageout, ksm, lock, huge_mmap,
        thp_setting, shared_map) are off otherwise,
        so that a run without them draws the issue-3 and pin rules as often as before.
        With devices, d0 watches all of p0 from the start (`mirror d0 p0 0 2^52`), so
        any mapping of p0 is one step from a device access."""
        self.topics = {name for name, on in (("devices", devices), ("swap", swap),
                                              ("ksm", ksm), ("thp", thp), ("dirty", dirty))
                       if on} | (self.topics & {"devmem"})     # devmem_init decides that
        if not devices:
            return multiple()
        got = self._step(O.Mirror("d0", "p0", 0, O.ADDR_LIMIT_PAGES))
        return SubRef(str(got.payload), "d0", "p0", S.WINDOW_BASE, S.WINDOW_PAGES)

    @initialize(target=pblocks, on=_TOPIC, size=st.sampled_from(S.DEVMEM_PAGES),
                vpn=st.sampled_from(S.PFN_STARTS), write=st.booleans())
    def devmem_init(self, on: bool, size: int = 2 * S.HPAGE, vpn: int = 2 * S.HPAGE,
                    write: bool = True) -> Any:
        """The devmem family (devmem_map, pfn_touch) is on in a third of the runs; then
        a BO of ``size`` pages is defined, its first block mapped at ``vpn`` (a block
        start, or 0) by p0 and its second page written or read (a special PMD where
        no PTE table is left), so pfn_touch meets one from the start."""
        if not on:
            self.topics.discard("devmem")
            return multiple()
        self.topics.add("devmem")
        name = self.scope.next_file()
        self._step(O.File(name, size, True))
        self.bos.append(name)
        got = self._step(O.Mmap("p0", vpn, S.HPAGE, O.Prot.RW, S.PFNMAP_FLAGS, name, 0))
        if got.kind is not ResultKind.VALUE:
            return multiple()
        # huge faults of a non-anon VMA obey the sysfs setting (`thp madvise` by default)
        self._step(O.Madvise("p0", int(got.payload), S.HPAGE, O.Advice.HUGEPAGE))
        pb = PfnRef("p0", int(got.payload), S.HPAGE, name, 0)   # type: ignore[arg-type]
        self._step(O.Write("p0", pb.vpn + 1, 1) if write else O.Read("p0", pb.vpn + 1))
        return pb

    @initialize(target=files, npages=S.file_pages())
    def f0(self, npages: int) -> str:
        name = self.scope.next_file()
        self._step(O.File(name, npages))
        return name

    # --- address space -----------------------------------------------------------------

    @rule(target=vmas, proc=procs, vpn=S.mmap_vpns(), npages=S.page_counts(), prot=S.prots(),
          flags=S.anon_map_flags())
    def mmap(self, proc, vpn, npages, prot, flags):
        return self._mapped(O.Mmap(proc, vpn, npages, prot, flags))

    @rule(target=vmas, proc=procs, file=files, vpn=S.mmap_vpns(), npages=S.page_counts(),
          prot=S.prots(), flags=S.file_map_flags(), off=S.file_pages())
    def mmap_file(self, proc, file, vpn, npages, prot, flags, off):
        return self._mapped(O.Mmap(proc, vpn, npages, prot, flags, file, off))

    @rule(proc=procs, vpn=S.vpns(), npages=S.page_counts(huge=True))
    def munmap(self, proc, vpn, npages):
        self._step(O.Munmap(proc, vpn, npages))

    @rule(proc=procs, vpn=S.vpns(), npages=S.page_counts(huge=True), prot=S.prots())
    def mprotect(self, proc, vpn, npages, prot):
        self._step(O.Mprotect(proc, vpn, npages, prot))

    @rule(proc=procs, vpn=S.vpns(), npages_advice=S.madvise_ranges())
    def madvise(self, proc, vpn, npages_advice):
        self._step(O.Madvise(proc, vpn, *npages_advice))

    @rule(proc=procs, vpn=S.vpns())
    def read(self, proc, vpn):
        self._step(O.Read(proc, vpn))

    @rule(proc=procs, vpn=S.vpns(), value=S.values())
    def write(self, proc, vpn, value):
        self._step(O.Write(proc, vpn, value))

    # The same ops aimed at a mapping an mmap returned: faults on one of its pages,
    # range ops on exactly its range (the common real-world call, and the only way to
    # reach addresses the model picked for `mmap P 0`). The handle may be stale (the
    # range unmapped or remapped since): that is just another program to agree on.

    @rule(vma=vmas, index=_VMA_PAGES)
    def read_vma(self, vma, index):
        self._step(O.Read(vma.proc, vma.page(index)))

    @rule(vma=vmas, index=_VMA_PAGES, value=S.values())
    def write_vma(self, vma, index, value):
        self._step(O.Write(vma.proc, vma.page(index), value))

    @rule(vma=vmas, prot=S.prots())
    def mprotect_vma(self, vma, prot):
        self._step(O.Mprotect(vma.proc, vma.vpn, vma.npages, prot))

    @rule(vma=consumes(vmas))
    def munmap_vma(self, vma):
        self._step(O.Munmap(vma.proc, vma.vpn, vma.npages))

    @rule(vma=vmas, advice=S.advices())
    def madvise_vma(self, vma, advice):
        self._step(O.Madvise(vma.proc, vma.vpn, vma.npages, advice))

    # --- processes ---------------------------------------------------------------------

    def _forked(self, proc: str) -> Any:
        got = self._step(O.Fork(proc))
        return got.payload if got.kind is ResultKind.NAME else multiple()

    @rule(target=procs, proc=procs)
    def fork(self, proc):
        return self._forked(proc)

    # Not the last live process: a run with no process left would spend its remaining
    # steps on ESRCH. Exiting every process is the property tests' job (tests/).
    @precondition(lambda self: len(self.bundle("procs")) > 1)
    @rule(proc=consumes(procs))
    def exit(self, proc):
        self._step(O.Exit(proc))

    # --- files -------------------------------------------------------------------------

    # A few files are enough for sharing through the page cache; more only dilute.
    @precondition(lambda self: len(self.scope.files) < MAX_FILES)
    @rule(target=files, npages=S.file_pages(), devmem=st.booleans())
    def file(self, npages, devmem):
        name = self.scope.next_file()
        self._step(O.File(name, npages, devmem))
        return name      # defined for the parser even when the op fails (devmem: ENOSYS)

    @rule(file=files, pgoff=S.file_pages())
    def fread(self, file, pgoff):
        self._step(O.FileRead(file, pgoff))

    @rule(file=files, pgoff=S.file_pages(), value=S.values())
    def fwrite(self, file, pgoff, value):
        self._step(O.FileWrite(file, pgoff, value))

    # --- pins and poke (SPEC §3, reference/gup.py) -------------------------------------------
    # A pin on a mapping an mmap returned (so it mostly succeeds) or anywhere in the
    # window; then the pinned pages meet fork, CPU writes, poke, mprotect and munmap
    # while pinned, and DMA reads/writes through the handle must agree afterwards.

    def _pinned(self, op: O.Pin) -> Any:
        got = self._step(op)
        if got.kind is ResultKind.NAME:
            return PinRef(str(got.payload), op.proc, op.vpn, op.npages, op.mode.write)
        return multiple()                                            # no handle on failure

    @rule(target=pins, vma=vmas, index=_VMA_PAGES, npages=S.pin_counts(), mode=S.pin_modes())
    def pin_vma(self, vma, index, npages, mode):
        return self._pinned(O.Pin(vma.proc, vma.page(index), npages, mode))

    @rule(target=pins, proc=procs, vpn=S.vpns(), npages=S.pin_counts(), mode=S.pin_modes())
    def pin(self, proc, vpn, npages, mode):
        return self._pinned(O.Pin(proc, vpn, npages, mode))

    @rule(pin=pins, index=_PIN_INDEXES)
    def pread(self, pin, index):
        self._step(O.PinRead(pin.name, pin.index(index)))

    @rule(pin=pins, index=_PIN_INDEXES, value=S.values())
    def pwrite(self, pin, index, value):
        self._step(O.PinWrite(pin.name, pin.index(index), value))

    @rule(pin=consumes(pins))
    def unpin(self, pin):
        self._step(O.Unpin(pin.name))
        if len(self.dead_pins) < MAX_DEAD_PINS:
            self.dead_pins.append(pin.name)

    @precondition(lambda self: self.dead_pins)
    @rule(data=st.data(), index=st.integers(0, 3), value=S.values())
    def use_after_unpin(self, data, index, value):
        """pread / pwrite / unpin of a handle already unpinned: EINVAL in both."""
        name = data.draw(st.sampled_from(self.dead_pins), label="pin")
        op = data.draw(st.sampled_from((O.PinRead(name, index), O.PinWrite(name, index, value),
                                        O.Unpin(name))), label="op")
        self._step(op)

    @rule(target=procs, pin=pins)
    def fork_pinned(self, pin):
        """fork of the pinning process (or of one that inherited the range): the
        child must get its own copy of an exclusive pinned anon page."""
        return self._forked(pin.proc)

    @rule(pin=pins, proc=procs, index=_VMA_PAGES, value=S.values(),
          kind=st.sampled_from((O.Write, O.Poke, O.Read)))
    def touch_pinned(self, pin, proc, index, value, kind):
        """A CPU write, a poke or a read of a pinned page, in the pinner or another
        process (a child maps the same VPNs): a write must not break the pin's link
        to the page it holds where the kernel keeps it."""
        vpn = pin.vpn + index % pin.npages
        self._step(O.Read(proc, vpn) if kind is O.Read else kind(proc, vpn, value))

    @rule(pin=pins, proc=procs, data=st.data())
    def remap_pinned(self, pin, proc, data):
        """munmap, mprotect or madvise over the pinned range: the pin keeps its pages
        (pread still sees them), the page tables lose or change their entries."""
        op = data.draw(st.one_of(
            st.just(O.Munmap(proc, pin.vpn, pin.npages)),
            st.builds(O.Mprotect, st.just(proc), st.just(pin.vpn), st.just(pin.npages),
                      S.prots()),
            st.builds(O.Madvise, st.just(proc), st.just(pin.vpn), st.just(pin.npages),
                      S.advices())), label="op")
        self._step(op)

    @rule(proc=procs, vpn=S.vpns(), value=S.values())
    def poke(self, proc, vpn, value):
        self._step(O.Poke(proc, vpn, value))

    @rule(vma=vmas, index=_VMA_PAGES, value=S.values())
    def poke_vma(self, vma, index, value):
        """FOLL_FORCE write into a mapping: read-only and PROT_NONE private ones get a
        COW copy only the poked process sees; shared read-only ones are EIO."""
        self._step(O.Poke(vma.proc, vma.page(index), value))

    # --- devices (spec/device.md, reference/notifier.py, reference/hmm.py) -------------------
    # A mirror over a mapping an mmap returned (sometimes the whole address space),
    # then device reads, writes, exclusive grants and atomics on the pages it watches;
    # a granted page (grants bundle) then meets CPU faults (which restore it), fork,
    # mprotect, munmap, madvise, folio locks and the device's next atomic. Few rules,
    # each drawing among related ops, so that the issue-3 rules keep their share.

    @precondition(lambda self: "devices" in self.topics)
    @rule(target=subs, vma=vmas, dev=_DEVICES, shape=st.integers(0, 7),
          vpn_npages=S.mirror_ranges())
    def mirror(self, vma, dev, shape, vpn_npages):
        """Watch exactly a mapping (shapes 0-5), the whole address space (6; the SubRef
        still aims at the mapping's pages) or a window range of its process (7)."""
        if shape == 6:
            op = O.Mirror(dev, vma.proc, 0, O.ADDR_LIMIT_PAGES)
        elif shape == 7:
            op = O.Mirror(dev, vma.proc, *vpn_npages)
        else:
            op = O.Mirror(dev, vma.proc, vma.vpn, vma.npages)
        got = self._step(op)
        if got.kind is not ResultKind.NAME:
            return multiple()                                        # no name on failure
        aim = vma if shape == 6 else VmaHandle(op.proc, op.vpn, op.npages)
        return SubRef(str(got.payload), dev, vma.proc, aim.vpn, aim.npages)

    @rule(sub=consumes(subs), again=st.integers(0, 3))
    def unmirror(self, sub, again):
        """Remove a subscription (the device drops its entries); one in 4 twice: EINVAL."""
        self._step(O.Unmirror(sub.name))
        if again == 3:
            self._step(O.Unmirror(sub.name))

    @rule(target=grants, sub=subs, index=_SUB_PAGES, value=S.values(), kind=_DEVICE_OPS,
          then=_GRANT_FOLLOWUPS | st.none(), proc=procs)
    def device(self, sub, index, value, kind, then, proc):
        """dread, dwrite, dexcl, datomic or devents by the subscription's device on a
        page it watches; a successful dexcl / datomic is a grant, and one of
        ``granted``'s follow-ups comes at once (unless ``then`` is None)."""
        d, p, v = sub.dev, sub.proc, sub.page(index)
        got = self._step(_device_op(kind, d, p, v, value))
        if kind in (O.DevExclusive, O.DevAtomic) and got.kind in (ResultKind.OK,
                                                                  ResultKind.VALUE):
            grant = GrantRef(d, p, v)
            if then is not None:
                self._follow_grant(grant, proc, value, then)
            return grant
        return multiple()

    @precondition(lambda self: "devices" in self.topics)
    @rule(target=grants, vma=vmas, dev=st.sampled_from(("d0", "d0", "d0", "d1", "d2")),
          index=_SUB_PAGES, value=S.values(), kind=_DEVICE_OPS,
          then=_GRANT_FOLLOWUPS | st.none(), proc=procs)
    def device_vma(self, vma, dev, index, value, kind, then, proc):
        """As ``device`` on a page of a mapping (watched when d0 watches all of p0, or
        by a mirror of the mapping; else EINVAL)."""
        return self.device(SubRef("", dev, vma.proc, vma.vpn, vma.npages), index, value,
                           kind, then, proc)

    @rule(target=procs, grant=grants, proc=procs, value=S.values(), kind=_GRANT_FOLLOWUPS)
    def granted(self, grant, proc, value, kind):
        """After a grant: a CPU write, read, poke or pin of the page (in its process or
        one sharing the VPN: the fault restores the entry, every device must drop its
        atomic mapping first); the device's next atomic or read; a lock (then fork
        fails with ENOMEM, dexcl EBUSY); munmap, mprotect, pageout of the page; or a
        fork of its process (restored in the parent without an event)."""
        return self._follow_grant(grant, proc, value, kind)

    def _follow_grant(self, grant: GrantRef, proc: str, value: int, kind: type) -> Any:
        p, v = grant.proc, grant.vpn
        if kind is O.Fork:
            return self._forked(p)
        if kind in (O.DevAtomic, O.DevRead):
            self._step(_device_op(kind, grant.dev, p, v, value))
        elif kind is O.Lock:
            self._lock(p, v)
        elif kind is O.Munmap:
            self._step(O.Munmap(p, v, 1))
        elif kind is O.Mprotect:
            self._step(O.Mprotect(p, v, 1, O.Prot.R if value & 1 else O.Prot.RW))
        elif kind is O.Madvise:
            self._step(O.Madvise(p, v, 1, O.Advice.PAGEOUT))
        else:
            self._step(_cpu_op(kind, proc, v, value))
        return multiple()

    @rule(target=procs, sub=subs, proc=procs, index=_SUB_PAGES, value=S.values(),
          kind=_MIRROR_FOLLOWUPS, advice=_PAGE_ADVICE)
    def mirrored(self, sub, proc, index, value, kind, advice):
        """A CPU write, read, poke or pin of a watched page, in the watched process or
        another (a COW copy must invalidate the device's old frame); munmap, mprotect
        or madvise over the watched range (at most 8 pages); or a fork of the watched
        process (protection_page events)."""
        p, n = sub.proc, sub.span()
        if kind is O.Fork:
            return self._forked(p)
        if kind is O.Munmap:
            self._step(O.Munmap(p, sub.vpn, n))
        elif kind is O.Mprotect:
            self._step(O.Mprotect(p, sub.vpn, n, O.Prot.R if value & 1 else O.Prot.RW))
        elif kind is O.Madvise:
            self._step(O.Madvise(p, sub.vpn, n, advice))
        else:
            self._step(_cpu_op(kind, proc, sub.page(index), value))
        return multiple()

    # Folio locks: held across fork (a locked device-exclusive folio makes it fail),
    # dexcl (EBUSY), write faults (no reuse), pageout and KSM (skipped).

    def _lock(self, proc: str, vpn: int) -> None:
        if self._step(O.Lock(proc, vpn)).kind is ResultKind.OK \
                and len(self.locks) < MAX_LOCKS:
            self.locks.append((proc, vpn))

    @precondition(lambda self: self.topics)
    @rule(vma=vmas, index=_VMA_PAGES, unlock=st.integers(0, 2), which=st.integers(0, 7))
    def lock(self, vma, index, unlock, which):
        """Lock a page of a mapping; or (unlock 1-2) unlock a page locked earlier, in its
        process or (2) in the mapping's (a child maps the same frame; another frame:
        EINVAL), or this page if nothing is locked."""
        if not unlock:
            self._lock(vma.proc, vma.page(index))
        elif self.locks:
            k = which % len(self.locks)
            owner, vpn = self.locks[k]
            if self._step(O.Unlock(owner if unlock == 1 else vma.proc, vpn)).kind \
                    is ResultKind.OK:
                del self.locks[k]
        else:
            self._step(O.Unlock(vma.proc, vma.page(index)))

    # --- swap and KSM (reference/vmscan.py, swap.py, ksm.py) ------------------------------
    # A mapping paged out (swapped bundle) then forked, written, read, pinned or poked
    # (swap-in, the exclusive marker); a mapping filled with equal values, made
    # mergeable and scanned (merged bundle), then written, pinned or poked and scanned
    # again.

    @precondition(lambda self: "swap" in self.topics)
    @rule(target=swapped, vma=vmas, index=_VMA_PAGES, value=S.values(),
          then=_SWAP_FOLLOWUPS | st.none(), proc=procs)
    def pageout(self, vma, index, value, then, proc):
        """Write one page of a mapping (so something is present), then page it all out;
        one of ``swapped_in``'s follow-ups comes at once (unless ``then`` is None)."""
        self._step(O.Write(vma.proc, vma.page(index), value))
        self._step(O.Madvise(vma.proc, vma.vpn, vma.npages, O.Advice.PAGEOUT))
        if then is not None:
            self.swapped_in(vma, proc, index, value, then)
        return vma

    @rule(target=procs, sw=swapped, proc=procs, index=_VMA_PAGES, value=S.values(),
          kind=_SWAP_FOLLOWUPS)
    def swapped_in(self, sw, proc, index, value, kind):
        """A fault on a swap entry (write, read, poke, pin), in the process that paged
        it out or a child that copied the entry; or a fork of that process (the
        exclusive marker must go in both)."""
        if kind is O.Fork:
            return self._forked(sw.proc)
        self._step(_cpu_op(kind, proc, sw.page(index), value))
        return multiple()

    @precondition(lambda self: "ksm" in self.topics)
    @rule(target=merged, vma=vmas, value=st.sampled_from((1, 2, 0)), count=st.integers(2, 4),
          before=st.none() | _MERGE_BEFORE)
    def ksm(self, vma, value, count, before):
        """The same value in the first pages of a mapping, then (unless ``before`` is
        None) a pin, a lock or a fork holding its first page, mergeable, ksm_scan: the
        pages merge, except a pinned or locked one (write_protect_page fails) and a
        frame the child shares (it waits on itself)."""
        for i in range(min(count, vma.npages)):
            self._step(O.Write(vma.proc, vma.vpn + i, value))
        if before is O.Fork:
            self._forked(vma.proc)
        elif before is O.Lock:
            self._lock(vma.proc, vma.vpn)
        elif before is O.Pin:
            self._step(O.Pin(vma.proc, vma.vpn, 1, O.PinMode.RW_LONGTERM))
        self._step(O.Madvise(vma.proc, vma.vpn, vma.npages, O.Advice.MERGEABLE))
        self._step(O.KsmScan())
        return vma

    @rule(m=merged, proc=procs, index=_SUB_PAGES, value=S.values(), kind=_MERGE_FOLLOWUPS,
          rescan=st.booleans())
    def merged_touch(self, m, proc, index, value, kind, rescan):
        """A write (COW of the KSM page), read, poke or pin (unshare) of a merged page,
        or unmergeable over the mapping; then, half the time, ksm_scan again (a pinned
        or locked copy must not merge)."""
        if kind is O.Madvise:
            self._step(O.Madvise(m.proc, m.vpn, m.npages, O.Advice.UNMERGEABLE))
        else:
            self._step(_cpu_op(kind, proc, m.page(index), value))
        if rescan:
            self._step(O.KsmScan())

    # --- THP (spec/cow-thp.md, reference/huge_memory.py, khugepaged.py) ---------------------
    # A whole 512-page private anon block at a 512-aligned address, madvised hugepage
    # (or under `set thp always`, or neither: PTE-level pages for collapse); then CPU
    # accesses, fork, range ops, split and collapse at its first page, last page and
    # single pages inside (a partial range splits the huge PMD; fork and a write COW
    # it). Settings change the fault path; a thp_alloc fail is undone a few ops later.

    @precondition(lambda self: "thp" in self.topics)
    @rule(targets=(vmas, blocks), proc=procs, vpn=st.sampled_from(S.BLOCK_STARTS),
          npages=st.sampled_from(S.BLOCK_LENGTHS), prot=S.prots(), mode=_BLOCK_MODES,
          index=_BLOCK_PAGES, value=S.values(), then=_BLOCK_THEN)
    def huge_mmap(self, proc, vpn, npages, prot, mode, index, value, then=()):
        """mmap a block (vpn 0: the model picks, 512-aligned), make its faults THPs
        (``mode``), write one page of it (the fault that maps the THP), then the
        block_touch ops of ``then`` ((kind, page, range) or None) on it."""
        got = self._step(O.Mmap(proc, vpn, npages, prot, S.ANON_FLAGS[0]))
        if got.kind is not ResultKind.VALUE:
            return multiple()
        blk = VmaHandle(proc, int(got.payload), npages)   # type: ignore[arg-type]
        if mode == "hugepage":
            self._step(O.Madvise(proc, blk.vpn, npages, O.Advice.HUGEPAGE))
        elif mode == "always":
            self._step(O.Set(O.SetKey.THP, "always"))
        self._step(O.Write(proc, blk.vpn + index, value))
        for step in then:
            if step is not None:
                self.block_touch(blk, proc, *step, value, prot)
        return blk

    @rule(target=procs, blk=blocks, proc=procs, kind=_BLOCK_KINDS, index=_BLOCK_PAGES,
          rng=_BLOCK_RANGES, value=S.values(), prot=S.prots())
    def block_touch(self, blk, proc, kind, index, rng, value, prot):
        """One op on the block's first 512 pages, in its process (``proc`` for CPU
        accesses: a forked child maps the same VPNs): a write, read, poke or 1-page rw
        pin of page ``index``; fork; mprotect, munmap, dontneed or pageout of ``rng``;
        split or split_folio at page ``index``; collapse of the block; clear_refs of its
        process."""
        p, v = blk.proc, blk.vpn
        if kind is O.Fork:
            return self._forked(p)
        if kind is O.ClearRefs:
            self._step(O.ClearRefs(p))
            return multiple()
        if kind in _CPU:
            self._step(_cpu_op(kind, proc, v + index, value))
        elif kind is O.Split or kind is O.SplitFolio:
            self._step(kind(p, v + index))
        elif kind == "collapse":
            self._step(O.Madvise(p, v, S.HPAGE, O.Advice.COLLAPSE))
        elif kind is O.Mprotect:
            self._step(O.Mprotect(p, v + rng[0], rng[1], prot))
        elif kind is O.Munmap:
            self._step(O.Munmap(p, v + rng[0], rng[1]))
        else:
            self._step(O.Madvise(p, v + rng[0], rng[1], O.Advice.DONTNEED
                                 if kind == "dontneed" else O.Advice.PAGEOUT))
        return multiple()

    @precondition(lambda self: "thp" in self.topics)
    @rule(setting=_THP_SETTINGS, blk=blocks, index=_BLOCK_PAGES, value=S.values(),
          during=st.integers(0, 2))
    def thp_setting(self, setting, blk, index, value, during):
        """A THP setting; thp_alloc fail lasts for a write and ``during`` more ops on
        the block (a write, a collapse), then `set thp_alloc ok`."""
        key, word = setting
        self._step(O.Set(key, word))
        if key is O.SetKey.THP_ALLOC:
            self._step(O.Write(blk.proc, blk.vpn + index, value))
            for k in range(during):
                self._step(O.Madvise(blk.proc, blk.vpn, S.HPAGE, O.Advice.COLLAPSE) if k
                           else O.Read(blk.proc, blk.vpn + S.HPAGE - 1 - index))
            self._step(O.Set(O.SetKey.THP_ALLOC, "ok"))

    @rule(blk=blocks, advice=st.sampled_from(S.THP_ADVICE), whole=st.booleans())
    def block_advice(self, blk, advice, whole):
        """madvise hugepage / collapse / nohugepage over the mapping or its first block."""
        self._step(O.Madvise(blk.proc, blk.vpn, blk.npages if whole else S.HPAGE, advice))

    # --- dirty tracking (reference/dirty.py, softdirty.py) ---------------------------------
    # A shared file mapping (fmaps bundle) is written, then wp_range / clean_record walk
    # the pgoffs it maps (write-protecting, cleaning and recording dirty PTEs in every
    # process that maps them); clear_refs clears soft-dirty and write-protects, and
    # the next writes (on THP blocks too) set it again.

    @precondition(lambda self: "dirty" in self.topics)
    @rule(target=fmaps, proc=procs, file=files, vpn=S.vpns(), npages=st.integers(1, 8),
          off=st.integers(0, 4), index=st.integers(0, 7), value=S.values(),
          then=st.none() | _DIRTY_KINDS, first=st.integers(0, 3), n=st.integers(0, 9))
    def shared_map(self, proc, file, vpn, npages, off, index, value, then=None, first=0,
                   n=0):
        """mmap a file shared rw and write one of its pages (a dirty PTE); then (unless
        ``then`` is None) one dirty_track op on it."""
        got = self._step(O.Mmap(proc, vpn, npages, O.Prot.RW, S.FILE_FLAGS[1], file, off))
        if got.kind is not ResultKind.VALUE:
            return multiple()
        fm = FileMapRef(proc, int(got.payload), npages, file, off)   # type: ignore[arg-type]
        self._step(O.Write(proc, fm.vpn + index % npages, value))
        if then is not None:
            self.dirty_track(fm, proc, then, first, n, 0, value)
        return fm

    @rule(fm=fmaps, proc=procs, kind=_DIRTY_KINDS,
          first=st.integers(0, 3), n=st.integers(0, 9), writes=st.integers(0, 2),
          value=S.values())
    def dirty_track(self, fm, proc, kind, first, n, writes, value):
        """``writes`` CPU writes into the mapping (from ``proc``: a child maps it too),
        then clean_record / wp_range over pgoffs it maps (from ``first`` pages in,
        ``n`` pages; n 0: the whole mapping), or clear_refs of its process."""
        for k in range(writes):
            self._step(O.Write(proc, fm.vpn + (first + 2 * k) % fm.npages, value + k))
        if kind is O.ClearRefs:
            self._step(O.ClearRefs(fm.proc))
        else:
            pgoff = fm.pgoff + first % fm.npages
            self._step(kind(fm.file, pgoff, n or fm.npages))

    # --- device memory (reference/devmem.py, devmem.md) -----------------------------------
    # A devmem BO mapped shared,pfnmap (pblocks bundle), mostly at a 512-aligned VPN and
    # offset (the first fault inserts a special PMD), sometimes unaligned, past the BO's
    # end or private (EINVAL); then faults, split, partial munmap / mprotect (zap the
    # PMD), fork (copies it), wp_range / clean_record (dirty tracking on: later faults
    # fall back to PTEs; a skipped writable PMD is a WARN), fread / fwrite of the BO,
    # and the ops GUP and madvise refuse there (pin, dontneed), poke (vm_ops->access).

    @precondition(lambda self: "devmem" in self.topics)
    @rule(targets=(vmas, pblocks), proc=procs, new=st.booleans(), size=_BO_PAGES,
          shape=S.pfnmap_shapes(), prot=S.prots(), index=_BLOCK_PAGES, value=S.values(),
          write=st.booleans(), then=_PFN_THEN)
    def devmem_map(self, proc, new, size, shape, prot, index, value, write, then=()):
        """Define a BO (``new``, or none yet; at most MAX_BOS) or reuse one, mmap it
        (S.pfnmap_shapes), read or write page ``index`` of the mapping, then the
        pfn_touch ops of ``then``."""
        if new and len(self.bos) < MAX_BOS or not self.bos:
            name = self.scope.next_file()
            self._step(O.File(name, size, True))
            self.bos.append(name)
        bo = self.bos[-1] if new else self.bos[0]
        vpn, npages, off, flags = shape
        got = self._step(O.Mmap(proc, vpn, npages, prot, flags, bo, off))
        if got.kind is not ResultKind.VALUE:
            return multiple()
        if write or index % 2:                   # mostly madvised: huge faults need it
            self._step(O.Madvise(proc, int(got.payload), npages, O.Advice.HUGEPAGE))
        pb = PfnRef(proc, int(got.payload), npages, bo, off)   # type: ignore[arg-type]
        v = pb.vpn + index % npages
        self._step(O.Write(proc, v, value) if write else O.Read(proc, v))
        for step in then:
            if step is not None:
                self.pfn_touch(pb, proc, *step, value, prot)
        return pb

    @precondition(lambda self: "devmem" in self.topics)
    @rule(target=procs, pb=pblocks, proc=procs, kind=_PFN_KINDS, index=_BLOCK_PAGES,
          rng=_BLOCK_RANGES, value=S.values(), prot=S.prots())
    def pfn_touch(self, pb, proc, kind, index, rng, value, prot):
        """One op on a pfnmap's first 512 pages (offsets modulo its length) or its BO:
        a write, read, poke or pin of page ``index`` (in ``proc``: a child maps it too);
        split there; munmap, mprotect, dontneed or an anon MAP_FIXED mmap over ``rng``;
        fork; wp_range / clean_record over the BO pages it maps; fwrite / fread of
        one; clear_refs of its process."""
        p, n = pb.proc, pb.npages
        v = pb.vpn + index % n
        a, k = pb.vpn + rng[0] % n, rng[1]
        if kind is O.Fork:
            return self._forked(p)
        if kind in _CPU:
            self._step(_cpu_op(kind, proc, v, value))
        elif kind is O.Split:
            self._step(O.Split(p, v))
        elif kind is O.Munmap:
            self._step(O.Munmap(p, a, k))
        elif kind is O.Mprotect:
            self._step(O.Mprotect(p, a, k, prot))
        elif kind == "dontneed":
            self._step(O.Madvise(p, a, k, O.Advice.DONTNEED))
        elif kind == "mmap":
            self._step(O.Mmap(p, a, k, O.Prot.RW, S.ANON_FLAGS[0]))
        elif kind is O.WpRange or kind is O.CleanRecord:
            self._step(kind(pb.file, pb.off + rng[0] % n, min(k, n)))
        elif kind is O.FileWrite:
            self._step(O.FileWrite(pb.file, pb.off + index % n, value))
        elif kind is O.FileRead:
            self._step(O.FileRead(pb.file, pb.off + index % n))
        else:
            self._step(O.ClearRefs(p))
        return multiple()

    # --- probes and later issues ---------------------------------------------------------

    @rule(proc=procs, vpn=S.vpns())
    def state(self, proc, vpn):
        self._step(O.State(proc, vpn))

    @rule(proc=procs, vpn=S.vpns(), proc2=procs, vpn2=S.vpns())
    def same(self, proc, vpn, proc2, vpn2):
        self._step(O.Same(proc, vpn, proc2, vpn2))

    @rule(data=st.data())
    def out_of_scope(self, data):
        """One rule for every op of later issues (both models must say ENOSYS): kept to
        one rule so that the supported ops get most of the steps."""
        self._step(data.draw(S.out_of_scope_ops(self.scope), label="op"))

    # --- after every step ----------------------------------------------------------------

    @invariant()
    def models_agree(self) -> None:
        """SPEC §5 self-checks on both models, then equal canonical snapshots (SPEC §4.2)."""
        try:
            self.reference.check_invariants()
            self.impl.check_invariants()
            same = canonicalize(self.reference.snapshot()) == canonicalize(self.impl.snapshot())
        except Exception as exc:  # noqa: BLE001 -- InvariantError or a crash; see _fail
            self._fail(f"a model failed its checks after `{self._last()}`: {exc}", exc)
        if not same:
            self._fail(f"states differ after `{self._last()}`")

    def _last(self) -> str:
        return format_op(self.ops[-1]) if self.ops else "(no op)"

    # Hypothesis prints a failing run as `state.rule(...)` lines (stateful.py
    # _repr_step); each line gets the op's .mmd text, so the printout reads as ops.
    def _repr_step(self, rule, data, result) -> str:   # type: ignore[override]
        line = super()._repr_step(rule, data, result)
        new, self._printed = self.ops[self._printed:], len(self.ops)
        return line + "".join(f"  # {format_op(op)}" for op in new)


TestLockstep = LockstepMachine.TestCase


@cache
def make_lockstep_machine(mutant: Optional[str] = None) -> type[LockstepMachine]:
    """LockstepMachine against ``ImplMachine(mutant)``; one class per mutant (cached, so
    Hypothesis's example database keys stay stable)."""
    if mutant is None:
        return LockstepMachine
    if mutant not in MUTANTS:
        raise ValueError(f"unknown mutant {mutant!r}: choose one of "
                         f"{', '.join(sorted(MUTANTS))} (`mmdiff mutants` lists them)")
    return type(f"LockstepMachine_{mutant}", (LockstepMachine,),
                {"mutant": mutant, "__doc__": f"LockstepMachine against impl mutant {mutant}."})
