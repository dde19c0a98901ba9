"""Property: random issue-3 programs run identically on both models, and both keep
SPEC §5's invariants after every op; when every process exits, no anon frame is left.

Programs stay in a small window of pages (a few VMAs, 512-page boundaries nearby)
so that ops collide: COW chains, partial munmap/mprotect, MAP_FIXED replacement.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.impl import ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.machine import ReferenceMachine

BASE = 0x1f8           # straddles the 512-page boundary at 0x200
SPAN = 24
FLAGSETS = [
    frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON}),
    frozenset({O.MapFlag.SHARED, O.MapFlag.ANON}),
    frozenset({O.MapFlag.PRIVATE}),                 # file-backed
    frozenset({O.MapFlag.SHARED}),
    frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON, O.MapFlag.POPULATE}),
]
ADVICE = [O.Advice.DONTNEED, O.Advice.DONTFORK, O.Advice.DOFORK, O.Advice.WIPEONFORK,
          O.Advice.KEEPONFORK, O.Advice.POPULATE_READ, O.Advice.POPULATE_WRITE]


@st.composite
def programs(draw, max_ops: int = 40) -> Prog:
    nprocs = 1
    ops: list[O.Op] = [O.File("f0", SPAN)]
    vpn = st.integers(BASE, BASE + SPAN - 1)
    npages = st.integers(0, 8)
    for _ in range(draw(st.integers(1, max_ops))):
        p = f"p{draw(st.integers(0, nprocs - 1))}"
        kind = draw(st.sampled_from(
            ["mmap"] * 3 + ["write"] * 5 + ["read"] * 3 + ["munmap", "mprotect", "mprotect",
             "madvise", "madvise", "fork", "exit", "fwrite", "fread", "state", "same"]))
        if kind == "mmap":
            flags = draw(st.sampled_from(FLAGSETS))
            file = None if O.MapFlag.ANON in flags else "f0"
            ops.append(O.Mmap(p, draw(vpn), draw(st.integers(1, 8)), draw(st.sampled_from(list(O.Prot))),
                              flags, file, draw(st.integers(0, SPAN)) if file else None))
        elif kind == "write":
            ops.append(O.Write(p, draw(vpn), draw(st.integers(1, 255))))
        elif kind == "read":
            ops.append(O.Read(p, draw(vpn)))
        elif kind == "munmap":
            ops.append(O.Munmap(p, draw(vpn), draw(npages)))
        elif kind == "mprotect":
            ops.append(O.Mprotect(p, draw(vpn), draw(npages), draw(st.sampled_from(list(O.Prot)))))
        elif kind == "madvise":
            ops.append(O.Madvise(p, draw(vpn), draw(npages), draw(st.sampled_from(ADVICE))))
        elif kind == "fork":
            ops.append(O.Fork(p))
            nprocs += 1
        elif kind == "exit":
            ops.append(O.Exit(p))
        elif kind == "fwrite":
            ops.append(O.FileWrite("f0", draw(st.integers(0, SPAN)), draw(st.integers(1, 255))))
        elif kind == "fread":
            ops.append(O.FileRead("f0", draw(st.integers(0, SPAN))))
        elif kind == "state":
            ops.append(O.State(p, draw(vpn)))
        else:
            q = f"p{draw(st.integers(0, nprocs - 1))}"
            ops.append(O.Same(p, draw(vpn), q, draw(vpn)))
    return Prog.of(ops, source="<hypothesis>")


def _exit_all(prog: Prog) -> Prog:
    nprocs = 1 + sum(isinstance(o, O.Fork) for o in prog.ops())
    return Prog.of(prog.ops() + [O.Exit(f"p{i}") for i in range(nprocs)], source=prog.source)


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
    """SPEC §5: when every process has exited, no anonymous frame is left; only the
    named file's page cache remains, each page with mapcount 0."""
    m = machine()
    for op in _exit_all(prog).ops():
        m.execute(op)
    snap = m.snapshot()
    assert not snap.procs
    file_frames = set(snap.files.get("f0", {}).values())
    assert set(snap.frames) == file_frames
    assert all(f.mapcount == 0 for f in snap.frames.values())
