"""``mmdiff fuzz``: the continuous job. Seeds, worker processes, stats, summary.

The parent never fuzzes itself: it encodes the corpus into a seed directory
(``corpus/`` is only read), starts N worker processes (``fuzz/worker.py``) on a
shared libFuzzer working corpus, polls their stats files to log a stats line
every few seconds, and prints the summary when they end or on Ctrl-C. Findings
are written by the workers, atomically, as they happen, so an interrupt loses
none. Exit status: 0 no new finding, 1 new findings (or a worker failed).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tempfile
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from mmdiff.fuzz.decoder import encode
from mmdiff.fuzz.prog import Prog


@dataclass
class JobConfig:
    programs: Sequence[Prog]              # parsed seed programs
    findings: Path
    workdir: Path
    jobs: int = 1
    max_time: float = 0.0                 # seconds; 0 = until interrupted
    runs: int = -1
    seed: int = 0
    mutant: Optional[str] = None
    engine: str = "atheris"               # or "random": the no-feedback baseline
    check_every: int = 64
    stats_interval: float = 5.0
    stop_on_finding: bool = False         # end at the first new signature (benchmarks)


@dataclass
class JobStats:
    execs: int = 0
    ops: int = 0
    features: int = 0
    divergences: int = 0
    corpus: int = 0
    new_signatures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def write_seeds(programs: Sequence[Prog], seeds_dir: Path, log) -> int:
    """Encode every program to a content-named input file; returns how many.

    A program the byte format cannot hold (over 256 ops, a populate of more
    than 1024 pages) is logged and left out of the seeds, never dropped silently.
    """
    seeds_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for prog in programs:
        try:
            data = encode(prog)
        except ValueError as exc:
            log.warning("seed_skipped", file=prog.source, reason=str(exc))
            continue
        written += 1
        path = seeds_dir / hashlib.sha1(data).hexdigest()
        if not path.exists():
            # The temp file lives outside the folder libFuzzer reads, under a unique name.
            fd, tmp = tempfile.mkstemp(dir=seeds_dir.parent, prefix=".seed-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
    return written


class Job:
    def __init__(self, cfg: JobConfig, log) -> None:
        self.cfg = cfg
        self.log = log
        self.procs: list[subprocess.Popen] = []
        self.stats_files: list[Path] = []
        self.t0 = time.monotonic()

    def _spawn(self) -> None:
        cfg, wd = self.cfg, self.cfg.workdir
        for sub in ("corpus", "seeds", "artifacts", "stats", "logs"):
            (wd / sub).mkdir(parents=True, exist_ok=True)
        cfg.findings.mkdir(parents=True, exist_ok=True)
        nseeds = write_seeds(cfg.programs, wd / "seeds", self.log)
        self.log.info("fuzz_start", engine=cfg.engine, jobs=cfg.jobs, seeds=nseeds,
                      mutant=cfg.mutant, max_time=cfg.max_time or "forever",
                      findings=str(cfg.findings), workdir=str(wd))
        for i in range(cfg.jobs):
            stats = wd / "stats" / f"worker-{i}.json"
            stats.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "mmdiff.fuzz.worker", "--engine", cfg.engine,
                    "--corpus", str(wd / "corpus"), "--seeds", str(wd / "seeds"),
                    "--findings", str(cfg.findings), "--stats", str(stats),
                    "--artifacts", str(wd / "artifacts"), "--seed", str(cfg.seed + i),
                    "--max-time", str(cfg.max_time), "--runs", str(cfg.runs),
                    "--check-every", str(cfg.check_every)]
            if cfg.mutant:
                argv += ["--mutant", cfg.mutant]
            # Own process group: the terminal's Ctrl-C reaches the parent only, which
            # then stops the workers in order. The child keeps its own log handle.
            with open(wd / "logs" / f"worker-{i}.log", "w") as logf:
                self.procs.append(subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL,
                                                   start_new_session=True))
            self.stats_files.append(stats)

    def collect(self) -> JobStats:
        total = JobStats(seconds=time.monotonic() - self.t0)
        for path in self.stats_files:
            try:
                s = json.loads(path.read_text())
            except (OSError, ValueError):
                continue                     # not written yet, or mid-replace
            total.execs += s["execs"]
            total.ops += s["ops"]
            total.features = max(total.features, s["features"])
            total.divergences += s["divergences"]
            total.new_signatures += [x for x in s["new_signatures"] if x not in total.new_signatures]
        total.corpus = sum(1 for _ in (self.cfg.workdir / "corpus").iterdir())
        return total

    def _log_stats(self, s: JobStats) -> None:
        secs = max(s.seconds, 1e-9)
        self.log.info("stats", execs=s.execs, execs_per_s=round(s.execs / secs, 1),
                      ops_per_s=round(s.ops / secs), corpus=s.corpus, features=s.features,
                      divergences=s.divergences, unique_signatures=len(s.new_signatures))

    def _stop_workers(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)     # libFuzzer -handle_int: clean exit
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def run(self) -> tuple[JobStats, list[int]]:
        """Run to the end (or Ctrl-C); returns the final stats and worker exit codes."""
        self._spawn()
        try:
            next_stats = time.monotonic() + self.cfg.stats_interval
            # libFuzzer stops itself at max_total_time; past this grace the parent
            # stops a worker that did not (startup, or a slow minimization).
            hard_stop = self.t0 + self.cfg.max_time + 60 if self.cfg.max_time > 0 else float("inf")
            while any(p.poll() is None for p in self.procs):
                time.sleep(0.2)
                if time.monotonic() > hard_stop:
                    self.log.warning("worker_overrun", note="workers did not stop at --max-time")
                    break
                if self.cfg.stop_on_finding and self.collect().new_signatures:
                    break
                if time.monotonic() >= next_stats:
                    self._log_stats(self.collect())
                    next_stats += self.cfg.stats_interval
        except KeyboardInterrupt:
            self.log.warning("interrupted", note="stopping workers; findings so far are on disk")
        finally:
            self._stop_workers()
        final = self.collect()
        self._log_stats(final)
        # A worker we stopped with SIGINT exits 72 (libFuzzer's interrupt code), 130
        # or -SIGINT: that is a clean stop, not a failure.
        return final, [0 if c in (-signal.SIGINT, 130, 72) else c for c in
                       (p.returncode for p in self.procs)]


def format_summary(s: JobStats, codes: list[int], cfg: JobConfig) -> str:
    secs = max(s.seconds, 1e-9)
    lines = [
        "mmdiff fuzz summary",
        f"  engine       {cfg.engine}{' (mutant ' + cfg.mutant + ')' if cfg.mutant else ''}",
        f"  time         {s.seconds:.1f} s on {cfg.jobs} worker(s)",
        f"  execs        {s.execs} ({s.execs / secs:.1f}/s)",
        f"  ops          {s.ops} ({s.ops / secs:.0f}/s)",
        f"  corpus       {s.corpus} inputs in {cfg.workdir / 'corpus'}",
        f"  features     {s.features} state-transition features",
        f"  divergences  {s.divergences} inputs, {len(s.new_signatures)} new signature(s)",
    ]
    for sig in s.new_signatures:
        lines.append(f"    {cfg.findings / (sig + '.mmd')}")
    bad = [(i, c) for i, c in enumerate(codes) if c not in (0, None)]
    for i, c in bad:
        lines.append(f"  worker {i} exited with status {c}: see "
                     f"{cfg.workdir / 'logs' / f'worker-{i}.log'}")
    return "\n".join(lines)
