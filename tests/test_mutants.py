"""Seeded bugs: every impl mutant is caught by replaying its corpus/mutants/ file.

A mutant that no program catches proves nothing about the differ, and a catching
program that also fails on the faithful impl proves nothing about the mutant: both
directions are checked here, plus the bookkeeping (doc, file, unknown names).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from mmdiff.fuzz import cli
from mmdiff.fuzz.differ import DivergenceKind
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.fuzz.text import parse, parse_file
from mmdiff.impl import MUTANTS, ImplMachine
from mmdiff.reference.machine import ReferenceMachine

MUTANT_DIR = Path(__file__).resolve().parent.parent / "corpus" / "mutants"
NAMES = sorted(MUTANTS)
UNTOUCHED = """\
# mmdiff v1
mmap p0 0x100 2 rw private,anon -> 0x100
write p0 0x100 1 -> ok
write p0 0x100 2 -> ok
read p0 0x100 -> 2
state p0 0x100 -> anon pte rw dirty softdirty excl
"""


def _prog(name: str):
    return parse_file(str(MUTANT_DIR / f"{name}.mmd"))


def test_at_least_nine_mutants() -> None:
    assert len(MUTANTS) >= 9, f"issue 4 asks for >= 8 seeded bugs beyond the first: {NAMES}"


@pytest.mark.parametrize("name", NAMES)
def test_every_mutant_is_documented(name) -> None:
    summary, _, body = MUTANTS[name].partition("\n")
    assert summary.strip() and len(summary) <= 100, f"{name}: one-line summary first"
    # the paragraph names the rule broken, the history and the catching program
    for word in ("Rule:", "Program:"):
        assert word in body, f"{name}: its doc lacks {word!r}"


def test_every_mutant_file_belongs_to_a_mutant() -> None:
    stems = {p.stem for p in MUTANT_DIR.glob("*.mmd")}
    assert stems == set(MUTANTS), (f"corpus/mutants/ and MUTANTS disagree: files without a "
                                   f"mutant {sorted(stems - set(MUTANTS))}, mutants without a "
                                   f"file {sorted(set(MUTANTS) - stems)}")


@pytest.mark.parametrize("name", NAMES)
def test_mutant_file_names_its_mutant(name) -> None:
    text = (MUTANT_DIR / f"{name}.mmd").read_text(encoding="utf-8")
    assert f"# mutant: {name}" in text, f"{name}.mmd: the header must say which mutant it catches"


@pytest.mark.parametrize("name", NAMES)
def test_faithful_impl_passes_the_mutant_program(name) -> None:
    out = run_lockstep(_prog(name), ReferenceMachine(), ImplMachine())
    assert out.divergence is None, str(out.divergence)


@pytest.mark.parametrize("name", NAMES)
def test_mutant_is_caught_by_its_program(name) -> None:
    out = run_lockstep(_prog(name), ReferenceMachine(), ImplMachine(mutant=name))
    assert out.divergence is not None, f"mutant {name} went unnoticed"
    # caught by semantics, never by a model crash
    assert out.divergence.kind is not DivergenceKind.CRASH, str(out.divergence)


@pytest.mark.parametrize("name", NAMES)
def test_mutant_changes_an_op_result(name) -> None:
    # Without the impl's self-checks and mid-run state comparisons, the program's own
    # probes (read/state/same/fread) still expose the bug: a RESULT divergence.
    out = run_lockstep(_prog(name), ReferenceMachine(), ImplMachine(mutant=name),
                       check_every=0, check_invariants=False)
    assert out.divergence is not None and out.divergence.kind is DivergenceKind.RESULT, \
        str(out.divergence)


@pytest.mark.parametrize("name", NAMES)
def test_mutant_is_off_for_other_programs(name) -> None:
    # One rule only: a program that never reaches the broken rule (a write fault on a
    # none entry, a store to a writable entry, an mmap of free space) runs unchanged.
    prog = parse(UNTOUCHED, "untouched.mmd")
    out = run_lockstep(prog, ReferenceMachine(), ImplMachine(mutant=name))
    assert out.divergence is None, str(out.divergence)


def test_unknown_mutant_raises_and_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        ImplMachine(mutant="no_such_bug")
    for name in NAMES:
        assert name in str(info.value)


def test_cli_mutants_lists_every_mutant(capsys) -> None:
    assert cli.main(["mutants"]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    for name in NAMES:
        assert any(line.split()[:1] == [name] for line in lines), f"{name} not listed"


def test_cli_mutants_verbose_prints_the_docs(capsys) -> None:
    assert cli.main(["mutants", "--verbose"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert out.count("Rule:") == len(MUTANTS)


@pytest.mark.parametrize("name", NAMES)
def test_cli_run_with_the_mutant_exits_1(name, capsys) -> None:
    assert cli.main(["run", "--mutant", name, str(MUTANT_DIR / f"{name}.mmd")]) == \
        cli.EXIT_DIVERGED
    capsys.readouterr()
