"""``mmdiff bench --mixes``: fuzz execs/s of the foundation op mix vs device-heavy mixes.

Both mixes are seeded generators of 100-op programs over the same few VMAs
(private anon, private and shared file, shared anon) in p0 and its children; the
device-heavy one spends 40% of its ops on mirrors, device reads/writes,
device-exclusive grants and atomics, and the swap/KSM one 30% on pageout and KSM.
Each is run through the fuzzing harness (reference op by op, impl in run_batch
chunks, states compared every 64 ops) for a fixed time, as a fuzz worker would.
Figures are ratios of one run, not pass/fail.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from mmdiff.fuzz.harness import Harness
from mmdiff.fuzz.prog import Prog
from mmdiff.reference import ops as O

PROG_OPS = 100
_BASE = 0x100
_VMAS = (   # (vpn offset, pages, prot, flags, file)
    (0, 8, O.Prot.RW, frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON}), None),
    (8, 4, O.Prot.RW, frozenset({O.MapFlag.PRIVATE}), "f0"),
    (12, 4, O.Prot.RW, frozenset({O.MapFlag.SHARED}), "f0"),
    (16, 4, O.Prot.RW, frozenset({O.MapFlag.SHARED, O.MapFlag.ANON}), None),
)
_SPAN = 20


def _setup() -> list[O.Op]:
    ops: list[O.Op] = [O.File("f0", 8)]
    for off, n, prot, flags, f in _VMAS:
        ops.append(O.Mmap("p0", _BASE + off, n, prot, flags, f, 0 if f else None))
    return ops


def _foundation_op(rng: random.Random, procs: list[str]) -> O.Op:
    p = rng.choice(procs)
    v = _BASE + rng.randrange(_SPAN)
    r = rng.random()
    if r < 0.35:
        return O.Write(p, v, rng.randrange(1 << 16))
    if r < 0.60:
        return O.Read(p, v)
    if r < 0.70:
        return O.Mprotect(p, v, rng.randint(1, 4), rng.choice((O.Prot.R, O.Prot.RW)))
    if r < 0.78:
        return O.Madvise(p, v, rng.randint(1, 4), O.Advice.DONTNEED)
    if r < 0.86 and len(procs) < 6:
        procs.append(f"p{len(procs)}")
        return O.Fork(p)
    if r < 0.93:
        return O.FileWrite("f0", rng.randrange(8), rng.randrange(1 << 16))
    return O.State(p, v)


def _device_op(rng: random.Random, procs: list[str]) -> O.Op:
    p = rng.choice(procs)
    d = rng.choice(("d0", "d1"))
    v = _BASE + rng.randrange(_SPAN)
    r = rng.random()
    if r < 0.15:
        return O.Mirror(d, p, _BASE + rng.randrange(_SPAN), rng.randint(1, _SPAN))
    if r < 0.45:
        return O.DevRead(d, p, v)
    if r < 0.70:
        return O.DevWrite(d, p, v, rng.randrange(1 << 16))
    if r < 0.82:
        return O.DevExclusive(d, p, v)
    if r < 0.94:
        return O.DevAtomic(d, p, v, rng.randrange(16))
    return O.DevEvents(d)


def _swap_ksm_op(rng: random.Random, procs: list[str]) -> O.Op:
    p = rng.choice(procs)
    v = _BASE + rng.randrange(_SPAN)
    r = rng.random()
    if r < 0.45:
        return O.Madvise(p, v, rng.randint(1, 6), O.Advice.PAGEOUT)
    if r < 0.75:
        return O.Madvise(p, _BASE, _SPAN, O.Advice.MERGEABLE)
    if r < 0.90:
        return O.KsmScan()
    return O.Madvise(p, v, rng.randint(1, 6), O.Advice.UNMERGEABLE)


def program(rng: random.Random, extra: Callable[[random.Random, list[str]], O.Op],
            share: float) -> Prog:
    """One program: the setup, then PROG_OPS ops, `share` of them from `extra`."""
    procs = ["p0"]
    ops = _setup()
    for _ in range(PROG_OPS):
        ops.append(extra(rng, procs) if rng.random() < share else _foundation_op(rng, procs))
    return Prog.of(ops, source="<bench-mix>")


@dataclass
class MixFigures:
    name: str
    execs: int
    seconds: float
    ops: int
    diverged: int

    @property
    def execs_per_s(self) -> float:
        return self.execs / self.seconds


def measure_mix(name: str, extra, share: float, seconds: float, seed: int) -> MixFigures:
    rng = random.Random(seed)
    harness = Harness(check_every=64)
    execs = diverged = ops = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        prog = program(rng, extra, share)
        ops += len(prog.ops())
        if harness.check(prog) is not None:
            diverged += 1
        execs += 1
    return MixFigures(name, execs, time.perf_counter() - t0, ops, diverged)


def measure(seconds: float, seed: int) -> list[MixFigures]:
    return [measure_mix("foundation", _foundation_op, 0.0, seconds, seed),
            measure_mix("device-heavy (40% device ops)", _device_op, 0.4, seconds, seed),
            measure_mix("swap/KSM (30% pageout/KSM ops)", _swap_ksm_op, 0.3, seconds, seed)]


def print_table(rows: list[MixFigures]) -> None:
    base = rows[0].execs_per_s
    width = max(len(r.name) for r in rows)
    print(f"{'mix'.ljust(width)}  execs/s   ops/s    vs foundation  divergences")
    for r in rows:
        print(f"{r.name.ljust(width)}  {r.execs_per_s:7.1f}  {r.ops / r.seconds:7.0f}  "
              f"{r.execs_per_s / base:12.2f}x  {r.diverged}")
