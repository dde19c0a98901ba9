"""The runner, differ and report catch each kind of divergence at the right op.

Most cases use ``FakeMachine``: a tiny self-consistent model (writes store a
value, reads return it, every written page is one anon frame) with a switch
that breaks it in one precise way at one op. One case runs the real impl with
a deliberate bug (``mutant``) against the reference.
"""
from __future__ import annotations

from typing import Optional

import pytest

from mmdiff.fuzz.differ import MISSING, DivergenceKind, diff_states, path_order
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.report import format_report, prefix_stmts, reproducer
from mmdiff.fuzz.runner import run_lockstep, run_single
from mmdiff.fuzz.text import format_op, parse
from mmdiff.reference import ops as O
from mmdiff.reference.api import InvariantError
from mmdiff.reference.results import OK, Result, value
from mmdiff.reference.state import (EntryKind, FrameView, Level, PageView, ProcView,
                                    RawSnapshot, canonicalize)


class FakeMachine:
    """Writes store, reads load (0 if never written), mmap returns its VPN, the rest ok.

    Breakage switches, each active from the 0-based op index given:
    crash_at (execute raises), wrong_at (read/write returns 0xbad),
    readonly_at (pages written from then on are reported read-only),
    invariant_at (check_invariants raises InvariantError).
    """

    def __init__(self, crash_at: Optional[int] = None, wrong_at: Optional[int] = None,
                 readonly_at: Optional[int] = None, invariant_at: Optional[int] = None):
        self.pages: dict[int, int] = {}
        self.readonly: set[int] = set()
        self.n = -1                           # index of the op being executed
        self.crash_at, self.wrong_at = crash_at, wrong_at
        self.readonly_at, self.invariant_at = readonly_at, invariant_at
        self.invariant_checks = 0

    def execute(self, op: O.Op) -> Result:
        self.n += 1
        if self.crash_at == self.n:
            raise RuntimeError(f"fake crash in op {self.n}")
        if self.wrong_at == self.n:
            return value(0xbad)
        if isinstance(op, O.Write):
            self.pages[op.vpn] = op.value
            if self.readonly_at is not None and self.n >= self.readonly_at:
                self.readonly.add(op.vpn)
            return OK
        if isinstance(op, O.Read):
            return value(self.pages.get(op.vpn, 0))
        if isinstance(op, O.Mmap):
            return value(op.vpn)
        return OK

    def snapshot(self) -> RawSnapshot:
        pv = ProcView()
        snap = RawSnapshot(procs={"p0": pv})
        for vpn, val in self.pages.items():
            pv.pages[vpn] = PageView(EntryKind.ANON, Level.PTE, vpn not in self.readonly,
                                     True, True, True, ("frame", vpn))
            snap.frames[("frame", vpn)] = FrameView(1, 0, val)
        return snap

    def check_invariants(self) -> None:
        self.invariant_checks += 1
        if self.invariant_at is not None and self.n >= self.invariant_at:
            raise InvariantError(f"fake invariant broken after op {self.n:#x}")


PROG_TEXT = """\
# mmdiff v1
# a comment line before the ops
mmap p0 0x100 4 rw private,anon -> 0x100
write p0 0x100 0x11
write p0 0x101 0x22 -> ok
read p0 0x100 -> 0x11
# comment between ops
read p0 0x101 -> 0x22
write p0 0x102 0x33
"""


def prog() -> Prog:
    return parse(PROG_TEXT, source="t/prog.mmd")


def line_of(p: Prog, index: int) -> int:
    return list(p.op_stmts())[index].line


# --- lockstep: one test per divergence kind ---------------------------------------------------

def test_agreeing_machines_run_every_op_and_check_invariants_each_time() -> None:
    left, right = FakeMachine(), FakeMachine()
    out = run_lockstep(prog(), left, right)
    assert out.divergence is None
    assert out.ops_executed == 6
    assert [r[0] for r in out.results] == [value(0x100), OK, OK, value(0x11), value(0x22), OK]
    assert left.invariant_checks == right.invariant_checks == 6


def test_wrong_result_is_RESULT_at_its_op() -> None:
    p = prog()
    out = run_lockstep(p, FakeMachine(), FakeMachine(wrong_at=3))
    d = out.divergence
    assert d is not None and d.kind is DivergenceKind.RESULT
    assert (d.index, d.line) == (3, line_of(p, 3))
    assert (d.left, d.right) == (value(0x11), value(0xbad))
    assert isinstance(d.stmt.op, O.Read) and d.stmt.op.vpn == 0x100
    assert out.ops_executed == 4


def test_crash_is_CRASH_with_side_and_traceback() -> None:
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(crash_at=2))
    d = out.divergence
    assert d.kind is DivergenceKind.CRASH
    assert (d.index, d.side) == (2, "impl")
    assert "RuntimeError: fake crash in op 2" in d.traceback
    assert "in execute" in d.traceback          # the frame that raised is in it


def test_crash_of_the_left_machine_names_the_reference() -> None:
    out = run_lockstep(prog(), FakeMachine(crash_at=0), FakeMachine())
    assert (out.divergence.kind, out.divergence.index, out.divergence.side) == \
        (DivergenceKind.CRASH, 0, "reference")


def test_keyboard_interrupt_is_not_classified_as_a_crash() -> None:
    class Interrupted(FakeMachine):
        def execute(self, op):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lockstep(prog(), FakeMachine(), Interrupted())


def test_broken_invariant_is_INVARIANT_after_that_op() -> None:
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(invariant_at=4))
    d = out.divergence
    assert (d.kind, d.index, d.side) == (DivergenceKind.INVARIANT, 4, "impl")
    assert "fake invariant broken after op 0x4" in d.detail


def test_invariants_are_skipped_when_disabled() -> None:
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(invariant_at=0),
                       check_invariants=False)
    assert out.divergence is None


def test_expectation_miss_is_EXPECT_with_expected_and_got() -> None:
    p = parse(PROG_TEXT.replace("read p0 0x101 -> 0x22", "read p0 0x101 -> 0x23"), "t/e.mmd")
    out = run_lockstep(p, FakeMachine(), FakeMachine())
    d = out.divergence
    assert (d.kind, d.index, d.side) == (DivergenceKind.EXPECT, 4, "reference")
    assert (d.left, d.right) == (value(0x23), value(0x22))
    assert d.line == 8          # the line of `read p0 0x101` in PROG_TEXT


def test_expectations_compare_numerically() -> None:
    p = parse(PROG_TEXT.replace("-> 0x11", "-> 17"), "t/dec.mmd")
    assert run_lockstep(p, FakeMachine(), FakeMachine()).divergence is None


def test_state_mismatch_is_STATE_with_the_differing_paths() -> None:
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(readonly_at=2))
    d = out.divergence
    assert (d.kind, d.index) == (DivergenceKind.STATE, 2)
    assert [f[0] for f in d.fields] == ["p0 page 0x101"]
    _, left, right = d.fields[0]
    assert left.startswith("anon pte rw ") and right.startswith("anon pte r ")


@pytest.mark.parametrize("check_every, found_at", [(1, 2), (2, 3), (4, 3), (5, 4), (0, 5)])
def test_state_is_compared_every_k_ops_and_after_the_last(check_every, found_at) -> None:
    # The impl drifts at op 2; states are compared after ops k-1, 2k-1, ... and the last (5).
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(readonly_at=2),
                       check_every=check_every)
    assert (out.divergence.kind, out.divergence.index) == (DivergenceKind.STATE, found_at)


def test_drift_after_the_last_check_point_is_caught_at_the_end() -> None:
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(readonly_at=5), check_every=64)
    assert (out.divergence.kind, out.divergence.index) == (DivergenceKind.STATE, 5)


def test_negative_check_every_is_refused() -> None:
    with pytest.raises(ValueError, match="check_every=-1 must be >= 0"):
        run_lockstep(prog(), FakeMachine(), FakeMachine(), check_every=-1)


# --- single backend ------------------------------------------------------------------------------

def test_run_single_checks_expectations_and_invariants_only() -> None:
    p = parse(PROG_TEXT.replace("read p0 0x100 -> 0x11", "read p0 0x100 -> 0x12"), "t/s.mmd")
    out = run_single(p, FakeMachine(), "impl")
    assert (out.divergence.kind, out.divergence.index, out.divergence.side) == \
        (DivergenceKind.EXPECT, 3, "impl")
    out = run_single(prog(), FakeMachine(invariant_at=1))
    assert (out.divergence.kind, out.divergence.index, out.divergence.side) == \
        (DivergenceKind.INVARIANT, 1, "reference")
    assert run_single(prog(), FakeMachine(readonly_at=0)).divergence is None


# --- differ ----------------------------------------------------------------------------------------

def test_diff_states_reports_missing_keys_and_sorts_numerically() -> None:
    a = {"p0 vma[0]": "x", "p0 page 0x20": "A", "p0 page 0x100": "B", "frame F2": "m",
         "frame F10": "n", "p10 page 0x1": "q"}
    b = {"p0 vma[0]": "x", "p0 page 0x20": "A2", "frame F2": "m", "frame F10": "n2",
         "p2 page 0x1": "r", "p10 page 0x1": "q"}
    assert diff_states(a, b) == [
        ("p0 page 0x20", "A", "A2"),
        ("p0 page 0x100", "B", MISSING),
        ("p2 page 0x1", MISSING, "r"),
        ("frame F10", "n", "n2"),
    ]


def test_path_order_follows_canonicalize_layout() -> None:
    snap = FakeMachine()
    for vpn in (0x300, 0x20, 0x100):
        snap.execute(O.Write("p0", vpn, vpn))
    canon = list(canonicalize(snap.snapshot()))
    assert sorted(canon, key=path_order) == canon


# --- report ------------------------------------------------------------------------------------------

def test_reproducer_is_the_prefix_and_parses_back() -> None:
    p = prog()
    out = run_lockstep(p, FakeMachine(), FakeMachine(wrong_at=4))
    text = reproducer(p, out.divergence)
    again = parse(text, source="repro.mmd", strict=True)
    assert again.ops() == p.ops()[:5]
    # expectations and comment lines of the prefix are kept
    assert [s.expect for s in again.op_stmts()] == [s.expect for s in list(p.op_stmts())[:5]]
    assert len(prefix_stmts(p, out.divergence)) == 8


def test_report_names_location_op_and_both_sides() -> None:
    p = prog()
    out = run_lockstep(p, FakeMachine(), FakeMachine(wrong_at=3))
    report = format_report(out)
    first = report.splitlines()[0]
    assert f"t/prog.mmd:{line_of(p, 3)}" in first
    assert format_op(p.ops()[3]) in first
    result_row = next(ln for ln in report.splitlines() if ln.strip().startswith("result"))
    assert result_row.split()[1:] == ["0x11", "0xbad"]


def test_report_aligns_state_fields_in_columns() -> None:
    out = run_lockstep(prog(), FakeMachine(), FakeMachine(readonly_at=1))
    lines = format_report(out).splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("state fields"))
    header, *rows = lines[start + 1:start + 2 + len(out.divergence.fields)]
    col = header.index("impl")
    for (path, left, right), row in zip(out.divergence.fields, rows):
        assert row[col:] == right and row.strip().startswith(path)


def test_report_of_an_agreeing_run_is_empty() -> None:
    assert format_report(run_lockstep(prog(), FakeMachine(), FakeMachine())) == ""


# --- the real impl with a deliberate bug ------------------------------------------------------------

# The mutant ignores PageAnonExclusive: mprotect(rw) no longer upgrades the exclusive
# anon PTE (can_change_pte_writable), so op #3 leaves it read-only.
MUTANT_PROG = """\
# mmdiff v1
mmap p0 0x100 1 rw private,anon
write p0 0x100 0x11
mprotect p0 0x100 1 r
mprotect p0 0x100 1 rw
state p0 0x100
write p0 0x100 0x22
read p0 0x100
"""


@pytest.mark.parametrize("check_every, kind, index", [
    (1, DivergenceKind.STATE, 3),     # seen in the snapshot right after the mprotect
    (0, DivergenceKind.RESULT, 4),    # states compared only at the end: the probe sees it
])
def test_differ_catches_the_no_anon_exclusive_reuse_mutant(check_every, kind, index) -> None:
    # No skip: if the impl or its mutant switch is missing, this must fail.
    from mmdiff.impl import ImplMachine
    from mmdiff.reference.machine import ReferenceMachine

    p = parse(MUTANT_PROG, "mutant.mmd")
    clean = run_lockstep(p, ReferenceMachine(), ImplMachine(), check_every=check_every)
    assert clean.divergence is None, format_report(clean)
    out = run_lockstep(p, ReferenceMachine(), ImplMachine(mutant="no_anon_exclusive_reuse"),
                       check_every=check_every)
    d = out.divergence
    assert d is not None, "the mutant impl went unnoticed"
    assert (d.kind, d.index, d.line) == (kind, index, index + 2), format_report(out)
    if kind is DivergenceKind.STATE:
        assert [f[0] for f in d.fields] == ["p0 page 0x100"], format_report(out)
        assert " rw " in d.fields[0][1] and " r " in d.fields[0][2]
    else:
        assert (str(d.left), str(d.right)) == ("anon pte rw dirty softdirty excl",
                                               "anon pte r dirty softdirty excl")


# --- soak (pytest --soak) ----------------------------------------------------------------------------

@pytest.mark.soak
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soak_bench_workload_agrees_in_lockstep(seed) -> None:
    """The bench's seeded mix over a 2^20-page space, 10000 ops, states every 64 ops."""
    from mmdiff.fuzz.bench import workload
    from mmdiff.impl import ImplMachine
    from mmdiff.reference.machine import ReferenceMachine

    p = Prog.of(workload(10000, seed), source=f"<bench seed {seed}>")
    out = run_lockstep(p, ReferenceMachine(), ImplMachine(), check_every=64,
                       check_invariants=False)
    assert out.divergence is None, format_report(out)
