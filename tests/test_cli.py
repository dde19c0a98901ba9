"""`mmdiff` exit statuses (0 agreed, 1 diverged, 2 usage/parse error) and its outputs.

Programs are written to temp files; ``main([...])`` is called in-process. The
parse-error cases also check that nothing ran, by recording ``run_one`` calls.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmdiff.fuzz import cli
from mmdiff.reference import ops

GOOD = """\
# mmdiff v1
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 0x11 -> ok
fork p0 -> p1
write p1 0x100 0x22 -> ok
read p0 0x100 -> 0x11
read p1 0x100 -> 0x22
"""

# Line 4 expects the wrong value: the model returns 0x11.
WRONG_EXPECT = """\
# mmdiff v1
mmap p0 0x100 1 rw private,anon -> 0x100
write p0 0x100 0x11
read p0 0x100 -> 0x12
read p0 0x100
"""

# Line 3 uses p1 before any fork created it; line 2 of the second file is an unknown op.
BAD_NAME = "# mmdiff v1\nmmap p0 0x100 1 rw private,anon\nread p1 0x100\n"
BAD_OP = "# mmdiff v1\nfrobnicate p0\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """Records the source of every program cli.run_one is asked to run (then runs it)."""
    calls: list[str] = []
    real = cli.run_one

    def recording(prog, *args, **kw):
        calls.append(prog.source)
        return real(prog, *args, **kw)

    monkeypatch.setattr(cli, "run_one", recording)
    return calls


# --- help -------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["bench", "--help"]])
def test_help_exits_0_and_shows_examples(argv, capsys) -> None:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: mmdiff" in out and "examples:" in out


def test_no_command_is_a_usage_error(capsys) -> None:
    assert cli.main([]) == 2


# --- exit 0 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "impl", "both"])
def test_agreeing_program_exits_0(tmp_path, backend, ran, capsys) -> None:
    f = write(tmp_path, "good.mmd", GOOD)
    assert cli.main(["run", "--backend", backend, str(f)]) == 0
    assert ran == [str(f)]


def test_directories_are_searched_recursively_in_sorted_order(tmp_path, ran, capsys) -> None:
    for name in ("b.mmd", "a/z.mmd", "a/c.mmd", "notes.txt"):
        write(tmp_path, name, GOOD)
    assert cli.main(["run", "--backend", "reference", str(tmp_path)]) == 0
    assert ran == [str(tmp_path / n) for n in ("a/c.mmd", "a/z.mmd", "b.mmd")]


# --- exit 1 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "both"])
def test_wrong_expectation_exits_1_and_the_report_names_file_and_line(
        tmp_path, backend, capsys) -> None:
    f = write(tmp_path, "wrong.mmd", WRONG_EXPECT)
    assert cli.main(["run", "--backend", backend, str(f)]) == 1
    out = capsys.readouterr().out
    assert f"{f}:4" in out
    # the report's reproducer ends at the failing op: line 5 of the file is not in it
    repro = out[out.index("# mmdiff v1"):]
    assert "read p0 0x100 -> 0x12" in repro and "read p0 0x100\n" not in repro


def test_one_diverging_file_among_good_ones_exits_1(tmp_path, ran, capsys) -> None:
    a = write(tmp_path, "a.mmd", GOOD)
    b = write(tmp_path, "b.mmd", WRONG_EXPECT)
    c = write(tmp_path, "c.mmd", GOOD)
    assert cli.main(["run", "--backend", "reference", str(tmp_path)]) == 1
    assert ran == [str(a), str(b), str(c)]        # a divergence does not stop the run


def test_mutant_impl_exits_1(tmp_path, capsys) -> None:
    f = write(tmp_path, "m.mmd", "# mmdiff v1\nmmap p0 0x100 1 rw private,anon\n"
                                 "write p0 0x100 0x11\nmprotect p0 0x100 1 r\n"
                                 "mprotect p0 0x100 1 rw\nwrite p0 0x100 0x22\n"
                                 "fork p0\nexit p1\nwrite p0 0x100 0x33\nread p0 0x100\n")
    assert cli.main(["run", str(f)]) == 0
    assert cli.main(["run", "--mutant", "no_anon_exclusive_reuse", str(f)]) == 1


# --- exit 2 -----------------------------------------------------------------------------------

def test_parse_errors_exit_2_print_every_error_and_run_nothing(tmp_path, ran, capsys) -> None:
    write(tmp_path, "a_good.mmd", GOOD)
    bad1 = write(tmp_path, "b_bad.mmd", BAD_NAME)
    bad2 = write(tmp_path, "c_bad.mmd", BAD_OP)
    assert cli.main(["run", str(tmp_path)]) == 2
    assert ran == []
    err = capsys.readouterr().err
    assert f"{bad1}:3:" in err and f"{bad2}:2:" in err


@pytest.mark.parametrize("argv", [
    ["run"],                                          # no path
    ["run", "/nonexistent/x.mmd"],
    ["run", "--backend", "kernel", "X"],
    ["run", "--check-every", "-1", "X"],
    ["run", "--log-format", "xml", "X"],
    ["bench", "--ops", "0"],
])
def test_bad_arguments_exit_2(argv, capsys) -> None:
    assert cli.main(argv) == 2


def test_empty_directory_exits_2(tmp_path, ran, capsys) -> None:
    assert cli.main(["run", str(tmp_path)]) == 2
    assert ran == []


def test_mutant_needs_the_impl(tmp_path, ran, capsys) -> None:
    f = write(tmp_path, "good.mmd", GOOD)
    assert cli.main(["run", "--backend", "reference", "--mutant", "no_anon_exclusive_reuse",
                     str(f)]) == 2
    assert ran == []


def test_unknown_mutant_exits_2_before_running(tmp_path, ran, capsys) -> None:
    f = write(tmp_path, "good.mmd", GOOD)
    assert cli.main(["run", "--mutant", "no_such_bug", str(f)]) == 2
    assert ran == []


# --- logging ----------------------------------------------------------------------------------

def test_json_log_has_one_event_per_program_and_a_summary(tmp_path, capsys) -> None:
    good = write(tmp_path, "a.mmd", GOOD)
    bad = write(tmp_path, "b.mmd", WRONG_EXPECT)
    assert cli.main(["run", "--backend", "reference", "--log-format", "json",
                     str(tmp_path)]) == 1
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.err.splitlines()]
    progs = [e for e in events if e["event"] == "program"]
    assert [(e["file"], e["ops"], e["status"], e["divergence"]) for e in progs] == [
        (str(good), 6, "ok", None), (str(bad), 4, "diverged", "expect")]
    summary = events[-1]
    assert (summary["event"], summary["programs"], summary["ok"], summary["diverged"]) == \
        ("summary", 2, 1, 1)
    assert "{" not in captured.out                # stdout holds reports, not log events


# --- the installed console script -------------------------------------------------------------

def test_console_script_exit_status_is_mains_return_value(tmp_path) -> None:
    script = Path(sys.executable).parent / "mmdiff"
    assert script.exists(), f"{script} missing: run `make install` (pip install -e '.[dev]')"
    f = write(tmp_path, "wrong.mmd", WRONG_EXPECT)
    proc = subprocess.run([str(script), "run", "--backend", "reference", str(f)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr


# --- bench ------------------------------------------------------------------------------------

def test_bench_workload_is_seeded_and_every_name_exists() -> None:
    from mmdiff.fuzz.bench import SPACE_PAGES, workload
    from mmdiff.fuzz.prog import Prog
    from mmdiff.fuzz.text import format_prog, parse

    ops = workload(2000, seed=3)
    assert ops == workload(2000, seed=3) and ops != workload(2000, seed=4)
    assert ops[0].npages == SPACE_PAGES
    # strict parsing rejects a name used before its fork: the fork/exit pairs line up
    again = parse(format_prog(Prog.of(ops)), source="<bench>")
    assert again.ops() == ops
    kinds = [type(o).__name__ for o in ops[1:]]
    assert 0.5 < kinds.count("Write") / len(kinds) < 0.7
    assert kinds.count("Fork") == kinds.count("Exit") > 0


def test_bench_runs_and_exits_0(capsys) -> None:
    assert cli.main(["bench", "--ops", "300", "--ref-seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "speed ratio impl/reference" in out and "DIVERGED" not in out


def test_bench_mix_programs_parse_and_reach_their_ops() -> None:
    """The mixes are seeded, well-formed programs, and the extra share is what they add."""
    import random as _random

    from mmdiff.fuzz import bench_mix
    from mmdiff.fuzz.text import format_prog, parse

    prog = bench_mix.program(_random.Random(5), bench_mix._device_op, 0.4)
    assert parse(format_prog(prog), source="<mix>").ops() == prog.ops()
    device = (ops.Mirror, ops.DevRead, ops.DevWrite, ops.DevExclusive, ops.DevAtomic,
              ops.DevEvents)
    share = sum(isinstance(o, device) for o in prog.ops()) / bench_mix.PROG_OPS
    assert 0.25 < share < 0.55, share
    plain = bench_mix.program(_random.Random(5), bench_mix._device_op, 0.0)
    assert not any(isinstance(o, device) for o in plain.ops())


def test_bench_mixes_runs_and_exits_0(capsys) -> None:
    assert cli.main(["bench", "--mixes", "--ref-seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "device-heavy" in out and "vs foundation" in out
