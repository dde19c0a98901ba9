"""The ``mmdiff`` command line: ``mmdiff run`` replays .mmd programs, ``mmdiff bench`` measures.

Exit status of ``run``: 0 every program agreed and met its expectations,
1 a program diverged (its report is on stdout), 2 usage or parse errors
(every file is parsed before anything runs; nothing runs if one fails).
Reports and per-program summaries go to stdout, log events to stderr.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from mmdiff.fuzz import log as mlog
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.report import format_report, summary_line
from mmdiff.fuzz.runner import RunOutcome, run_lockstep, run_single
from mmdiff.fuzz.text import ParseError, parse_file

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2
BACKENDS = ("both", "reference", "impl")


class UsageError(Exception):
    """Bad command-line input: the message says what and how to fix it (exit 2)."""


# --- machines -------------------------------------------------------------------------------
# Imported on use, so `--backend reference` works while the impl build is broken.

def make_reference():
    from mmdiff.reference.machine import ReferenceMachine
    return ReferenceMachine()


def make_impl(mutant: Optional[str]):
    from mmdiff.impl import ImplMachine
    return ImplMachine(mutant=mutant) if mutant else ImplMachine()


# --- run --------------------------------------------------------------------------------------

def collect_files(paths: Sequence[str]) -> list[Path]:
    """Files as given, directories searched recursively for *.mmd (sorted); no duplicates."""
    out: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.mmd") if q.is_file())
            if not found:
                raise UsageError(f"{arg}: directory holds no *.mmd file; "
                                 f"pass a directory with programs or the files themselves")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{arg}: no such file or directory")
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def parse_all(files: Sequence[Path]) -> tuple[list[Prog], list[str]]:
    """Parse every file; returns the programs and every error message (strict mode)."""
    progs, errors = [], []
    for f in files:
        try:
            progs.append(parse_file(str(f), strict=True))
        except ParseError as exc:      # also unreadable / non-UTF-8 files (line 0)
            errors.append(str(exc))
    return progs, errors


def run_one(prog: Prog, backend: str, check_every: int, mutant: Optional[str]) -> RunOutcome:
    """One program on fresh machines: lockstep for ``both``, expectations+invariants otherwise."""
    if backend == "both":
        return run_lockstep(prog, make_reference(), make_impl(mutant), check_every=check_every)
    if backend == "reference":
        return run_single(prog, make_reference(), "reference")
    return run_single(prog, make_impl(mutant), "impl")


def cmd_run(args: argparse.Namespace) -> int:
    log = mlog.configure(args.log_format)
    if args.mutant and args.backend == "reference":
        raise UsageError(f"--mutant {args.mutant} needs the impl: use --backend both or impl")
    files = collect_files(args.paths)
    progs, errors = parse_all(files)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"mmdiff run: {len(errors)} of {len(files)} file(s) failed to parse; "
              f"nothing was run", file=sys.stderr)
        return EXIT_USAGE
    if args.backend != "reference":
        try:
            make_impl(args.mutant)       # an unknown mutant fails here, before any program runs
        except ValueError as exc:
            raise UsageError(f"--mutant {args.mutant}: {exc}") from exc
        except ImportError as exc:
            raise UsageError(f"the impl cannot be loaded ({exc}); rebuild it with "
                             f"`make install` or run --backend reference") from exc
    outcomes = []
    t_all = time.perf_counter()
    for prog in progs:
        t0 = time.perf_counter()
        outcome = run_one(prog, args.backend, args.check_every, args.mutant)
        outcomes.append(outcome)
        mlog.log_program(log, outcome, time.perf_counter() - t0)
        print(summary_line(outcome))
        if outcome.divergence is not None:
            print(format_report(outcome))
    mlog.log_summary(log, outcomes, time.perf_counter() - t_all)
    bad = sum(o.divergence is not None for o in outcomes)
    print(f"{len(outcomes)} program(s): {len(outcomes) - bad} ok, {bad} diverged")
    return EXIT_DIVERGED if bad else EXIT_OK


# --- bench ------------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    from mmdiff.fuzz import bench
    figures = bench.measure(args.ops, args.seed, args.ref_seconds)
    bench.print_table(figures)
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------

def _nonneg_int(text: str) -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} must be >= 0")
    return n


def _pos_int(text: str) -> int:
    n = _nonneg_int(text)
    if n == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _pos_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"{x} must be > 0")
    return x


RUN_HELP = """\
Replay .mmd programs (SPEC §3) and report the first divergence of each.

With --backend both (the default) every op runs on the reference model and on
the impl in lockstep; results are compared after every op, canonical states
every K ops and after the last op, `-> EXPECT` expectations and both models'
invariants after every op. With --backend reference or impl only that model
runs: expectations and invariants are checked, nothing is compared.

Every file is parsed (strict mode) before anything runs: if any file fails to
parse, every parse error is printed and nothing runs.

exit status: 0 all programs agreed and met their expectations,
             1 a program diverged (report on stdout), 2 usage or parse error.
"""

RUN_EPILOG = """\
examples:
  mmdiff run corpus/                          every corpus program, both models
  mmdiff run corpus/conformance/S2.1.mmd      one file
  mmdiff run --backend reference corpus/      the oracle alone against the expectations
  mmdiff run --check-every 64 findings/       compare states every 64 ops (faster)
  mmdiff run --mutant no_anon_exclusive_reuse corpus/   must exit 1: a broken impl is caught
  mmdiff run --log-format json corpus/ 2>events.jsonl   one JSON event per program on stderr
"""

BENCH_HELP = """\
Measure both models on one fixed, seeded op mix over a 2^20-page address space:
60% writes, 25% reads, 10% munmap+re-mmap of a small range, 5% fork+exit.

Prints, from one run: impl ops/s (run_batch), reference ops/s (on the longest
prefix that fits --ref-seconds; the impl is re-timed on that prefix for the
ratio), bytes of memory per mapped page for each (impl: memory_bytes();
reference: tracemalloc), lockstep ops/s (check_every=64), and the time of one
fork of a fully populated 2^20-page address space in the impl. No pass/fail.
"""

BENCH_EPILOG = """\
examples:
  mmdiff bench                        default workload
  mmdiff bench --ops 500000 --seed 7  a longer mix with another seed
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdiff",
        description="Differential fuzzer for Linux memory-management semantics: a Python "
                    "reference model vs a Cython kernel-shaped implementation.",
        epilog="examples:\n  mmdiff run corpus/\n  mmdiff bench\n"
               "run `mmdiff COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="replay .mmd programs on both models and report divergences",
                         description=RUN_HELP, epilog=RUN_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                     help=".mmd files, or directories searched recursively for *.mmd "
                          "(run in sorted order)")
    run.add_argument("--backend", choices=BACKENDS, default="both",
                     help="both: lockstep reference vs impl (default); reference or impl: "
                          "that model alone, expectations and invariants only")
    run.add_argument("--check-every", type=_nonneg_int, default=1, metavar="K",
                     help="compare canonical states every K ops and after the last op "
                          "(default 1; 0: only after the last op)")
    run.add_argument("--log-format", choices=mlog.FORMATS, default="console",
                     help="log events on stderr as console text (default) or JSON lines")
    run.add_argument("--mutant", metavar="NAME", default=None,
                     help="run a deliberately broken impl variant (checks that the differ "
                          "catches it); an unknown name is a usage error")
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="measure speed and memory of both models",
                           description=BENCH_HELP, epilog=BENCH_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--ops", type=_pos_int, default=100_000, metavar="N",
                       help="ops in the mix (default 100000)")
    bench.add_argument("--seed", type=_nonneg_int, default=0, metavar="S",
                       help="random seed of the mix (default 0)")
    bench.add_argument("--ref-seconds", type=_pos_float, default=3.0, metavar="SECS",
                       help="time budget of the reference run (default 3.0)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point (console script ``mmdiff``): returns the exit status, never calls exit."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:            # --help (0) or an argparse usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"mmdiff {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
