"""Property: random issue-3 programs run identically on both models, and both keep
SPEC §5's invariants after every op; when every process exits, no anon frame is left.

Programs come from mmdiff.fuzz.strategies.programs(): a small window of pages
straddling a 512-page boundary, so that ops collide (COW chains, partial
munmap/mprotect, MAP_FIXED replacement).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.fuzz.strategies import programs
from mmdiff.impl import ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.machine import ReferenceMachine


def _exit_all(prog: Prog) -> Prog:
    """The program, then every process exits and every pin handle is dropped (handles
    that never existed or were unpinned already just give EINVAL)."""
    nprocs = 1 + sum(isinstance(o, O.Fork) for o in prog.ops())
    npins = sum(isinstance(o, O.Pin) for o in prog.ops())
    return Prog.of(prog.ops() + [O.Exit(f"p{i}") for i in range(nprocs)]
                   + [O.Unpin(f"h{k}") for k in range(1, npins + 1)], source=prog.source)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_models_agree_and_keep_invariants(prog: Prog) -> None:
    outcome = run_lockstep(_exit_all(prog), ReferenceMachine(), ImplMachine(),
                           check_every=1, check_invariants=True)
    assert outcome.divergence is None, str(outcome.divergence)


@pytest.mark.parametrize("machine", [ReferenceMachine, ImplMachine])
@settings(max_examples=60, deadline=None)
@given(prog=programs())
def test_refcounts_balance_after_every_exit(machine, prog: Prog) -> None:
    """SPEC §5: when every process has exited and every pin is dropped, no anonymous
    frame is left; only the named files' page caches remain, each page with mapcount 0."""
    m = machine()
    for op in _exit_all(prog).ops():
        m.execute(op)
    snap = m.snapshot()
    assert not snap.procs
    file_frames = {f for pages in snap.files.values() for f in pages.values()
                   if f not in snap.slots}                  # swapped shmem pages are slots
    assert set(snap.frames) == file_frames
    assert all(f.mapcount == 0 for f in snap.frames.values())
