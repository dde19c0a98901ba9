"""Findings files: named by signature, replayable, atomic, and only ever replaced by shorter."""
from __future__ import annotations

import os

import pytest

from mmdiff.fuzz import findings
from mmdiff.fuzz.differ import Divergence, DivergenceKind
from mmdiff.fuzz.findings import write_finding
from mmdiff.fuzz.minimize import divergence_of
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.fuzz.signature import signature
from mmdiff.fuzz.text import parse, parse_file
from mmdiff.reference import ops
from mmdiff.reference.results import ok

MUTANT = "no_anon_exclusive_reuse"
# mprotect r then rw: the mutant leaves the exclusive page read-only (mprotect to the
# prot a VMA already has is a no-op, mprotect_fixup)
SHORT = ["mmap p0 0x100 1 rw private,anon", "write p0 0x100 1", "mprotect p0 0x100 1 r",
         "mprotect p0 0x100 1 rw"]
LONG = SHORT[:2] + ["read p0 0x100", "write p0 0x100 2"] + SHORT[2:]


def prog_of(lines) -> Prog:
    return parse("# mmdiff v1\n" + "\n".join(lines) + "\n", "<test>")


def finding_of(lines):
    prog = prog_of(lines)
    div = divergence_of(prog, MUTANT)
    assert div is not None, f"{lines} must diverge with {MUTANT}"
    return prog, div


def test_finding_is_named_by_signature_and_replays(tmp_path):
    prog, div = finding_of(SHORT)
    path = write_finding(tmp_path, prog, div, seed=42, mutant=MUTANT)
    assert path == tmp_path / f"{signature(div, prog)}.mmd"
    back = parse_file(path, strict=True)
    assert back.ops() == prog.ops()
    again = divergence_of(back, MUTANT)
    assert again is not None and signature(again, back) == signature(div, prog)
    text = path.read_text()
    assert text.startswith("# mmdiff v1\n# signature: mprotect-state-page-anon-pte\n")
    for needle in ("# seed: 42", f"# mutant: {MUTANT}", f"# replay: mmdiff run --mutant {MUTANT} {path}",
                   "# results: reference ok | impl ok", "p0 page 0x100: anon pte rw"):
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_shorter_program_replaces_longer_never_the_reverse(tmp_path):
    long_prog, long_div = finding_of(LONG)
    short_prog, short_div = finding_of(SHORT)
    path = write_finding(tmp_path, long_prog, long_div, mutant=MUTANT)
    assert len(parse_file(path)) == len(LONG)
    assert write_finding(tmp_path, short_prog, short_div, mutant=MUTANT) == path
    assert len(parse_file(path)) == len(SHORT), "the shorter program must replace the longer"
    kept = path.read_bytes()
    write_finding(tmp_path, long_prog, long_div, mutant=MUTANT)
    assert path.read_bytes() == kept, "a longer program must not replace a shorter finding"
    write_finding(tmp_path, short_prog, short_div, mutant=MUTANT)
    assert path.read_bytes() == kept, "an equally long program keeps the first finding"


def test_failed_replace_leaves_old_finding_intact(tmp_path, monkeypatch):
    long_prog, long_div = finding_of(LONG)
    short_prog, short_div = finding_of(SHORT)
    path = write_finding(tmp_path, long_prog, long_div, mutant=MUTANT)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError(28, "No space left on device (simulated)")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_finding(tmp_path, short_prog, short_div, mutant=MUTANT)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".findings")) \
        == [path.name], "the temp file must be removed"


def test_corrupt_existing_finding_is_replaced(tmp_path):
    prog, div = finding_of(SHORT)
    path = tmp_path / f"{signature(div, prog)}.mmd"
    path.write_text("# mmdiff v1\nmmap p0 0x100\n")          # truncated by an old crash
    write_finding(tmp_path, prog, div)
    assert parse_file(path).ops() == prog.ops()


def test_header_keeps_first_20_state_rows_on_one_line_each(tmp_path):
    op = ops.Write("p0", 0x100, 1)
    fields = tuple((f"p0 page {0x100 + i:#x}", "anon pte rw F0", "anon pte r\nF0")
                   for i in range(25))
    div = Divergence(DivergenceKind.STATE, 0, Stmt(op=op), left=ok(), right=ok(),
                     fields=fields, detail="25 state field(s) differ")
    prog = Prog.of([op])
    text = findings.format_finding(prog, div, path="x.mmd", date="2026-01-01T00:00:00Z")
    rows = [ln for ln in text.splitlines() if ln.startswith("#   p0 page")]
    assert len(rows) == findings.MAX_DIFF_LINES and "#   ... and 5 more" in text
    assert "# replay: mmdiff run x.mmd" in text      # no --mutant for a faithful-impl finding
    assert parse(text).ops() == [op]
