"""One fuzzing process: atheris (libFuzzer) or plain random bytes over the same decoder.

Started by ``mmdiff fuzz`` as ``python -m mmdiff.fuzz.worker ...``; not a user entry
point. The reference is imported under ``atheris.instrument_imports`` so its
branches are libFuzzer coverage, plus the state-transition features of
``fuzz/features.py``. Every divergence is minimized, given a signature, and
written atomically to the findings directory unless that signature is known.
Stats go to a small JSON file the parent polls (libFuzzer ends the process with
exit(), so nothing can be reported after the loop).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

# Nothing from mmdiff.reference may be imported before _instrumented_imports():
# atheris only instruments modules first imported inside its context.


def _instrumented_imports(coverage: bool) -> None:
    if coverage:
        import atheris
        with atheris.instrument_imports(include=["mmdiff.reference"]):
            import mmdiff.reference.machine  # noqa: F401


class Worker:
    """The per-input callback plus stats and findings bookkeeping."""

    def __init__(self, args: argparse.Namespace, hit) -> None:
        from mmdiff.fuzz.decoder import decode
        from mmdiff.fuzz.harness import Harness

        self.args = args
        self.decode = decode
        self.harness = Harness(args.mutant, args.check_every, hit)
        self.findings = Path(args.findings)
        self.findings.mkdir(parents=True, exist_ok=True)
        self.known = {p.stem for p in self.findings.glob("*.mmd")}
        self.new: list[str] = []          # signatures first found by this worker
        self.divergences = 0              # every divergent input, duplicates included
        self.execs = 0
        self.start = time.monotonic()
        self.last_stats = 0.0

    def one_input(self, data: bytes) -> None:
        prog = self.decode(data)
        self.execs += 1
        div = self.harness.check(prog)
        if div is not None:
            self.divergences += 1
            self._finding(prog, div)
        now = time.monotonic()
        if now - self.last_stats >= 1.0:
            self.write_stats()

    def _finding(self, prog, div) -> None:
        from mmdiff.fuzz.findings import write_finding
        from mmdiff.fuzz.minimize import divergence_of, minimize
        from mmdiff.fuzz.signature import signature

        sig = signature(div, prog)
        if sig in self.known:
            return
        mutant = self.args.mutant

        def still_fails(p) -> bool:
            d = divergence_of(p, mutant)
            return d is not None and signature(d, p) == sig

        budget = self.args.minimize_timeout
        if self.args.max_time > 0:      # never run far past --max-time minimizing
            budget = min(budget, max(1.0, self.args.max_time - (time.monotonic() - self.start)))
        small = minimize(prog, still_fails, timeout=budget)
        final = divergence_of(small, mutant) or div
        write_finding(self.findings, small, final, seed=self.args.seed, mutant=mutant)
        self.known.add(sig)
        self.new.append(sig)
        self.write_stats()

    def write_stats(self) -> None:
        self.last_stats = time.monotonic()
        stats = {
            "execs": self.execs, "ops": self.harness.ops_run,
            "features": self.harness.features, "divergences": self.divergences,
            "new_signatures": self.new, "seconds": self.last_stats - self.start,
        }
        tmp = f"{self.args.stats}.tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, self.args.stats)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mmdiff.fuzz.worker")
    p.add_argument("--engine", choices=["atheris", "random"], default="atheris")
    p.add_argument("--corpus", required=True, help="libFuzzer working corpus (grows)")
    p.add_argument("--seeds", required=True, help="encoded seed inputs (read only)")
    p.add_argument("--findings", required=True)
    p.add_argument("--stats", required=True, help="JSON stats file to rewrite every second")
    p.add_argument("--artifacts", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-time", type=float, default=0.0, help="seconds; 0 = forever")
    p.add_argument("--runs", type=int, default=-1, help="inputs; -1 = unlimited")
    p.add_argument("--mutant", default=None)
    p.add_argument("--check-every", type=int, default=64)
    p.add_argument("--max-len", type=int, default=2048)
    p.add_argument("--minimize-timeout", type=float, default=30.0)
    return p.parse_args(argv)


def _run_random(worker: Worker, args: argparse.Namespace) -> None:
    """The baseline: the same decoder fed uniformly random bytes, no feedback."""
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.max_time if args.max_time > 0 else float("inf")
    n = 0
    while time.monotonic() < deadline and (args.runs < 0 or n < args.runs):
        worker.one_input(rng.randbytes(rng.randint(0, args.max_len)))
        n += 1
    worker.write_stats()


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    coverage = args.engine == "atheris"
    _instrumented_imports(coverage)
    hit = None
    if coverage:
        import atheris
        from mmdiff.fuzz.features import make_trees
        hit = make_trees(atheris.instrument_func)
    worker = Worker(args, hit)
    worker.write_stats()
    if not coverage:
        _run_random(worker, args)
        return 0
    import atheris
    flags = [sys.argv[0], f"-seed={args.seed}", f"-max_len={args.max_len}",
             f"-artifact_prefix={args.artifacts}/", "-print_final_stats=1",
             # Long programs find more: do not start from tiny inputs and grow them
             # slowly (libFuzzer's default length control); mutate full-size inputs.
             "-len_control=0"]
    if args.max_time > 0:
        flags.append(f"-max_total_time={int(max(1, args.max_time))}")
    if args.runs >= 0:
        flags.append(f"-runs={args.runs}")
    atheris.Setup(flags + [args.corpus, args.seeds], worker.one_input)
    atheris.Fuzz()        # does not return: libFuzzer exit()s at the end
    return 0


if __name__ == "__main__":
    sys.exit(main())
