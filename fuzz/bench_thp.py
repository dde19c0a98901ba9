"""``mmdiff bench --thp``: both models on a THP workload over 2 GiB, measured in one run.

The workload: `set thp always`, one private anon mapping of 2^19 pages (1024 PMD
blocks), a write into every block (1024 THP faults), then a seeded mix over the
blocks: writes and reads (PMD hits), fork + a child write (split + one 4 KiB COW)
+ exit, forced splits, one-page mprotect r/rw (VMA split: PMD split), and dontneed
of a whole block followed by a write (zap_huge_pmd, a new THP). The impl runs it all,
the reference the longest prefix that fits its budget, and the impl is timed again
on that prefix so the ratio compares equal work. Memory: the impl's bytes for the
1024 PMD-mapped blocks, then after splitting every block (512 PTEs each): the
page-table cost of a PMD-mapped 2 MiB is one entry. Ratios of one run, not pass/fail.
"""
from __future__ import annotations

import gc
import random
import sys
import time
from dataclasses import dataclass
from typing import Optional, TextIO

from mmdiff.fuzz.bench import _timed, _time_budgeted
from mmdiff.reference import ops as O

BLOCKS = 1024                       # 2 GiB of PMD blocks
BLOCK = O.HPAGE_PMD_NR
BASE_VPN = 1 << 20                  # 4 GiB, block aligned
_PRIVATE_ANON = frozenset({O.MapFlag.PRIVATE, O.MapFlag.ANON})


def setup_ops() -> list[O.Op]:
    """THP on, the 2 GiB mapping, one write per block."""
    ops: list[O.Op] = [O.Set(O.SetKey.THP, "always"),
                       O.Mmap("p0", BASE_VPN, BLOCKS * BLOCK, O.Prot.RW, _PRIVATE_ANON)]
    ops += [O.Write("p0", BASE_VPN + b * BLOCK + (b * 7) % BLOCK, b + 1) for b in range(BLOCKS)]
    return ops


def workload(nops: int, seed: int) -> list[O.Op]:
    """setup_ops, then about ``nops`` ops of the seeded mix (groups count fully)."""
    rng = random.Random(seed)
    ops = setup_ops()
    nprocs = 1

    def page() -> int:
        return BASE_VPN + rng.randrange(BLOCKS * BLOCK)

    while len(ops) <= nops + len(setup_ops()):
        r = rng.random()
        blk = BASE_VPN + rng.randrange(BLOCKS) * BLOCK
        if r < 0.40:
            ops.append(O.Write("p0", page(), rng.getrandbits(64)))
        elif r < 0.60:
            ops.append(O.Read("p0", page()))
        elif r < 0.70:
            child = f"p{nprocs}"
            nprocs += 1
            ops += [O.Fork("p0"), O.Write(child, page(), 1), O.Exit(child)]
        elif r < 0.80:
            ops.append(O.Split("p0", blk + rng.randrange(BLOCK)))
        elif r < 0.90:
            v = blk + rng.randrange(BLOCK)
            ops += [O.Mprotect("p0", v, 1, O.Prot.R), O.Mprotect("p0", v, 1, O.Prot.RW)]
        else:
            ops += [O.Madvise("p0", blk, BLOCK, O.Advice.DONTNEED),
                    O.Write("p0", blk + rng.randrange(BLOCK), 2)]
    return ops


@dataclass
class ThpFigures:
    ops: int
    seed: int
    impl_rate: float
    impl_prefix_rate: float
    ref_rate: float
    ref_ops: int
    pmd_bytes_per_block: float      # impl memory per PMD-mapped 2 MiB block
    pte_bytes_per_block: float      # ... after every block was split to PTEs
    ref_setup_seconds: float        # the reference on the 1024 THP faults alone
    impl_setup_seconds: float

    @property
    def ratio(self) -> float:
        return self.impl_prefix_rate / self.ref_rate if self.ref_rate else float("inf")


def measure(nops: int, seed: int, ref_seconds: float) -> ThpFigures:
    from mmdiff.impl import ImplMachine
    from mmdiff.reference.machine import ReferenceMachine

    ops = workload(nops, seed)
    setup = setup_ops()

    impl = ImplMachine()
    impl_setup = _timed(lambda: impl.run_batch(setup))
    pmd_bytes = impl.memory_bytes()
    for b in range(BLOCKS):
        impl.execute(O.Split("p0", BASE_VPN + b * BLOCK))
    pte_bytes = impl.memory_bytes()
    del impl

    impl = ImplMachine()
    impl_secs = _timed(lambda: impl.run_batch(ops))
    del impl

    gc.collect()
    ref = ReferenceMachine()
    t0 = time.perf_counter()
    for op in setup:
        ref.execute(op)
    ref_setup = time.perf_counter() - t0
    rest = ops[len(setup):]
    done, secs = _time_budgeted(ref, rest, ref_seconds)   # the impl replays the same prefix
    del ref
    prefix = ops[:len(setup) + done]
    impl2 = ImplMachine()
    impl2.run_batch(setup)
    impl_prefix_secs = _timed(lambda: impl2.run_batch(prefix[len(setup):]))
    del impl2
    return ThpFigures(ops=len(ops), seed=seed, impl_rate=len(ops) / impl_secs,
                      impl_prefix_rate=done / impl_prefix_secs if done else 0.0,
                      ref_rate=done / secs if done else 0.0, ref_ops=done,
                      pmd_bytes_per_block=pmd_bytes / BLOCKS,
                      pte_bytes_per_block=pte_bytes / BLOCKS,
                      ref_setup_seconds=ref_setup, impl_setup_seconds=impl_setup)


def print_table(f: ThpFigures, out: Optional[TextIO] = None) -> None:
    out = out or sys.stdout
    rows = [
        ("workload", f"{f.ops} ops, seed {f.seed}: 1024 THP faults over 2 GiB, then 40% write, "
                     f"20% read, 10% fork+COW+exit, 10% split, 10% mprotect 1 page r/rw, "
                     f"10% dontneed block+write"),
        ("impl ops/s (run_batch, all ops)", f"{f.impl_rate:,.0f}"),
        (f"impl ops/s (the reference's {f.ref_ops} mix ops)", f"{f.impl_prefix_rate:,.0f}"),
        (f"reference ops/s (same {f.ref_ops} ops)", f"{f.ref_rate:,.0f}"),
        ("speed ratio impl/reference (same ops)", f"{f.ratio:,.1f}x"),
        ("1024 THP faults: impl / reference",
         f"{f.impl_setup_seconds * 1e3:,.1f} ms / {f.ref_setup_seconds * 1e3:,.1f} ms "
         f"({f.ref_setup_seconds / max(f.impl_setup_seconds, 1e-9):,.0f}x)"),
        ("impl bytes per 2 MiB block, PMD-mapped", f"{f.pmd_bytes_per_block:,.0f}"),
        ("impl bytes per 2 MiB block, split to 512 PTEs", f"{f.pte_bytes_per_block:,.0f}"),
        ("page-table cost of a split (per block)",
         f"{f.pte_bytes_per_block - f.pmd_bytes_per_block:,.0f} bytes"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}", file=out)
