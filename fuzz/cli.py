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
    if args.mutants:
        return _bench_mutants(args)
    if args.mixes:
        from mmdiff.fuzz import bench_mix
        bench_mix.print_table(bench_mix.measure(args.ref_seconds, args.seed))
        return EXIT_OK
    if args.thp:
        from mmdiff.fuzz import bench_thp
        bench_thp.print_table(bench_thp.measure(args.ops, args.seed, args.ref_seconds))
        return EXIT_OK
    from mmdiff.fuzz import bench
    figures = bench.measure(args.ops, args.seed, args.ref_seconds)
    bench.print_table(figures)
    return EXIT_OK


def _bench_mutants(args: argparse.Namespace) -> int:
    from mmdiff.fuzz import bench_mutants
    from mmdiff.impl import MUTANTS
    log = mlog.configure("console")
    # No seeds: the shipped corpus catches most mutants on its first exec, which
    # says nothing about search. Both engines start from the empty input.
    progs: list[Prog] = []
    names = args.mutant or sorted(MUTANTS)
    unknown = [m for m in names if m not in MUTANTS]
    if unknown:
        raise UsageError(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(sorted(MUTANTS))}")
    rows = [bench_mutants.detect(m, engine, progs, args.budget, args.seed, log)
            for m in names for engine in ("atheris", "random")]
    bench_mutants.print_table(rows)
    return EXIT_OK


# --- fuzz -------------------------------------------------------------------------------------

def cmd_fuzz(args: argparse.Namespace) -> int:
    from mmdiff.fuzz.job import Job, JobConfig, format_summary
    log = mlog.configure(args.log_format)
    files = collect_files(args.corpus_dirs)
    progs, errors = parse_all(files)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"mmdiff fuzz: {len(errors)} seed file(s) failed to parse; fix or remove them",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        make_impl(args.mutant)
    except ValueError as exc:
        raise UsageError(f"--mutant {args.mutant}: {exc}") from exc
    cfg = JobConfig(programs=progs, findings=Path(args.findings), workdir=Path(args.workdir),
                    jobs=args.jobs, max_time=args.max_time, runs=args.runs, seed=args.seed,
                    mutant=args.mutant, engine=args.engine, check_every=args.check_every)
    stats, codes = Job(cfg, log).run()
    print(format_summary(stats, codes, cfg))
    failed = any(c not in (0, None) for c in codes)
    return EXIT_DIVERGED if (stats.new_signatures or failed) else EXIT_OK


# --- minimize ---------------------------------------------------------------------------------

def default_min_path(path: str) -> Path:
    """FILE.mmd -> FILE.min.mmd (any other name gets .min.mmd appended)."""
    p = Path(path)
    stem = p.name[:-len(".mmd")] if p.name.endswith(".mmd") else p.name
    return p.with_name(stem + ".min.mmd")


def cmd_minimize(args: argparse.Namespace) -> int:
    from mmdiff.fuzz.findings import format_finding, write_atomic
    from mmdiff.fuzz.minimize import divergence_of, minimize
    from mmdiff.fuzz.signature import signature
    try:
        prog = parse_file(args.file, strict=True)
    except ParseError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        make_impl(args.mutant)           # an unknown mutant is a usage error, not "no divergence"
    except ValueError as exc:
        raise UsageError(f"--mutant {args.mutant}: {exc}") from exc
    t0 = time.perf_counter()
    div = divergence_of(prog, args.mutant)
    if div is None:
        mode = f" with --mutant {args.mutant}" if args.mutant else ""
        print(f"mmdiff minimize: {args.file}: no divergence: nothing to minimize (the "
              f"{len(prog)}-op program agrees on both models{mode})", file=sys.stderr)
        return EXIT_DIVERGED
    target = signature(div, prog)

    def still_fails(p: Prog) -> bool:
        d = divergence_of(p, args.mutant)
        return d is not None and signature(d, p) == target

    small = minimize(prog, still_fails, timeout=args.timeout, index=div.index)
    seconds = time.perf_counter() - t0
    out = Path(args.output) if args.output else default_min_path(args.file)
    final = divergence_of(small, args.mutant)
    assert final is not None, f"minimized program of {args.file} lost its divergence {target}"
    write_atomic(out, format_finding(small, final, path=out, mutant=args.mutant))
    timed_out = args.timeout is not None and seconds >= args.timeout
    print(f"{args.file}: {target}: {len(prog)} -> {len(small)} ops in {seconds:.2f} s"
          f"{' (timeout: best so far)' if timed_out else ''}; wrote {out}")
    return EXIT_OK


MINIMIZE_HELP = """\
Shrink a diverging .mmd program while it keeps the same divergence signature
(first divergent op kind + divergence kind + first differing state field class
+ entry kind/level): drop the tail, drop unused objects, ddmin over ops, reset
values, sizes and addresses to small canonical ones, rename files, until a fixed
point. The result is 1-minimal: removing any single op loses the divergence.
States are compared after every op and invariants checked.

exit status: 0 minimized (OUT written), 1 the program does not diverge,
             2 usage or parse error.
"""

MINIMIZE_EPILOG = """\
examples:
  mmdiff minimize findings/crash.mmd                 writes findings/crash.min.mmd
  mmdiff minimize big.mmd -o small.mmd --timeout 60  best result after 60 s
  mmdiff minimize --mutant no_anon_exclusive_reuse t.mmd
"""


# --- mutants ----------------------------------------------------------------------------------

def cmd_mutants(args: argparse.Namespace) -> int:
    """List the impl's seeded bugs: name and one-line summary (--verbose: the full doc)."""
    try:
        from mmdiff.impl import MUTANTS
    except ImportError as exc:
        raise UsageError(f"the impl cannot be loaded ({exc}); rebuild it with "
                         f"`make install`") from exc
    width = max(map(len, MUTANTS))
    for name in sorted(MUTANTS):
        summary, _, rest = MUTANTS[name].partition("\n")
        print(f"{name:<{width}}  {summary}")
        if args.verbose:
            print("    " + rest.strip().replace("\n", "\n    ") + "\n")
    if not args.verbose:
        print(f"{len(MUTANTS)} mutants; `mmdiff mutants --verbose` for the kernel rule, the "
              f"historical bug and the catching program (corpus/mutants/NAME.mmd)")
    return EXIT_OK


MUTANTS_HELP = """\
List the seeded bugs of the impl (ImplMachine(mutant=NAME)): each breaks one
kernel rule the way a real kernel bug did, is off unless named with --mutant
(mmdiff run / fuzz / minimize), and is caught by corpus/mutants/NAME.mmd.
"""

MUTANTS_EPILOG = """\
examples:
  mmdiff mutants                 names and one-line summaries
  mmdiff mutants --verbose       plus the rule broken, the kernel history, the program
  mmdiff run --mutant zero_page_writable corpus/mutants/zero_page_writable.mmd   exits 1
"""


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

FUZZ_HELP = """\
Run the continuous fuzzing job: atheris (libFuzzer) feeds byte strings to the
decoder, each decoded program runs on the reference and the impl, and every
divergence is minimized (keeping its signature), deduplicated by signature and
written atomically as FINDINGS/<signature>.mmd, replayable with `mmdiff run`.

Seeds: every .mmd under CORPUS_DIR (default corpus/), encoded to bytes in
WORKDIR/seeds; libFuzzer grows WORKDIR/corpus. corpus/ itself is never written.
Coverage: the reference's Python branches plus state-transition features
(op x entry kind before/after x result). A stats line is logged every 5 s;
the summary is printed at the end or on Ctrl-C (findings are already on disk).
Exit status: 0 nothing new found, 1 new findings (or a worker failed), 2 usage.
"""

FUZZ_EPILOG = """\
examples:
  mmdiff fuzz --max-time 60                          one bounded run on corpus/
  mmdiff fuzz --jobs 2                               until Ctrl-C, on two cores
  mmdiff fuzz --mutant fork_no_wrprotect --max-time 120   check a seeded bug is found
  mmdiff fuzz --engine random --max-time 60          the no-feedback baseline
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdiff",
        description="Differential fuzzer for Linux memory-management semantics: a Python "
                    "reference model vs a Cython kernel-shaped implementation.",
        epilog="examples:\n  mmdiff run corpus/\n  mmdiff fuzz --max-time 60\n  mmdiff bench\n"
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
    bench.add_argument("--mutants", action="store_true",
                       help="instead: fuzz each seeded mutant on one core from an empty corpus "
                            "(atheris, then random bytes) and print time-to-detect, execs "
                            "and minimized length")
    bench.add_argument("--mixes", action="store_true",
                       help="instead: fuzz execs/s of the foundation op mix vs the device-heavy "
                            "and swap/KSM mixes (--ref-seconds each)")
    bench.add_argument("--thp", action="store_true",
                       help="instead: the THP workload (1024 THP faults over 2 GiB, then splits, "
                            "forks, mprotect, dontneed; --ops mix ops) and the impl's memory "
                            "per PMD-mapped vs split 2 MiB block")
    bench.add_argument("--mutant", action="append", metavar="NAME",
                       help="with --mutants: only this mutant (repeatable)")
    bench.add_argument("--budget", type=_pos_float, default=120.0, metavar="S",
                       help="with --mutants: seconds per mutant and engine (default 120)")
    bench.set_defaults(func=cmd_bench)

    fz = sub.add_parser("fuzz", help="run the continuous fuzzing job (atheris)",
                        description=FUZZ_HELP, epilog=FUZZ_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    fz.add_argument("corpus_dirs", nargs="*", default=["corpus"], metavar="CORPUS_DIR",
                    help="seed programs (*.mmd, searched recursively; default corpus/)")
    fz.add_argument("--findings", default="findings", metavar="DIR",
                    help="where findings are written (default findings/)")
    fz.add_argument("--workdir", default=".mmdiff-work", metavar="DIR",
                    help="libFuzzer working corpus, seeds, logs (default .mmdiff-work/)")
    fz.add_argument("--max-time", type=float, default=0.0, metavar="S",
                    help="stop after S seconds (default 0: run until interrupted)")
    fz.add_argument("--runs", type=int, default=-1, metavar="N",
                    help="stop each worker after N inputs (default: unlimited)")
    fz.add_argument("--jobs", type=_pos_int, default=1, metavar="N",
                    help="worker processes, one per core (default 1)")
    fz.add_argument("--seed", type=_nonneg_int, default=0, metavar="N",
                    help="libFuzzer seed of worker 0 (worker i uses N+i)")
    fz.add_argument("--mutant", metavar="NAME", default=None,
                    help="fuzz a deliberately broken impl variant (see `mmdiff mutants`)")
    fz.add_argument("--engine", choices=("atheris", "random"), default="atheris",
                    help="atheris: coverage-guided (default); random: same decoder on "
                         "uniformly random bytes, no feedback (baseline)")
    fz.add_argument("--check-every", type=_pos_int, default=64, metavar="K",
                    help="compare canonical states every K ops while fuzzing (default 64)")
    fz.add_argument("--log-format", choices=mlog.FORMATS, default="console",
                    help="log events on stderr as console text (default) or JSON lines")
    fz.set_defaults(func=cmd_fuzz)

    mz = sub.add_parser("minimize", help="shrink a diverging program, keeping its signature",
                        description=MINIMIZE_HELP, epilog=MINIMIZE_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    mz.add_argument("file", metavar="FILE", help="the diverging .mmd program")
    mz.add_argument("-o", "--output", metavar="OUT", default=None,
                    help="where to write the result (default: FILE with .min.mmd suffix)")
    mz.add_argument("--timeout", type=_pos_float, default=None, metavar="S",
                    help="stop after S seconds with the best program so far (default: none)")
    mz.add_argument("--mutant", metavar="NAME", default=None,
                    help="minimize against a deliberately broken impl variant")
    mz.set_defaults(func=cmd_minimize)

    mu = sub.add_parser("mutants", help="list the seeded bugs usable with --mutant",
                        description=MUTANTS_HELP, epilog=MUTANTS_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    mu.add_argument("-v", "--verbose", action="store_true",
                    help="print each mutant's full doc: rule, kernel history, program")
    mu.set_defaults(func=cmd_mutants)
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
