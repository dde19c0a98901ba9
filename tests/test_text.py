"""The `.mmd` text format (fuzz/text.py): canonical round trip, accepted spellings, errors.

Table-driven in the text format itself (syzkaller prog/encoding_test.go): each error
case gives the input line, the expected line:col and a fragment of the reason.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.fuzz import text
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.fuzz.text import (
    ParseError,
    format_op,
    format_prog,
    format_result,
    format_stmt,
    parse,
    parse_file,
)
from mmdiff.reference import ops as O
from mmdiff.reference import results as R
from mmdiff.reference.ops import Advice, MapFlag, PinMode, Prot, SetKey

# Every op kind once, in canonical spelling (module docstring of fuzz/text.py).
CANONICAL = """\
# mmdiff v1
# address space
mmap p0 0x10 4 rw private,anon -> 0x10
mmap p0 0 0x200 r private,anon,populate
mmap p0 0x400 2 none shared,pfnmap
mmap p0 0x800 1 rw none -> EINVAL
munmap p0 0x10 1 -> ok
mprotect p0 0x11 2 r
madvise p0 0x11 2 populate_write # trailing comment
read p0 0x11 -> 0x0
write p0 0x12 0xdeadbeef -> SEGV
fork p0 -> p1
exit p1
poke p0 0x12 0xffffffffffffffff -> EIO
clear_refs p0

pin p0 0x11 1 rw,longterm -> h1
pin p0 0x11 1 r
pread h1 0
pwrite h2 0 0x2a
unpin h1
file f0 0x10
file f3 0 devmem
fread f0 0xf
fwrite f3 0 7
wp_range f0 0 0x10 -> 0x0
clean_record f0 0 0x10 -> 0x2 bits=0x1,0x3
split p0 0x10
split_folio p0 0x200 -> EBUSY
ksm_scan -> 0x0
mirror d0 p0 0x10 0x200 -> m1
unmirror m1
dread d1 p0 0x10 -> EFAULT
dwrite d0 p0 0x10 0xa
dexcl d0 p0 0x10 -> EBUSY
datomic d0 p0 0x10 1
devents d0 -> invalidate 0x10-0x11
lock p0 0x10
unlock p0 0x10
vm v0
vm v7 0x100 0x1000
bind v0 map 0 0x10 f0 0 async
bind v0 map 0x10 0x10 f3 2
bind v7 unmap 0 0x10
bind v7 unmap 0x100 1 async
vmrun v0
vmrun v0 2
gpuread v0 0x10 -> FAULT
unbind_obj f0
vmstate v0
set thp always
set thp_zero 1
set thp_alloc fail
set max_ptes_none 511
state p0 0x10 -> anon pte rw dirty excl
same p0 0x10 p1 0x10 -> no
#
#no space after the hash, ## and -> kept verbatim\t
"""


def test_canonical_round_trip_covers_every_op():
    t = CANONICAL
    prog = parse(t, source="canonical.mmd")
    assert format_prog(prog) == t
    assert {type(op) for op in prog.ops()} == set(O.ALL_OPS), \
        f"CANONICAL misses {set(O.ALL_OPS) - {type(op) for op in prog.ops()}}"
    assert prog.source == "canonical.mmd"
    assert [s.line for s in prog.stmts] == list(range(1, t.count("\n") + 1))


def test_canonical_values():
    """Parsing gives the ops the text means, not just something that prints back."""
    prog = parse(CANONICAL)
    by_line = {s.line: s for s in prog.stmts}
    assert by_line[1] == Stmt(comment=" mmdiff v1", line=1)
    assert by_line[3] == Stmt(
        op=O.Mmap("p0", 0x10, 4, Prot.RW, frozenset({MapFlag.PRIVATE, MapFlag.ANON})),
        expect=R.value(0x10), line=3)
    assert by_line[6].op.flags == frozenset()
    assert by_line[6].expect == R.errno(R.Errno.EINVAL)
    assert by_line[9] == Stmt(op=O.Madvise("p0", 0x11, 2, Advice.POPULATE_WRITE),
                              comment=" trailing comment", line=9)
    assert by_line[11].op == O.Write("p0", 0x12, 0xDEADBEEF)
    assert by_line[12].expect == R.name("p1")
    assert by_line[16] == Stmt(line=16)
    assert by_line[17].op == O.Pin("p0", 0x11, 1, PinMode.RW_LONGTERM)
    assert by_line[23].op == O.File("f3", 0, devmem=True)
    ops = prog.ops()
    assert O.BindMap("v0", 0, 0x10, "f0", 0, is_async=True) in ops
    assert O.BindUnmap("v7", 0x100, 1, is_async=True) in ops
    assert O.VmInit("v7", 0x100, 0x1000) in ops
    assert O.VmRun("v0", None) in ops
    assert O.Set(SetKey.MAX_PTES_NONE, "511") in ops
    last = prog.stmts[-1]
    assert last.op is None and last.comment == "no space after the hash, ## and -> kept verbatim\t"


@pytest.mark.parametrize("spelled, canonical", [
    ("read p0 16", "read p0 0x10"),
    ("read   p0\t0X1F  ", "read p0 0x1f"),
    ("read p0 009", "read p0 9"),
    ("write p0 0x10 10", "write p0 0x10 0xa"),
    ("mmap p0 16 1 rw anon,private", "mmap p0 0x10 1 rw private,anon"),
    ("mmap p0 16 1 rw off=3 shared file=f0", "mmap p0 0x10 1 rw shared file=f0 off=3"),
    ("mmap p0 16 1 rw shared off=0x3", "mmap p0 0x10 1 rw shared off=3"),
    ("read p0 0x10 #c", "read p0 0x10 #c"),
    ("read p0 0x10   -> 17   # c", "read p0 0x10 -> 0x11 # c"),
    ("read p0 0x10 ->0x11", "read p0 0x10 -> 0x11"),
    ("state p0 0x10 ->   anon  pte   rw", "state p0 0x10 -> anon pte rw"),
    ("set max_ptes_none 0x10", "set max_ptes_none 16"),
    ("vmrun v0 0", "vmrun v0 0"),
    ("   # indented comment", "# indented comment"),
    ("  \t ", ""),
])
def test_non_canonical_spellings(spelled, canonical):
    head = "# mmdiff v1\nfile f0 1\nvm v0\n"
    got = parse(head + spelled + "\n")
    assert format_prog(got) == head + canonical + "\n"
    assert got.ops() == parse(head + canonical + "\n").ops()


def test_expectation_compares_numerically():
    a = parse("# mmdiff v1\nread p0 1 -> 17\n").stmts[1].expect
    b = parse("# mmdiff v1\nread p0 1 -> 0x11\n").stmts[1].expect
    assert a == b == R.value(17)
    assert format_result(a) == "0x11"


def test_crlf_and_missing_final_newline():
    prog = parse("# mmdiff v1\r\nread p0 1\r\nfork p0")
    assert prog.ops() == [O.Read("p0", 1), O.Fork("p0")]
    assert format_prog(prog) == "# mmdiff v1\nread p0 1\nfork p0\n"


def test_header():
    assert parse("", strict=False).stmts == ()
    with pytest.raises(ParseError) as e:
        parse("", source="empty.mmd")
    assert (e.value.line, e.value.col) == (1, 1)
    with pytest.raises(ParseError) as e:
        parse("read p0 1\n", source="old.mmd")
    assert (e.value.source, e.value.line, e.value.col) == ("old.mmd", 1, 1)
    assert "missing header" in e.value.reason and "strict=False" in e.value.reason
    lenient = parse("read p0 1\n", strict=False)
    assert lenient.ops() == [O.Read("p0", 1)]
    assert format_prog(lenient) == "# mmdiff v1\nread p0 1\n"
    with pytest.raises(ParseError, match="unsupported format version 'v2'"):
        parse("# mmdiff v2\n", strict=False)
    assert format_prog(Prog()) == "# mmdiff v1\n"


# (input after the header line, line, col, fragment of the reason)
ERRORS = [
    ("mmapp p0 1 1 rw private", 2, 1, "unknown op 'mmapp' (did you mean 'mmap'?)"),
    ("frobnicate p0", 2, 1, "unknown op 'frobnicate'"),
    ("read p0", 2, 9, "too few arguments for read: got 1, VPN is missing"),
    ("mmap p0 1 1 rw", 2, 16, "too few arguments for mmap: got 4, FLAGS is missing"),
    ("vm v0 1", 2, 9, "too few arguments for vm: got 2, NPAGES is missing"),
    ("read p0 1 2", 2, 11, "too many arguments for read: got 3, '2' is extra"),
    ("ksm_scan now", 2, 10, "too many arguments for ksm_scan: got 1, 'now' is extra"),
    ("read p0 1x", 2, 9, "bad number '1x' for vpn: write decimal (17) or 0x hex (0x11)"),
    ("read p0 -1", 2, 9, "vpn must be non-negative, got '-1'"),
    ("read p0 1_000", 2, 9, "bad number '1_000'"),
    ("write p0 1 0x10000000000000000", 2, 12,
     "value 0x10000000000000000 does not fit in 64 bits"),
    ("write p0 1 18446744073709551616", 2, 12, "value 18446744073709551616 does not fit"),
    ("munmap p0 1 0x1ffffffffffffffff", 2, 13, "npages 0x1ffffffffffffffff does not fit"),
    ("mprotect p0 1 1 wr", 2, 17, "prot 'wr' is not one of none, r, rw (did you mean 'rw'?)"),
    ("mmap p0 1 1 rw privat,anon", 2, 16,
     "flag 'privat' is not one of private, shared, anon, populate, pfnmap "
     "(did you mean 'private'?)"),
    ("mmap p0 1 1 rw anon,private,anon", 2, 29, "flag 'anon' appears twice"),
    ("mmap p0 1 1 rw anon,,private", 2, 21, "empty flag in 'anon,,private'"),
    ("mmap p0 1 1 rw none,anon", 2, 16, "'none' means no flags"),
    ("madvise p0 1 1 dontned", 2, 16,
     "advice 'dontned' is not one of dontneed, hugepage"),
    ("pin p0 1 1 w", 2, 12, "mode 'w' is not one of r, rw, r,longterm, rw,longterm"),
    ("set thp sometimes", 2, 9, "set thp value 'sometimes' is not one of always, madvise, never"),
    ("set thp_zero 2", 2, 14, "set thp_zero value '2' is not one of 0, 1"),
    ("set max_ptes_none 512", 2, 19, "set max_ptes_none value 512 is out of range"),
    ("set max_ptes_none many", 2, 19, "is not a number"),
    ("set thpp always", 2, 5, "key 'thpp' is not one of thp"),
    ("read p2 0", 2, 6, "process 'p2' does not exist yet: only p0 exists here"),
    ("fork p0\nfork p1\nread p3 0", 4, 6, "process 'p3' does not exist yet: p0..p2 exist"),
    ("read p01 0", 2, 6, "bad process name 'p01'"),
    ("read h1 0", 2, 6, "bad process name 'h1'"),
    ("pin p0 1 1 r\npin p0 1 1 r\nunpin h3", 4, 7,
     "pin 'h3' does not exist yet: h1..h2 exist here, and each 'pin' line creates"),
    ("pread h1 0", 2, 7, "pin 'h1' does not exist yet: no pin exists here"),
    ("unpin h0", 2, 7, "pin 'h0' never exists: pins are numbered from h1"),
    ("unmirror m1", 2, 10, "subscription 'm1' does not exist yet"),
    ("fread f1 0", 2, 7, "file 'f1' is not defined yet: define it first with 'file f1 NPAGES"),
    ("file f0 1\nmmap p0 1 1 r shared file=f2", 3, 27, "file 'f2' is not defined yet"),
    ("gpuread v1 0", 2, 9, "vm 'v1' is not defined yet"),
    ("file f0 1\nfile f1 1\nfile f0 2", 4, 6,
     "file 'f0' is already defined on line 2: pick a new name such as f2"),
    ("vm v0\nbind v0 mapp 1 1 f0 0", 3, 9, "bind needs 'map' or 'unmap' as argument 2"),
    ("vm v0\nbind v0", 3, 9, "too few arguments for bind: got 1, 'map' or 'unmap' is missing"),
    ("vm v0\nbind v0 unmap 1 2 asyn", 3, 19, "'asyn' is extra (did you mean 'async'?)"),
    ("mmap p0 1 1 rw anon fil=f0", 2, 21, "unknown argument 'fil=' for mmap"),
    ("mmap p0 1 1 rw anon off=1 off=2", 2, 27, "'off=' is given twice"),
    ("mmap p0 1 1 rw anon off=", 2, 25, "'off=' needs a value"),
    ("read p0 1 =3", 2, 11, "unknown argument '=' for read"),
    ("read p0 1 ->", 2, 13, "empty expectation after '->'"),
    ("read p0 1 -> EINVLA", 2, 14, "errno 'EINVLA' is not one of"),
    ("  -> ok", 2, 3, "expectation '->' without an op"),
]


@pytest.mark.parametrize("body, line, col, reason", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(body, line, col, reason):
    src = "# mmdiff v1\n" + body + "\n"
    with pytest.raises(ParseError) as e:
        parse(src, source="bad.mmd")
    err = e.value
    got = (err.source, err.line, err.col)
    assert got == ("bad.mmd", line, col) and reason in err.reason, \
        f"input {body!r}: want {line}:{col} {reason!r}, got {got} {err.reason!r}"
    assert err.text == src.split("\n")[line - 1]
    head, shown, marker = str(err).split("\n")
    assert head == f"bad.mmd:{line}:{col}: {err.reason}"
    assert shown == err.text and marker == " " * (col - 1) + "^"


def test_error_marker_keeps_tabs_and_pickles():
    with pytest.raises(ParseError) as e:
        parse("# mmdiff v1\nread\tp0\tzz\n")
    assert str(e.value).split("\n")[2] == "    \t  \t^"
    again = pickle.loads(pickle.dumps(e.value))
    assert (again.line, again.col, again.reason, again.text) == \
        (e.value.line, e.value.col, e.value.reason, e.value.text)


def test_parse_file(tmp_path):
    good = tmp_path / "ok.mmd"
    good.write_text("# mmdiff v1\nread p0 1\n")
    prog = parse_file(good)
    assert prog.source == str(good) and prog.ops() == [O.Read("p0", 1)]
    assert parse_file(str(good)).source == str(good)
    with pytest.raises(ParseError) as e:
        parse_file(tmp_path / "missing.mmd")
    assert e.value.line == 0 and "cannot read the file: No such file" in e.value.reason
    assert str(e.value).startswith(f"{tmp_path / 'missing.mmd'}: cannot read")
    binary = tmp_path / "bin.mmd"
    binary.write_bytes(b"# mmdiff v1\nread p0 \xff\n")
    with pytest.raises(ParseError) as e:
        parse_file(binary)
    assert e.value.line == 0 and "not UTF-8: byte 0xff on line 2" in e.value.reason
    old = tmp_path / "old.mmd"
    old.write_text("read p0 1\n")
    with pytest.raises(ParseError, match="missing header"):
        parse_file(old)
    assert parse_file(old, strict=False).ops() == [O.Read("p0", 1)]


@pytest.mark.parametrize("op, why", [
    (O.Write("p0", 1, -1), "not an integer in 0.."),
    (O.Write("p0", 1, 1 << 64), "not an integer in 0.."),
    (O.Read("x0", 1), "is not a process name"),
    (O.Mprotect("p0", 1, 1, "rw"), "is not a Prot"),
    (O.Mmap("p0", 1, 1, Prot.R, frozenset({"anon"})), "is not a set of MapFlag"),
    (O.VmInit("v0", 1, None), "go together"),
    (O.Set(SetKey.THP, "sometimes"), "not one of always"),
    (O.Set(SetKey.MAX_PTES_NONE, "0x10"), "want '16'"),
    (O.BindUnmap("v0", 0, 1, is_async=1), "must be a bool"),
])
def test_format_op_refuses_what_cannot_parse_back(op, why):
    with pytest.raises(ValueError, match=why):
        format_op(op)


def test_format_stmt_refuses_multiline_parts():
    with pytest.raises(ValueError, match="one line"):
        format_stmt(Stmt(comment="a\nb"))
    with pytest.raises(ValueError, match="no op"):
        format_stmt(Stmt(expect=R.OK))


def test_bad_syntax_fails_at_compile_time():
    """A SYNTAX the compiler cannot read raises SyntaxTableError (at import for the table)."""
    @dataclass(frozen=True)
    class Bad(O.Op):
        proc: str
        n: int = 0
    Bad.NAME, Bad.CREATES, Bad.DEFINES = "bad", None, None
    for syntax, why in [("proc:PROC [n:NUM", "never closed"),
                        ("proc:PROC n:NOPE", "unknown KIND"),
                        ("proc:PROC [n:NUM] 'x'", "positional after an optional"),
                        ("proc:PROC n:NUM{", "cannot read"),
                        ("proc:PROC [[n:NUM]]", "do not nest"),
                        ("proc:PROC", "")]:
        Bad.SYNTAX = syntax
        if not why:
            text._Syntax(Bad)
            continue
        with pytest.raises(text.SyntaxTableError, match=why):
            text._Syntax(Bad)

    @dataclass(frozen=True)
    class NoDefault(O.Op):
        proc: str
        n: int
    NoDefault.NAME, NoDefault.SYNTAX = "nodefault", "proc:PROC [n:NUM]"
    with pytest.raises(text.SyntaxTableError, match="needs a default"):
        text._Syntax(NoDefault)


def test_new_syntax_shapes_need_no_parser_change():
    """A SYNTAX the table does not use yet (required key=, group, flag) parses and prints."""
    @dataclass(frozen=True)
    class Probe(O.Op):
        proc: str
        vpn: int
        level: int
        extra: int = None
        deep: bool = False
    Probe.NAME, Probe.CREATES, Probe.DEFINES = "probe", None, None
    Probe.SYNTAX = "proc:PROC vpn:NUM [extra:NUM] level=level:NUM ?deep=deep"
    syn = text._Syntax(Probe)

    def run(line):
        toks = text._tokens(line)
        pos = [t for t in toks if "=" not in t.text]
        kws = [t for t in toks if "=" in t.text]
        return syn.match(pos, kws, len(line) + 2, text._Names())

    op = run("p0 0x10 level=3 deep")
    assert op == Probe("p0", 0x10, 3, None, True)
    assert syn.emit(op) == ["p0", "0x10", "level=3", "deep"]
    assert run("p0 16 7 level=0xb") == Probe("p0", 16, 0xB, 7, False)
    assert syn.emit(Probe("p0", 16, 0xB, 7)) == ["p0", "0x10", "7", "level=0xb"]
    with pytest.raises(text._Reject, match="probe needs 'level='"):
        run("p0 16")


# --- property: any Prog built in code prints and parses back ------------------------------

@dataclass
class _Scope:
    """Names that exist so far in the program being drawn (mirrors SPEC §3 naming)."""
    procs: int = 1
    pins: int = 0
    subs: int = 0
    files: list = field(default_factory=list)
    vms: list = field(default_factory=list)


class _Missing(Exception):
    """The op kind being drawn needs a name nothing has created yet; maker() creates one."""

    def __init__(self, maker):
        super().__init__()
        self.maker = maker


U64 = st.one_of(st.integers(0, 20), st.integers(0, (1 << 64) - 1))
N = st.one_of(st.integers(0, 0x1000), U64)      # a NUM argument
FLAGS = st.frozensets(st.sampled_from(list(MapFlag)))
SET_WORDS = {k: st.sampled_from(v) if v is not None else st.integers(0, 511).map(str)
             for k, v in O.SET_VALUES.items()}


def proc(d, sc):
    return f"p{d(st.integers(0, sc.procs - 1))}"


def pin(d, sc):
    if not sc.pins:
        raise _Missing(lambda d: O.Pin(proc(d, sc), n(d), n(d), d(st.sampled_from(PinMode))))
    return f"h{d(st.integers(1, sc.pins))}"


def sub(d, sc):
    if not sc.subs:
        raise _Missing(lambda d: O.Mirror(dev(d, sc), proc(d, sc), n(d), n(d)))
    return f"m{d(st.integers(1, sc.subs))}"


def file(d, sc):
    if not sc.files:
        raise _Missing(lambda d: O.File(new(d, "f", sc.files), n(d), d(st.booleans())))
    return d(st.sampled_from(sc.files))


def vm(d, sc):
    if not sc.vms:
        raise _Missing(lambda d: O.VmInit(new(d, "v", sc.vms)))
    return d(st.sampled_from(sc.vms))


def dev(d, sc):
    return f"d{d(st.integers(0, 12))}"


def new(d, prefix, taken):
    return d(st.integers(0, 30).map(lambda i: f"{prefix}{i}").filter(lambda n: n not in taken))


def maybe(d, draw_one):
    return draw_one() if d(st.booleans()) else None


def n(d):
    return d(N)


def v(d):
    return d(U64)


# One strategy per op kind: (draw, scope) -> op; raises _Missing when a name is lacking.
STRATEGIES = {
    O.Mmap: lambda d, sc: O.Mmap(proc(d, sc), n(d), n(d), d(st.sampled_from(Prot)), d(FLAGS),
                                 maybe(d, lambda: file(d, sc)) if sc.files else None,
                                 maybe(d, lambda: n(d))),
    O.Munmap: lambda d, sc: O.Munmap(proc(d, sc), n(d), n(d)),
    O.Mprotect: lambda d, sc: O.Mprotect(proc(d, sc), n(d), n(d), d(st.sampled_from(Prot))),
    O.Madvise: lambda d, sc: O.Madvise(proc(d, sc), n(d), n(d), d(st.sampled_from(Advice))),
    O.Read: lambda d, sc: O.Read(proc(d, sc), n(d)),
    O.Write: lambda d, sc: O.Write(proc(d, sc), n(d), v(d)),
    O.Fork: lambda d, sc: O.Fork(proc(d, sc)),
    O.Exit: lambda d, sc: O.Exit(proc(d, sc)),
    O.Poke: lambda d, sc: O.Poke(proc(d, sc), n(d), v(d)),
    O.ClearRefs: lambda d, sc: O.ClearRefs(proc(d, sc)),
    O.Pin: lambda d, sc: O.Pin(proc(d, sc), n(d), n(d), d(st.sampled_from(PinMode))),
    O.PinRead: lambda d, sc: O.PinRead(pin(d, sc), n(d)),
    O.PinWrite: lambda d, sc: O.PinWrite(pin(d, sc), n(d), v(d)),
    O.Unpin: lambda d, sc: O.Unpin(pin(d, sc)),
    O.File: lambda d, sc: O.File(new(d, "f", sc.files), n(d), d(st.booleans())),
    O.FileRead: lambda d, sc: O.FileRead(file(d, sc), n(d)),
    O.FileWrite: lambda d, sc: O.FileWrite(file(d, sc), n(d), v(d)),
    O.WpRange: lambda d, sc: O.WpRange(file(d, sc), n(d), n(d)),
    O.CleanRecord: lambda d, sc: O.CleanRecord(file(d, sc), n(d), n(d)),
    O.Split: lambda d, sc: O.Split(proc(d, sc), n(d)),
    O.SplitFolio: lambda d, sc: O.SplitFolio(proc(d, sc), n(d)),
    O.KsmScan: lambda d, sc: O.KsmScan(),
    O.Mirror: lambda d, sc: O.Mirror(dev(d, sc), proc(d, sc), n(d), n(d)),
    O.Unmirror: lambda d, sc: O.Unmirror(sub(d, sc)),
    O.DevRead: lambda d, sc: O.DevRead(dev(d, sc), proc(d, sc), n(d)),
    O.DevWrite: lambda d, sc: O.DevWrite(dev(d, sc), proc(d, sc), n(d), v(d)),
    O.DevExclusive: lambda d, sc: O.DevExclusive(dev(d, sc), proc(d, sc), n(d)),
    O.DevAtomic: lambda d, sc: O.DevAtomic(dev(d, sc), proc(d, sc), n(d), v(d)),
    O.DevEvents: lambda d, sc: O.DevEvents(dev(d, sc)),
    O.Lock: lambda d, sc: O.Lock(proc(d, sc), n(d)),
    O.Unlock: lambda d, sc: O.Unlock(proc(d, sc), n(d)),
    O.VmInit: lambda d, sc: (O.VmInit(new(d, "v", sc.vms), n(d), n(d)) if d(st.booleans())
                             else O.VmInit(new(d, "v", sc.vms))),
    O.BindMap: lambda d, sc: O.BindMap(vm(d, sc), n(d), n(d), file(d, sc), n(d),
                                       d(st.booleans())),
    O.BindUnmap: lambda d, sc: O.BindUnmap(vm(d, sc), n(d), n(d), d(st.booleans())),
    O.VmRun: lambda d, sc: O.VmRun(vm(d, sc), maybe(d, lambda: n(d))),
    O.GpuRead: lambda d, sc: O.GpuRead(vm(d, sc), n(d)),
    O.UnbindObj: lambda d, sc: O.UnbindObj(file(d, sc)),
    O.VmState: lambda d, sc: O.VmState(vm(d, sc)),
    O.Set: lambda d, sc: (lambda k: O.Set(k, d(SET_WORDS[k])))(d(st.sampled_from(SetKey))),
    O.State: lambda d, sc: O.State(proc(d, sc), n(d)),
    O.Same: lambda d, sc: O.Same(proc(d, sc), n(d), proc(d, sc), n(d)),
}


def _record(sc: _Scope, op) -> None:
    """The names op creates, as the parser counts them (every creating op counts)."""
    if isinstance(op, O.Fork):
        sc.procs += 1
    elif isinstance(op, O.Pin):
        sc.pins += 1
    elif isinstance(op, O.Mirror):
        sc.subs += 1
    elif isinstance(op, O.File):
        sc.files.append(op.file)
    elif isinstance(op, O.VmInit):
        sc.vms.append(op.vm)


RESULTS = st.one_of(
    st.just(R.OK),
    U64.map(R.value),
    st.sampled_from(list(R.Errno)).map(R.errno),
    st.sampled_from(list(R.Signal)).map(R.signal),
    st.integers(0, 99).map(lambda i: R.name(f"p{i}")),
    st.sampled_from(["yes", "no", "anon pte rw dirty excl", "0x2 bits=0x1,0x3",
                     "map 0x10-0x20 f0"]).map(R.text_result),
)
COMMENTS = st.text(st.characters(exclude_characters="\n\r", codec="utf-8"), max_size=12)
OPT_RESULT = st.one_of(st.none(), RESULTS)
OPT_COMMENT = st.one_of(st.none(), COMMENTS)
SHAPES = st.sampled_from(["op"] * 6 + ["blank", "comment"])
KINDS = st.sampled_from(O.ALL_OPS)


@st.composite
def progs(draw):
    sc = _Scope()
    stmts = []
    for _ in range(draw(st.integers(0, 30))):
        shape = draw(SHAPES)
        if shape == "blank":
            stmts.append(Stmt())
        elif shape == "comment":
            stmts.append(Stmt(comment=draw(COMMENTS)))
        else:
            try:
                op = STRATEGIES[draw(KINDS)](draw, sc)
            except _Missing as m:
                op = m.maker(draw)   # create the missing name instead
            _record(sc, op)
            stmts.append(Stmt(op=op, expect=draw(OPT_RESULT), comment=draw(OPT_COMMENT)))
    return Prog(tuple(stmts), "<drawn>")


def test_every_op_has_a_strategy():
    assert set(STRATEGIES) == set(O.ALL_OPS)


def _parts(stmts):
    return [(s.op, s.expect, s.comment) for s in stmts]


@settings(max_examples=200, deadline=None)
@given(progs())
def test_drawn_progs_round_trip(prog):
    t = format_prog(prog)
    back = parse(t)
    added = 0 if prog.stmts and text._header_version(prog.stmts[0]) == "v1" else 1
    assert _parts(back.stmts[added:]) == _parts(prog.stmts)
    assert back.ops() == prog.ops()
    assert format_prog(back) == t
