"""The continuous job end to end: `mmdiff fuzz` finds a seeded bug, writes a replayable
finding, never touches the seed corpus, stops cleanly on Ctrl-C with its summary."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmdiff.fuzz.cli import main
from mmdiff.fuzz.features import FEATURE_SLOTS, feature_slot, make_trees

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "corpus" / "seeds"


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def _fuzz(tmp: Path, *extra: str) -> list[str]:
    return [str(SEEDS), "--workdir", str(tmp / "work"), "--findings", str(tmp / "findings"),
            *extra]


def test_fuzz_finds_a_mutant_and_writes_a_replayable_finding(tmp_path, capsys):
    before = _tree_digest(SEEDS)
    code = main(["fuzz", *_fuzz(tmp_path, "--max-time", "8", "--mutant", "fork_no_wrprotect")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "mmdiff fuzz summary" in out
    findings = sorted((tmp_path / "findings").glob("*.mmd"))
    assert findings, out
    assert _tree_digest(SEEDS) == before, "mmdiff fuzz modified its seed corpus"
    # each finding replays: diverges with the mutant, agrees on the faithful impl
    assert main(["run", "--mutant", "fork_no_wrprotect", str(findings[0])]) == 1
    assert main(["run", str(findings[0])]) == 0
    assert all(len([ln for ln in f.read_text().splitlines() if ln and not ln.startswith("#")]) <= 10
               for f in findings), "findings are minimized to at most 10 ops"


def test_fuzz_without_bug_exits_0(tmp_path, capsys):
    code = main(["fuzz", *_fuzz(tmp_path, "--max-time", "4")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 new signature(s)" in out
    assert not list((tmp_path / "findings").glob("*.mmd"))


def test_random_engine_runs_the_same_decoder(tmp_path, capsys):
    code = main(["fuzz", *_fuzz(tmp_path, "--max-time", "3", "--engine", "random",
                                "--mutant", "zero_page_writable")])
    out = capsys.readouterr().out
    assert "engine       random" in out
    assert code == 1 and list((tmp_path / "findings").glob("*.mmd")), out


def test_ctrl_c_stops_cleanly_with_summary_and_keeps_findings(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from mmdiff.fuzz.cli import main; sys.exit(main())",
         "fuzz", *_fuzz(tmp_path, "--mutant", "fork_no_wrprotect")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    findings = tmp_path / "findings"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(findings.glob("*.mmd")):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "mmdiff fuzz summary" in out, err[-2000:]
    assert "interrupted" in err
    kept = list(findings.glob("*.mmd"))
    assert kept and all(f.read_text().startswith("# mmdiff v1") for f in kept)
    assert proc.returncode == 1


def test_unknown_mutant_and_bad_seed_file_are_usage_errors(tmp_path, capsys):
    assert main(["fuzz", *_fuzz(tmp_path, "--max-time", "1", "--mutant", "nope")]) == 2
    bad = tmp_path / "seeds"
    bad.mkdir()
    (bad / "x.mmd").write_text("# mmdiff v1\nmmapp p0 1 1 rw private,anon\n")
    assert main(["fuzz", str(bad), "--workdir", str(tmp_path / "w"), "--max-time", "1"]) == 2
    assert "x.mmd:2:1" in capsys.readouterr().err


def test_feature_slots_are_stable_and_every_leaf_is_reachable():
    assert feature_slot("write", "none", "anon", "OK", "") == feature_slot("write", "none", "anon", "OK", "")
    hit = make_trees()
    for slot in range(FEATURE_SLOTS):
        hit(slot)          # no slot is out of the trees' range
    with pytest.raises(IndexError):
        hit(FEATURE_SLOTS)
