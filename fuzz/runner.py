"""Run a Prog on two machines in lockstep (or on one) and stop at the first divergence.

Order of checks after each op (SPEC §4): results, then the statement's
``-> EXPECT``, then both models' invariants (SPEC §5), then the canonical
states every ``check_every`` ops and after the last op. The left machine is the
oracle (the reference); its name and the right one's label the report.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

from mmdiff.fuzz.differ import (Divergence, DivergenceKind, diff_results, diff_states,
                                expectation_met)
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.reference.api import InvariantError, Machine
from mmdiff.reference.results import Result
from mmdiff.reference.state import canonicalize

T = TypeVar("T")


@dataclass
class RunOutcome:
    """What one run produced: per-op results (one per machine), the first divergence."""

    prog: Prog
    sides: tuple[str, ...]                    # machine names, e.g. ("reference", "impl")
    results: list[tuple[Result, ...]] = field(default_factory=list)  # per op, per machine
    divergence: Optional[Divergence] = None
    ops_executed: int = 0                     # ops started, including the divergent one

    @property
    def ok(self) -> bool:
        return self.divergence is None


class _Stop(Exception):
    """Internal: carries the first divergence out of the per-op checks."""

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.kind.value)
        self.divergence = divergence


def _model_traceback(exc: BaseException) -> str:
    """The traceback from the first frame outside this module (the model's frames only)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _guarded(side: str, index: int, stmt: Stmt, call: Callable[[], T]) -> T:
    """Call into a machine; an escaping exception becomes a CRASH or INVARIANT divergence."""
    try:
        return call()
    except InvariantError as exc:
        # A model's own self-check failed, mid-op or in check_invariants().
        raise _Stop(Divergence(DivergenceKind.INVARIANT, index, stmt, side=side,
                               detail=str(exc) or type(exc).__name__)) from exc
    except Exception as exc:  # noqa: BLE001
        # Classification point (STYLE §6): errno/signal results are ordinary return
        # values, so anything raised out of a machine is a model crash. Only
        # KeyboardInterrupt/SystemExit (BaseException) pass through.
        raise _Stop(Divergence(DivergenceKind.CRASH, index, stmt, side=side,
                               traceback=_model_traceback(exc),
                               detail=f"{type(exc).__name__}: {exc}")) from exc


def _check_expect(side: str, index: int, stmt: Stmt, got: Result) -> None:
    if stmt.expect is not None and not expectation_met(stmt.expect, got):
        raise _Stop(Divergence(DivergenceKind.EXPECT, index, stmt,
                               left=stmt.expect, right=got, side=side,
                               detail=f"{side} returned {got}, expected {stmt.expect}"))


def _state(side: str, index: int, stmt: Stmt, machine: Machine) -> dict[str, str]:
    return _guarded(side, index, stmt, lambda: canonicalize(machine.snapshot()))


def run_lockstep(prog: Prog, left: Machine, right: Machine, check_every: int = 1,
                 check_invariants: bool = True,
                 sides: tuple[str, str] = ("reference", "impl")) -> RunOutcome:
    """Run every op of ``prog`` on ``left`` then ``right``; stop at the first divergence.

    ``check_every`` K compares canonical states after every K-th op and after
    the last one (0: only after the last). Expectations are checked against
    the left (oracle) result; the right one equals it once results agree.
    """
    if check_every < 0:
        raise ValueError(f"check_every={check_every} must be >= 0 (0: only after the last op)")
    out = RunOutcome(prog, sides)
    stmts = list(prog.op_stmts())
    machines = ((sides[0], left), (sides[1], right))
    try:
        for index, stmt in enumerate(stmts):
            out.ops_executed = index + 1
            got = tuple(_guarded(side, index, stmt, lambda m=m: m.execute(stmt.op))
                        for side, m in machines)
            out.results.append(got)
            if diff_results(got[0], got[1]):
                raise _Stop(Divergence(DivergenceKind.RESULT, index, stmt,
                                       left=got[0], right=got[1],
                                       detail=f"{sides[0]} {got[0]} != {sides[1]} {got[1]}"))
            _check_expect(sides[0], index, stmt, got[0])
            if check_invariants:
                for side, m in machines:
                    _guarded(side, index, stmt, m.check_invariants)
            last = index == len(stmts) - 1
            if last or (check_every and (index + 1) % check_every == 0):
                states = [_state(side, index, stmt, m) for side, m in machines]
                fields = diff_states(*states) if states[0] != states[1] else []
                if fields:
                    raise _Stop(Divergence(DivergenceKind.STATE, index, stmt,
                                           left=got[0], right=got[1], fields=tuple(fields),
                                           detail=f"{len(fields)} state field(s) differ"))
    except _Stop as stop:
        out.divergence = stop.divergence
    return out


def run_single(prog: Prog, machine: Machine, side: str = "reference",
               check_invariants: bool = True) -> RunOutcome:
    """Run ``prog`` on one machine: expectations and invariants only (``--backend``).

    The final snapshot is still taken, so a model that crashes while
    reporting its state is caught here too.
    """
    out = RunOutcome(prog, (side,))
    stmts = list(prog.op_stmts())
    try:
        for index, stmt in enumerate(stmts):
            out.ops_executed = index + 1
            got = _guarded(side, index, stmt, lambda: machine.execute(stmt.op))
            out.results.append((got,))
            _check_expect(side, index, stmt, got)
            if check_invariants:
                _guarded(side, index, stmt, machine.check_invariants)
        if stmts:
            _state(side, len(stmts) - 1, stmts[-1], machine)
    except _Stop as stop:
        out.divergence = stop.divergence
    return out
