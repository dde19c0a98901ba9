"""``mmdiff bench --mutants``: how fast the fuzzer finds each seeded bug.

For every mutant and engine (atheris with coverage feedback, and the same
decoder on random bytes), one worker on one core fuzzes from the shipped
corpus with a fixed time budget and stops at the first finding. Prints
time-to-detect, execs to detect and the minimized finding's length; the
atheris/random columns side by side show what coverage guidance buys.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mmdiff.fuzz.job import Job, JobConfig
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.text import parse_file


@dataclass
class Detection:
    mutant: str
    engine: str
    seconds: Optional[float]     # None: not found within the budget
    execs: int
    minimized_ops: Optional[int]


def detect(mutant: str, engine: str, programs: Sequence[Prog], budget: float,
           seed: int, log) -> Detection:
    with tempfile.TemporaryDirectory(prefix="mmdiff-bench-") as tmp:
        cfg = JobConfig(programs=programs, findings=Path(tmp) / "findings",
                        workdir=Path(tmp) / "work", jobs=1, max_time=budget, seed=seed,
                        mutant=mutant, engine=engine, stats_interval=1e9, stop_on_finding=True)
        stats, _ = Job(cfg, log).run()
        if not stats.new_signatures:
            return Detection(mutant, engine, None, stats.execs, None)
        found = parse_file(str(cfg.findings / f"{stats.new_signatures[0]}.mmd"), strict=False)
        return Detection(mutant, engine, stats.seconds, stats.execs, len(found))


def print_table(rows: Sequence[Detection]) -> None:
    def cell(d: Detection) -> str:
        if d.seconds is None:
            return f"not found ({d.execs} execs)"
        return f"{d.seconds:6.1f} s {d.execs:7d} execs {d.minimized_ops:3d} ops"
    by = {(d.mutant, d.engine): d for d in rows}
    mutants = sorted({d.mutant for d in rows})
    engines = sorted({d.engine for d in rows})
    width = max(len(m) for m in mutants)
    print(f"{'mutant':<{width}}  " + "  ".join(f"{e:<34}" for e in engines))
    for m in mutants:
        print(f"{m:<{width}}  " + "  ".join(f"{cell(by[(m, e)]):<34}" for e in engines))
