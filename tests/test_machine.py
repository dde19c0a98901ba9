"""Hypothesis support: the strategies draw valid programs over the whole op language,
and the lockstep machine: the real impl agrees with the reference over a
bounded run, and a seeded bug (impl mutant) is caught with a `.mmd` reproducer.

Both runs are derandomized (Hypothesis seeds from the test's digest) and use no
example database, so they are deterministic and leave no files behind. The mutant
run skips Hypothesis's shrink phase: shrinking a 30-step failure takes ~10-50 s here,
and what is tested is that the failure is caught and printed as .mmd.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.stateful import run_state_machine_as_test

from mmdiff.fuzz import machine as M
from mmdiff.fuzz import strategies as S
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.fuzz.text import format_op, format_prog, parse
from mmdiff.impl import ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.machine import ReferenceMachine

BOUNDED = settings(max_examples=50, stateful_step_count=30, deadline=None, derandomize=True,
                   database=None, suppress_health_check=list(HealthCheck))


class TestLockstepBounded(M.TestLockstep):
    """TestLockstep as HypoFuzz or unittest would run it, with a small budget."""

    settings = BOUNDED


def test_machine_catches_mutant_with_mmd_reproducer() -> None:
    """no_anon_exclusive_reuse ignores PageAnonExclusive (an mprotect r/rw cycle leaves
    the page read-only; a write to a pinned page copies away from the pin): the machine
    must fail, and the message must be a report whose reproducer parses as .mmd and
    diverges again on replay with the mutant, never without it."""
    machine = M.make_lockstep_machine("no_anon_exclusive_reuse")
    find = settings(BOUNDED, max_examples=1000,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])
    with pytest.raises(M.LockstepFailure) as info:
        run_state_machine_as_test(machine, settings=find)
    msg = str(info.value)
    assert "(impl mutant no_anon_exclusive_reuse)" in msg, msg
    repro = parse(msg[msg.index("# mmdiff v1"):])
    assert repro.ops(), msg
    mutant = run_lockstep(repro, ReferenceMachine(), ImplMachine("no_anon_exclusive_reuse"))
    faithful = run_lockstep(repro, ReferenceMachine(), ImplMachine())
    assert mutant.divergence is not None and faithful.divergence is None, msg
    # Hypothesis's own step printout (exception notes) carries each op's .mmd line.
    notes = "\n".join(getattr(info.value, "__notes__", []))
    last = format_op(repro.ops()[-1])
    assert f"  # {last}" in notes, notes


def test_hand_driven_machine_reports_the_program_so_far() -> None:
    """Rules are plain methods: driven by hand (outside Hypothesis) the machine fails
    at the divergent step with the runner's report and the exact ops run so far."""
    m = M.make_lockstep_machine("no_anon_exclusive_reuse")()
    vma = m.mmap("p0", 0x100, 1, O.Prot.RW, frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON}))
    m.write_vma(vma, 0, 5)
    m.mprotect_vma(vma, O.Prot.R)
    m.models_agree()
    m.mprotect_vma(vma, O.Prot.RW)          # results agree (ok); the states do not
    with pytest.raises(M.LockstepFailure) as info:
        m.models_agree()
    msg = str(info.value)
    assert "== STATE divergence" in msg and "p0 page 0x100" in msg, msg
    assert msg.endswith("mmap p0 0x100 1 rw private,anon\nwrite p0 0x100 5\n"
                        "mprotect p0 0x100 1 r\nmprotect p0 0x100 1 rw\n"), msg


def test_make_lockstep_machine_rejects_unknown_mutant() -> None:
    with pytest.raises(ValueError, match="unknown mutant 'no_such_bug'"):
        M.make_lockstep_machine("no_such_bug")


def test_make_lockstep_machine_is_cached_per_mutant() -> None:
    assert M.make_lockstep_machine() is M.LockstepMachine
    a = M.make_lockstep_machine("no_anon_exclusive_reuse")
    assert a is M.make_lockstep_machine("no_anon_exclusive_reuse")
    assert a.mutant == "no_anon_exclusive_reuse" and M.LockstepMachine.mutant is None


# --- strategies ------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(S.programs())
def test_programs_print_and_parse_back(prog: Prog) -> None:
    """Every name is valid where it is used, so the text round-trips (STYLE §1)."""
    text = format_prog(prog)
    assert parse(text).ops() == prog.ops(), text


def _kinds_drawn(strategy, n: int) -> set[type]:
    seen: set[type] = set()

    @settings(max_examples=n, deadline=None, derandomize=True, database=None)
    @given(strategy)
    def draw(op) -> None:
        seen.add(type(op))

    draw()
    return seen


def test_every_op_kind_can_be_drawn() -> None:
    """Supported kinds by default; every later-issue kind through out_of_scope
    (SPEC §3: the decoder and strategies reach the whole language)."""
    scope = S.Scope(procs=2, files=["f0"], pins=1, subs=1, vms=["v0"])
    seen: set = set()
    for kind in S.KIND_WEIGHTS:            # each kind on its own: no luck in the mix
        seen |= _kinds_drawn(S.ops(scope, weights={kind: 1}),
                             600 if kind == "out_of_scope" else 40)
    missing = sorted(c.__name__ for c in set(O.ALL_OPS) - seen)
    assert not missing, f"op kinds never drawn: {missing}"


def test_ops_rejects_unknown_kind_weights() -> None:
    with pytest.raises(ValueError, match=r"unknown op kinds \['mmapp'\]"):
        S.ops(S.Scope(), weights={"mmapp": 1})
