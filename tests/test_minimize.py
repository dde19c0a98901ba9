"""The minimizer, its name-keeping removals, divergence signatures and `mmdiff minimize`.

Table-driven tests are written in the .mmd text format (syzkaller
prog/minimization_test.go): each case prints orig / expected / got on failure.
The end-to-end cases plant a small mutant-revealing core in random noise and
check the result is small, keeps the signature and is 1-minimal.
"""
from __future__ import annotations

import random
import re

import pytest

from mmdiff.fuzz import cli
from mmdiff.fuzz.differ import MISSING, Divergence, DivergenceKind
from mmdiff.fuzz.minimize import (divergence_of, drop_ops, merge_child, minimize,
                                  rename_defined)
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.fuzz.signature import field_class, invariant_rule, signature
from mmdiff.fuzz.text import format_prog, parse
from mmdiff.impl import MUTANTS
from mmdiff.reference import ops
from mmdiff.reference.results import Errno, errno, name, ok

MUTANT = "no_anon_exclusive_reuse"
# Shows the mutant: the last mprotect leaves the exclusive page read-only.
CORE = ["mmap p0 0x100 1 rw private,anon", "write p0 0x100 1", "mprotect p0 0x100 1 r",
        "mprotect p0 0x100 1 rw", "state p0 0x100"]


def prog_of(lines, source="<test>") -> Prog:
    body = "\n".join(lines) if isinstance(lines, list) else lines
    return parse("# mmdiff v1\n" + body.strip() + "\n", source)


def op_lines(prog: Prog) -> list[str]:
    """The program's op lines (header and comments dropped)."""
    return [ln for ln in format_prog(prog).splitlines() if ln and not ln.startswith("#")]


def noise(rng: random.Random, n: int) -> list[str]:
    """Valid ops on p0 (above 0x1000) and p1 (above 0x2000) that never touch the core's page
    and never mprotect rw, so they cannot show the mutant themselves."""
    out = []
    for _ in range(n):
        proc = rng.choice(["p0", "p1"])
        vpn = (0x1000 if proc == "p0" else 0x2000) + rng.randrange(64)
        r = rng.random()
        if r < 0.15:
            out.append(f"mmap {proc} {vpn:#x} {rng.randint(1, 8)} {rng.choice(['rw', 'r'])} "
                       f"{rng.choice(['private,anon', 'shared,anon'])}")
        elif r < 0.45:
            out.append(f"write {proc} {vpn:#x} {rng.randrange(1, 1 << 32):#x}")
        elif r < 0.7:
            out.append(f"read {proc} {vpn:#x}")
        elif r < 0.8:
            out.append(f"munmap {proc} {vpn:#x} {rng.randint(1, 4)}")
        elif r < 0.9:
            out.append(f"mprotect {proc} {vpn:#x} {rng.randint(1, 4)} "
                       f"{rng.choice(['r', 'none'])}")
        else:
            out.append(f"state {proc} {vpn:#x}")
    return out


def planted(seed: int, n: int, core=CORE) -> Prog:
    """``core`` spread in order among ``n`` noise ops of p0 and a forked p1."""
    rng = random.Random(seed)
    lines = ["fork p0"] + noise(rng, n)
    at = sorted(rng.sample(range(1, len(lines) + 1), len(core)))
    for k, (pos, line) in enumerate(zip(at, core)):
        lines.insert(pos + k, line)
    return prog_of(lines, f"<planted seed={seed}>")


def same_signature(mutant, target):
    def still_fails(p: Prog) -> bool:
        d = divergence_of(p, mutant)
        return d is not None and signature(d, p) == target
    return still_fails


def target_of(prog: Prog, mutant: str) -> str:
    d = divergence_of(prog, mutant)
    assert d is not None, f"{prog.source} does not diverge with {mutant}"
    return signature(d, prog)


def assert_one_minimal(small: Prog, still_fails) -> None:
    for i in range(len(small)):
        assert not still_fails(drop_ops(small, [i])), (
            f"not 1-minimal: still fails without op #{i}:\n{format_prog(small)}")


# --- end to end -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_core_in_noise_shrinks_to_the_core(seed):
    prog = planted(seed, 200)
    assert divergence_of(prog) is None, "the faithful impl must agree on the planted program"
    target = target_of(prog, MUTANT)
    still_fails = same_signature(MUTANT, target)
    small = minimize(prog, still_fails)
    got = "\n".join(op_lines(small))
    assert len(small) <= 6, f"orig {len(prog)} ops, got {len(small)}:\n{got}"
    assert still_fails(small) and target_of(small, MUTANT) == target
    assert_one_minimal(small, still_fails)
    assert parse(format_prog(small)).ops() == small.ops(), "the result must print and parse back"


def test_args_reset_to_canonical_values():
    core = ["mmap p0 0x5120 4 rw private,anon", "write p0 0x5122 0xdead",
            "mprotect p0 0x5120 4 r", "mprotect p0 0x5120 4 rw", "state p0 0x5122"]
    prog = planted(7, 60, core)
    small = minimize(prog, same_signature(MUTANT, target_of(prog, MUTANT)))
    # mprotect r stays: mprotect rw on an rw VMA alone is a no-op (mprotect_fixup)
    expected = ["mmap p0 0x100 1 rw private,anon", "write p0 0x100 1", "mprotect p0 0x100 1 r",
                "mprotect p0 0x100 1 rw"]
    assert op_lines(small) == expected, (f"orig:\n{format_prog(prog)}\nexpected:\n"
                                         + "\n".join(expected) + f"\ngot:\n{format_prog(small)}")


def test_forked_processes_are_renamed_and_merged():
    mutant = "reuse_ignores_refcount"
    if mutant not in MUTANTS:
        pytest.skip(f"mutant {mutant} not built")
    core = ["mmap p0 0x100 1 rw private,anon", "write p0 0x100 7", "fork p0",
            "write p2 0x100 9", "read p0 0x100"]
    prog = planted(3, 40, core)      # the noise fork made p1: the core's child is p2
    target = target_of(prog, mutant)
    small = minimize(prog, same_signature(mutant, target))
    got = op_lines(small)
    assert len(got) <= 4 and all("p2" not in ln for ln in got), "\n".join(got)
    assert target_of(small, mutant) == target
    assert_one_minimal(small, same_signature(mutant, target))


def test_index_hint_and_a_wrong_hint_give_failing_results():
    prog = planted(4, 150)
    div = divergence_of(prog, MUTANT)
    still_fails = same_signature(MUTANT, signature(div, prog))
    for hint in (div.index, 0, len(prog) + 5):
        small = minimize(prog, still_fails, index=hint)
        assert len(small) <= 6 and still_fails(small), f"hint {hint}:\n{format_prog(small)}"


@pytest.mark.soak
def test_thousand_op_finding_minimizes_within_30_seconds():
    """Issue 4 goal: minimizing a 1,000-op finding < 30 s, result <= 10 ops."""
    import time
    prog = planted(12, 1000)
    div = divergence_of(prog, MUTANT)
    t0 = time.perf_counter()
    small = minimize(prog, same_signature(MUTANT, signature(div, prog)), index=div.index)
    seconds = time.perf_counter() - t0
    print(f"1000-op minimization: {len(prog)} -> {len(small)} ops in {seconds:.2f} s")
    assert len(small) <= 10 and seconds < 30, f"{len(small)} ops, {seconds:.1f} s"


def test_expect_divergence_keeps_only_its_own_expectation():
    prog = prog_of(["mmap p0 0x100 2 rw private,anon -> 0x100", "write p0 0x101 5 -> ok",
                    "fork p0 -> p1", "read p1 0x101 -> 0x5", "read p0 0x101 -> 0x6"])
    div = divergence_of(prog)
    assert div is not None and div.kind is DivergenceKind.EXPECT
    small = minimize(prog, same_signature(None, signature(div, prog)))
    assert format_prog(small).splitlines()[1:] == ["read p0 0x100 -> 0x6"], format_prog(small)


def test_input_that_does_not_fail_is_refused():
    prog = prog_of(CORE)
    with pytest.raises(ValueError, match="input does not reproduce"):
        minimize(prog, same_signature(None, "mprotect-state-page-anon-pte"))
    with pytest.raises(ValueError, match="timeout=0 must be > 0"):
        minimize(prog, lambda p: True, timeout=0)


def test_timeout_returns_a_failing_program():
    prog = planted(5, 300)
    still_fails = same_signature(MUTANT, target_of(prog, MUTANT))
    small = minimize(prog, still_fails, timeout=0.05)
    assert len(small) <= len(prog) and still_fails(small)


def test_predicate_is_only_called_on_copies():
    prog = planted(1, 30)
    before = format_prog(prog)
    seen = []

    def still_fails(p):
        seen.append(p)
        return same_signature(MUTANT, "mprotect-state-page-anon-pte")(p)
    minimize(prog, still_fails)
    assert format_prog(prog) == before and all(p is not prog for p in seen[1:])


# --- removals keep names valid (orig / drop / expected) ------------------------------------

DROP_CASES = [
    # a removed fork renumbers later children
    ("fork p0\nfork p0\nwrite p2 0x100 1", [0], "fork p0\nwrite p1 0x100 1"),
    # a removed fork takes its child's ops along
    ("fork p0\nwrite p1 0x100 1\nread p0 0x100", [0], "read p0 0x100"),
    # ... and the child's own children, transitively
    ("fork p0\nfork p1\nwrite p2 0x100 1\nfork p0\nexit p3", [0], "fork p0\nexit p1"),
    # defined names (files) keep their names; users of a removed file go
    ("file f0 4\nfile f1 4\nmmap p0 0x100 1 rw shared file=f1 off=0", [0],
     "file f1 4\nmmap p0 0x100 1 rw shared file=f1 off=0"),
    ("file f0 4\nfread f0 0\nfork p0", [0], "fork p0"),
    # pins are numbered from h1 like children
    ("pin p0 0x100 1 r\npin p0 0x100 1 r\nunpin h2", [0], "pin p0 0x100 1 r\nunpin h1"),
    ("mirror d0 p0 0x100 1\nunmirror m1\ndevents d0", [0], "devents d0"),
    # expectations stay on their op; a created name's expectation follows the rename
    ("fork p0 -> p1\nfork p0 -> p2\nexit p2 -> ok", [0], "fork p0 -> p1\nexit p1 -> ok"),
    # removing a non-creating op renames nothing
    ("fork p0\nread p0 0x100\nwrite p1 0x100 1", [1], "fork p0\nwrite p1 0x100 1"),
    # several at once
    ("fork p0\nfork p0\nfork p0\nread p3 0x100\nread p2 0x100", [0, 1],
     "fork p0\nread p1 0x100"),
]


@pytest.mark.parametrize("orig,drop,expected", DROP_CASES)
def test_drop_ops_keeps_names_valid(orig, drop, expected):
    got = drop_ops(prog_of(orig), drop)
    want = prog_of(expected)
    msg = f"orig:\n{orig}\ndrop {drop}\nexpected:\n{expected}\ngot:\n{format_prog(got)}"
    assert got.ops() == want.ops(), msg
    assert [s.expect for s in got.op_stmts()] == [s.expect for s in want.op_stmts()], msg
    parse(format_prog(got))          # the result parses (names exist where used)


RENAME_CASES = [
    ("file f3 1\nfile f1 1\nfread f3 0\nfread f1 0",
     "file f0 1\nfile f1 1\nfread f0 0\nfread f1 0"),
    ("file f1 1\nfile f0 1\nfwrite f0 0 5\nmmap p0 0x100 1 r shared file=f1 off=0",
     "file f0 1\nfile f1 1\nfwrite f1 0 5\nmmap p0 0x100 1 r shared file=f0 off=0"),
    ("vm v2\nvmstate v2", "vm v0\nvmstate v0"),
]


@pytest.mark.parametrize("orig,expected", RENAME_CASES)
def test_rename_defined_uses_lowest_names(orig, expected):
    got = rename_defined(prog_of(orig))
    assert got.ops() == prog_of(expected).ops(), (
        f"orig:\n{orig}\nexpected:\n{expected}\ngot:\n{format_prog(got)}")


MERGE_CASES = [
    ("fork p0\nfork p0\nwrite p2 0x100 1\nexit p1", 1, "fork p0\nwrite p0 0x100 1\nexit p1"),
    ("fork p0\nfork p1\nwrite p2 0x100 1\nfork p2", 1, "fork p0\nwrite p1 0x100 1\nfork p1"),
]


@pytest.mark.parametrize("orig,index,expected", MERGE_CASES)
def test_merge_child_runs_child_ops_in_parent(orig, index, expected):
    got = merge_child(prog_of(orig), index)
    assert got.ops() == prog_of(expected).ops(), (
        f"orig:\n{orig}\nmerge op #{index}\nexpected:\n{expected}\ngot:\n{format_prog(got)}")


# --- signatures ---------------------------------------------------------------------------

def _div(kind, op, **kw) -> Divergence:
    return Divergence(kind, 3, Stmt(op=op), **kw)


SAFE = re.compile(r"[a-z0-9_-]+")
MPROT = ops.Mprotect("p3", 0x1234, 1, ops.Prot.RW)


@pytest.mark.parametrize("div,expected", [
    (_div(DivergenceKind.STATE, MPROT, fields=(
        ("p3 page 0x1234", "anon pte rw dirty excl F2", "anon pte r dirty excl F2"),)),
     "mprotect-state-page-anon-pte"),
    (_div(DivergenceKind.STATE, MPROT, fields=(("p1 page 0x100", MISSING, "zero pte r zero"),)),
     "mprotect-state-page-zero-pte"),
    (_div(DivergenceKind.STATE, MPROT, fields=(("p0 vma[2]", "a", "b"), ("frame F0", "x", "y"))),
     "mprotect-state-vma"),
    (_div(DivergenceKind.STATE, MPROT, fields=(("frame F7", "map=1", "map=2"),)),
     "mprotect-state-frame"),
    (_div(DivergenceKind.RESULT, ops.Fork("p2"), left=name("p3"), right=errno(Errno.ENOMEM)),
     "fork-result"),
    (_div(DivergenceKind.CRASH, ops.Write("p0", 1, 2), side="impl", detail="KeyError: 0x5"),
     "write-crash-impl-keyerror"),
    (_div(DivergenceKind.INVARIANT, ops.Munmap("p0", 1, 2), side="reference",
          detail="p0: entry at 0x100 outside every VMA"),
     "munmap-invariant-reference-entry-outside-every-vma"),
    (_div(DivergenceKind.INVARIANT, ops.Write("p0", 1, 2), side="impl",
          detail="impl invariant broken: I1 writable anon => AnonExclusive: p0 vpn=0x100 "
                 "pfn=0x3 expected=0x1 got=0x0"),
     "write-invariant-impl-i1-writable-anon-anonexclusive"),
    (_div(DivergenceKind.EXPECT, ops.File("f9", 1), left=ok(), right=errno(Errno.EINVAL),
          side="reference"), "file-expect-reference"),
])
def test_signature(div, expected):
    got = signature(div, Prog.of([div.stmt.op]))
    assert got == expected and SAFE.fullmatch(got), f"expected {expected}, got {got}"


def test_signature_strips_names_and_addresses():
    a = _div(DivergenceKind.STATE, ops.Write("p1", 0x100, 1),
             fields=(("p1 page 0x100", "anon pte rw F0", "anon pte r F0"),))
    b = _div(DivergenceKind.STATE, ops.Write("p7", 0x9000, 5),
             fields=(("p7 page 0x9000", "anon pte rw F4", "anon pte r F3"),))
    assert signature(a, Prog.of([a.stmt.op])) == signature(b, Prog.of([b.stmt.op]))
    assert [field_class(p) for p in ("h1 pages", "f0 pgoff 0x3", "p2 vma[10]")] == \
        ["pin", "file", "vma"]
    # an invariant's values never reach the signature, only its rule
    assert invariant_rule("p3: writable anon PTE at 0x1234 maps a non-exclusive page <F 9>") == \
        invariant_rule("p0: writable anon PTE at 0x100 maps a non-exclusive page <F 1>")


# --- the CLI --------------------------------------------------------------------------------

def test_cli_minimize_writes_the_min_file(tmp_path, capsys):
    src = tmp_path / "big.mmd"
    src.write_text(format_prog(planted(2, 100)))
    assert cli.main(["minimize", "--mutant", MUTANT, str(src)]) == 0
    out = tmp_path / "big.min.mmd"
    small = parse(out.read_text(), str(out))
    assert len(small) <= 6
    assert target_of(small, MUTANT) == "mprotect-state-page-anon-pte"
    assert f"{len(planted(2, 100))} -> {len(small)} ops" in capsys.readouterr().out
    assert f"mmdiff run --mutant {MUTANT} {out}" in out.read_text()


def test_cli_minimize_output_option_and_exit_codes(tmp_path, capsys):
    src = tmp_path / "core.mmd"
    src.write_text("# mmdiff v1\n" + "\n".join(CORE) + "\n")
    dest = tmp_path / "small.mmd"
    assert cli.main(["minimize", str(src), "-o", str(dest), "--mutant", MUTANT,
                     "--timeout", "20"]) == 0
    assert len(parse(dest.read_text())) == 4
    # the faithful impl agrees: nothing to minimize, nothing written
    assert cli.main(["minimize", str(src), "-o", str(tmp_path / "none.mmd")]) == 1
    assert "no divergence: nothing to minimize" in capsys.readouterr().err
    assert not (tmp_path / "none.mmd").exists()
    bad = tmp_path / "bad.mmd"
    bad.write_text("# mmdiff v1\nmmap p0 0x100 1 rw private,anon\nfrob p0\n")
    assert cli.main(["minimize", str(bad)]) == 2
    assert f"{bad}:3" in capsys.readouterr().err
    assert cli.main(["minimize", str(src), "--mutant", "no_such_mutant"]) == 2
