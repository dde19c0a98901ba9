"""Every corpus program is a test case: replayed in lockstep on both models.

check_every=1 and invariants on, so any result, expectation, state or
invariant difference fails; the assertion message is the divergence report
(with its reproducer). Fixed bugs add a file to corpus/, not code (STYLE §8).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from mmdiff.fuzz.report import format_report
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.fuzz.text import parse

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
FILES = sorted(CORPUS.glob("**/*.mmd"))


def test_corpus_is_not_empty() -> None:
    assert FILES, f"no *.mmd under {CORPUS}: the corpus tests below would silently run nothing"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_file_replays_identically(path, reference, impl) -> None:
    # Parsed with a repo-relative source, so the report says corpus/...:LINE from any cwd.
    prog = parse(path.read_text(encoding="utf-8"), source=str(path.relative_to(REPO)))
    outcome = run_lockstep(prog, reference, impl, check_every=1, check_invariants=True)
    assert outcome.divergence is None, "\n" + format_report(outcome)
    assert outcome.ops_executed == len(prog)


# Findings kept in findings/ are regression cases too: a finding from a mutant run
# must still be caught with that mutant on; any other finding is a real divergence
# and fails until the models are fixed (then it moves to corpus/).
FINDINGS = sorted((REPO / "findings").glob("*.mmd"))


def _mutant_of(text: str):
    for line in text.splitlines():
        if line.startswith("# mutant:") and line.split(":", 1)[1].strip() not in ("", "None", "-"):
            return line.split(":", 1)[1].strip()
    return None


@pytest.mark.parametrize("path", FINDINGS, ids=[p.name for p in FINDINGS])
def test_finding_replays(path, reference) -> None:
    from mmdiff.impl import ImplMachine
    text = path.read_text(encoding="utf-8")
    prog = parse(text, source=str(path.relative_to(REPO)))
    mutant = _mutant_of(text)
    outcome = run_lockstep(prog, reference, ImplMachine(mutant), check_every=1)
    if mutant:
        assert outcome.divergence is not None, f"{path.name}: mutant {mutant} is no longer caught"
    else:
        assert outcome.divergence is None, "\n" + format_report(outcome)
