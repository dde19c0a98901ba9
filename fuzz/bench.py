"""``mmdiff bench``: speed and memory of both models on one seeded op mix, measured in one run.

The workload is fixed by (ops, seed): one private anon mapping of 2^20 pages
in p0, then 60% writes to random pages, 25% reads, 10% munmap + re-mmap of a
small random range, 5% fork then exit of a child. The impl runs all of it
through ``run_batch``; the reference, being slow, runs the longest prefix that
fits its time budget, and the impl is timed again on that same prefix so the
ratio compares equal work. Figures are ratios of one run, not pass/fail.
"""
from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.reference import ops as O

SPACE_PAGES = 1 << 20           # the address space under test: 2^20 pages = 4 GiB
BASE_VPN = 1 << 20              # where it is mapped (4 GiB), 512-aligned
SMALL_RANGE_MAX = 16            # pages re-mmapped by one munmap+mmap pair
LOCKSTEP_OPS = 2000             # ops of the lockstep measurement (a prefix of the mix)
LOCKSTEP_CHECK_EVERY = 64

_PRIVATE_ANON = frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON})
_POPULATED = frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON, O.MapFlag.POPULATE})


def workload(nops: int, seed: int) -> list[O.Op]:
    """The seeded op mix: the initial mmap, then about ``nops`` ops (pairs count as two)."""
    rng = random.Random(seed)
    ops: list[O.Op] = [O.Mmap("p0", BASE_VPN, SPACE_PAGES, O.Prot.RW, _PRIVATE_ANON)]
    nprocs = 1                  # processes ever created: fork returns p{nprocs}
    while len(ops) <= nops:
        r = rng.random()
        if r < 0.60:
            ops.append(O.Write("p0", BASE_VPN + rng.randrange(SPACE_PAGES), rng.getrandbits(64)))
        elif r < 0.85:
            ops.append(O.Read("p0", BASE_VPN + rng.randrange(SPACE_PAGES)))
        elif r < 0.95:
            n = rng.randint(1, SMALL_RANGE_MAX)
            vpn = BASE_VPN + rng.randrange(SPACE_PAGES - n)
            ops.append(O.Munmap("p0", vpn, n))
            ops.append(O.Mmap("p0", vpn, n, O.Prot.RW, _PRIVATE_ANON))
        else:
            ops.append(O.Fork("p0"))
            ops.append(O.Exit(f"p{nprocs}"))
            nprocs += 1
    return ops


def _safe_prefix(ops: list[O.Op], n: int) -> list[O.Op]:
    """The first ``n`` ops, cut back so a fork is never separated from its exit."""
    n = min(n, len(ops))
    if n and isinstance(ops[n - 1], (O.Fork, O.Munmap)) and n < len(ops):
        n -= 1
    return ops[:n]


def _mapped_pages(machine) -> int:
    """Pages with a present (non-none) entry, over every live process."""
    return sum(len(p.pages) for p in machine.snapshot().procs.values())


def _time_budgeted(machine, ops: list[O.Op], seconds: float) -> tuple[int, float]:
    """Execute ops one by one until the budget runs out; returns (ops run, elapsed)."""
    t0 = time.perf_counter()
    done = 0
    for op in ops:
        machine.execute(op)
        done += 1
        # Stop only between whole pairs (fork/exit, munmap/mmap) so the state is clean.
        if done % 256 == 0 and not isinstance(op, (O.Fork, O.Munmap)):
            if time.perf_counter() - t0 > seconds:
                break
    return done, time.perf_counter() - t0


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class BenchFigures:
    """Everything ``mmdiff bench`` measured (rates in ops/s, memory in bytes/page)."""

    ops: int
    seed: int
    impl_rate: float                 # run_batch over the whole mix
    impl_prefix_rate: float          # run_batch over the reference's prefix
    ref_rate: float                  # reference over its prefix
    ref_ops: int                     # length of that prefix
    impl_bytes_per_page: float
    impl_mapped: int
    ref_bytes_per_page: float
    ref_mapped: int
    lockstep_rate: float
    lockstep_ops: int
    lockstep_divergence: Optional[str]
    fork_seconds: float              # one fork of a fully populated 2^20-page space (impl)
    populated_bytes_per_page: float  # impl memory of that space per page

    @property
    def ratio(self) -> float:
        """impl / reference speed on the same prefix."""
        return self.impl_prefix_rate / self.ref_rate if self.ref_rate else float("inf")


def measure(nops: int, seed: int, ref_seconds: float) -> BenchFigures:
    """Run every measurement once on the workload of (nops, seed)."""
    from mmdiff.impl import ImplMachine           # imported here: the bench needs the build
    from mmdiff.reference.machine import ReferenceMachine

    ops = workload(nops, seed)

    impl = ImplMachine()
    impl_secs = _timed(lambda: impl.run_batch(ops))
    impl_mapped = _mapped_pages(impl)
    impl_bpp = impl.memory_bytes() / max(impl_mapped, 1)
    del impl

    gc.collect()
    ref_ops, ref_secs = _time_budgeted(ReferenceMachine(), ops, ref_seconds)
    prefix = ops[:ref_ops]
    impl2 = ImplMachine()
    impl_prefix_secs = _timed(lambda: impl2.run_batch(prefix))
    del impl2

    # Memory of the reference on the same prefix, in a second pass: tracemalloc
    # slows allocation, so it must stay off while timing.
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    ref = ReferenceMachine()
    for op in prefix:
        ref.execute(op)
    gc.collect()
    ref_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    ref_mapped = _mapped_pages(ref)
    del ref

    lock_prog = Prog.of(_safe_prefix(ops, LOCKSTEP_OPS), source="<bench>")
    t0 = time.perf_counter()
    outcome = run_lockstep(lock_prog, ReferenceMachine(), ImplMachine(),
                           check_every=LOCKSTEP_CHECK_EVERY, check_invariants=False)
    lock_secs = time.perf_counter() - t0

    full = ImplMachine()
    full.execute(O.Mmap("p0", BASE_VPN, SPACE_PAGES, O.Prot.RW, _POPULATED))
    populated_bpp = full.memory_bytes() / SPACE_PAGES
    fork_result = []
    fork_secs = _timed(lambda: fork_result.append(full.execute(O.Fork("p0"))))
    del full
    if str(fork_result[0]) != "p1":
        raise RuntimeError(f"bench: fork of the populated space returned {fork_result[0]}, "
                           f"expected p1: the fork timing would be meaningless")

    return BenchFigures(
        ops=len(ops), seed=seed,
        impl_rate=len(ops) / impl_secs, impl_prefix_rate=ref_ops / impl_prefix_secs,
        ref_rate=ref_ops / ref_secs, ref_ops=ref_ops,
        impl_bytes_per_page=impl_bpp, impl_mapped=impl_mapped,
        ref_bytes_per_page=ref_bytes / max(ref_mapped, 1), ref_mapped=ref_mapped,
        lockstep_rate=outcome.ops_executed / lock_secs, lockstep_ops=outcome.ops_executed,
        lockstep_divergence=str(outcome.divergence) if outcome.divergence else None,
        fork_seconds=fork_secs, populated_bytes_per_page=populated_bpp)


def print_table(f: BenchFigures, out: Optional[TextIO] = None) -> None:
    """The figures as an aligned table (no pass/fail: ratios of this run)."""
    out = out or sys.stdout                # looked up now: tests swap sys.stdout
    rows = [
        ("workload", f"{f.ops} ops, seed {f.seed}, 2^20-page private anon space "
                     f"(60% write, 25% read, 10% munmap+mmap, 5% fork+exit)"),
        ("impl ops/s (run_batch, all ops)", f"{f.impl_rate:,.0f}"),
        (f"impl ops/s (first {f.ref_ops} ops)", f"{f.impl_prefix_rate:,.0f}"),
        (f"reference ops/s (first {f.ref_ops} ops)", f"{f.ref_rate:,.0f}"),
        ("speed ratio impl/reference (same ops)", f"{f.ratio:,.1f}x"),
        # Random pages over 2^20: most touch their own page-table page, so this
        # includes page tables, unlike the fully populated figure below.
        ("impl bytes per mapped page", f"{f.impl_bytes_per_page:,.1f}  ({f.impl_mapped} pages mapped)"),
        ("reference bytes per mapped page", f"{f.ref_bytes_per_page:,.1f}  ({f.ref_mapped} pages mapped, tracemalloc)"),
        ("memory ratio reference/impl", f"{f.ref_bytes_per_page / max(f.impl_bytes_per_page, 1e-9):,.1f}x"),
        (f"lockstep ops/s (check_every={LOCKSTEP_CHECK_EVERY}, no invariants)",
         f"{f.lockstep_rate:,.0f}  ({f.lockstep_ops} ops)"
         + (f"  DIVERGED: {f.lockstep_divergence}" if f.lockstep_divergence else "")),
        ("impl fork of a fully populated 2^20-page space", f"{f.fork_seconds * 1e3:,.1f} ms"),
        ("impl bytes per page, fully populated", f"{f.populated_bytes_per_page:,.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}", file=out)
