"""The `.mmd` op text format (SPEC §3): parse text into a Prog and print it back.

Generic over the op table (reference/ops.py): every op's ``SYNTAX`` is compiled once
at import into a small matcher (``_Syntax``), so adding an op to the table needs no
change here, and a SYNTAX this module cannot read raises ``SyntaxTableError`` at
import, not mid-fuzz (syzkaller prog/encoding.go: one description table drives both
Serialize and Deserialize).

Canonical text (what the printer writes; the parser accepts more, see below):
- line 1 is ``# mmdiff v1``; every line ends with a newline;
- op name, then its arguments in SYNTAX order, separated by one space; an optional
  group, ``key=value`` argument or flag word is printed only when it is set;
- numbers (NUM and VALUE arguments): 0..9 in decimal, 10 and up in lowercase hex
  (``0x10``). Digits 0..9 read the same in both bases, so this is "hex everywhere"
  (as SPEC §3 asks of printers) without ``0x`` noise on small counts;
- FLAGS in MapFlag order, comma separated; an empty flag set is written ``none``;
- ``set max_ptes_none N``: N in decimal (the value is a word; parse normalizes it);
- an expectation is `` -> `` + ``str(Result)`` (results print numbers in hex);
- a comment is `` #`` + its text after an op, ``#`` + its text on its own line; the
  text after ``#`` is kept exactly, so printing restores it.
The parser also accepts decimal or ``0x``/``0X`` hex anywhere, any run of spaces or
tabs, flags in any order, ``key=value`` arguments anywhere after the op name, a
trailing ``\\r`` and a missing final newline.

Names: ``p0`` exists at start; each ``fork`` line makes the next ``pN`` usable, each
``pin`` the next ``hN``, each ``mirror`` the next ``mN`` (counted optimistically: a
fork that fails at run time still counts here, the run returns ESRCH on the dead
name). ``file F``/``vm V`` define the name given, which must be new. ``dN`` needs no
creation. Using a name that does not exist yet at that line is a parse error.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import MISSING, dataclass, fields
from typing import Optional, Union

from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.reference.ops import (
    ALL_OPS,
    HPAGE_PMD_NR,
    SET_VALUES,
    U64_MASK,
    Advice,
    ArgKind,
    MapFlag,
    Op,
    PinMode,
    Prot,
    SetKey,
    flags_canonical,
)
from mmdiff.reference.results import Errno, Result

HEADER = "# mmdiff v1"
_HEADER_WORDS = ["mmdiff", "v1"]
_SET_NUMBER_MAX = HPAGE_PMD_NR - 1   # khugepaged max_ptes_none: 0..HPAGE_PMD_NR-1


class SyntaxTableError(TypeError):
    """An op's SYNTAX (reference/ops.py) cannot be compiled; raised at import."""


class ParseError(ValueError):
    """Bad `.mmd` input: where (source:line:col), what was wrong, and the line itself.

    ``line`` is 1-based (0 when the file itself could not be read); ``col`` is
    1-based and points at the offending text.
    """

    def __init__(self, source: str, line: int, col: int, reason: str, text: str = ""):
        super().__init__(source, line, col, reason, text)  # args: picklable as is
        self.source = source
        self.line = line
        self.col = col
        self.reason = reason
        self.text = text

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.source}: {self.reason}"
        # Keep tabs under tabs so the marker lines up however the terminal expands them.
        pad = "".join(c if c == "\t" else " " for c in self.text[: max(self.col - 1, 0)])
        pad += " " * (self.col - 1 - len(pad))   # a missing argument: past the line's end
        return f"{self.source}:{self.line}:{self.col}: {self.reason}\n{self.text}\n{pad}^"


class _Reject(Exception):
    """Internal: a reason and a 1-based column on the current line; parse() adds the rest."""

    def __init__(self, reason: str, col: int):
        super().__init__(reason)
        self.reason = reason
        self.col = col


@dataclass(frozen=True)
class _Tok:
    text: str
    col: int      # 1-based column of the first character on its line


def _did_you_mean(word: str, choices) -> str:
    choices = list(choices)
    # Swapped letters first ('wr' -> 'rw'), then difflib's closest match.
    close = [c for c in choices if sorted(c) == sorted(word)]
    close = close or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _one_of(what: str, word: str, choices) -> str:
    choices = list(choices)
    return f"{what} '{word}' is not one of {', '.join(choices)}{_did_you_mean(word, choices)}"


# --- argument codecs: one per ArgKind -------------------------------------------------

_NUM_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def _format_number(n: int) -> str:
    """The canonical number rule (module docstring): 0..9 decimal, else lowercase hex."""
    return str(n) if n < 10 else hex(n)


def _parse_number(tok: _Tok, what: str) -> int:
    t = tok.text
    if t.startswith("-") and _NUM_RE.fullmatch(t[1:]):
        raise _Reject(f"{what} must be non-negative, got '{t}'", tok.col)
    if not _NUM_RE.fullmatch(t):
        raise _Reject(f"bad number '{t}' for {what}: write decimal (17) or 0x hex (0x11)",
                      tok.col)
    n = int(t, 16) if t[:2] in ("0x", "0X") else int(t, 10)
    if n > U64_MASK:
        raise _Reject(f"{what} {t} does not fit in 64 bits: the largest number is "
                      f"{hex(U64_MASK)} (values do not wrap in text; write the wrapped value)",
                      tok.col)
    return n


def _check_number(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U64_MASK:
        raise ValueError(f"{what}={v!r} is not an integer in 0..{hex(U64_MASK)}; "
                         f"build ops with u64 numbers (wrap values with & U64_MASK)")
    return v


class _Codec:
    """How one ArgKind reads (``parse``) and writes (``format``) a single word."""

    def parse(self, tok: _Tok, field: str, done: dict):
        raise NotImplementedError

    def format(self, v, field: str, op) -> str:
        raise NotImplementedError


class _NumberCodec(_Codec):
    def parse(self, tok, field, done):
        return _parse_number(tok, field)

    def format(self, v, field, op):
        return _format_number(_check_number(v, field))


_NOUNS = {ArgKind.PROC: "process", ArgKind.PIN: "pin", ArgKind.SUB: "subscription",
          ArgKind.FILE: "file", ArgKind.DEV: "device", ArgKind.VM: "vm"}


def _noun(kind: ArgKind) -> str:
    return _NOUNS.get(kind, kind.name.lower())


class _NameCodec(_Codec):
    """A name: the kind's prefix letter and an index without leading zeros (p0, h12)."""

    def __init__(self, kind: ArgKind):
        self.kind = kind
        self.re = re.compile(rf"{kind.value}(0|[1-9][0-9]*)")

    def parse(self, tok, field, done):
        if not self.re.fullmatch(tok.text):
            p = self.kind.value
            raise _Reject(f"bad {_noun(self.kind)} name '{tok.text}' for {field}: write "
                          f"'{p}' and a number without leading zeros, like {p}1", tok.col)
        return tok.text

    def format(self, v, field, op):
        if not isinstance(v, str) or not self.re.fullmatch(v):
            raise ValueError(f"{field}={v!r} is not a {_noun(self.kind)} name like "
                             f"{self.kind.value}1")
        return v


class _EnumCodec(_Codec):
    def __init__(self, enum_cls):
        self.enum_cls = enum_cls
        self.by_word = {m.value: m for m in enum_cls}

    def parse(self, tok, field, done):
        m = self.by_word.get(tok.text)
        if m is None:
            raise _Reject(_one_of(field, tok.text, self.by_word), tok.col)
        return m

    def format(self, v, field, op):
        if not isinstance(v, self.enum_cls):
            raise ValueError(f"{field}={v!r} is not a {self.enum_cls.__name__}")
        return v.value


class _FlagsCodec(_Codec):
    """A comma list of MapFlag words, each once; ``none`` is the empty set."""

    NONE = "none"

    def parse(self, tok, field, done):
        if tok.text == self.NONE:
            return frozenset()
        words = {f.value: f for f in MapFlag}
        seen: list = []
        col = tok.col
        for item in tok.text.split(","):
            if not item:
                raise _Reject(f"empty flag in '{tok.text}': remove the extra comma", col)
            if item == self.NONE:
                raise _Reject(f"'none' means no flags and cannot be combined with others "
                              f"in '{tok.text}'", col)
            f = words.get(item)
            if f is None:
                raise _Reject(_one_of("flag", item, words), col)
            if f in seen:
                raise _Reject(f"flag '{item}' appears twice in '{tok.text}': list each "
                              f"flag once", col)
            seen.append(f)
            col += len(item) + 1
        return frozenset(seen)

    def format(self, v, field, op):
        if not isinstance(v, (frozenset, set)) or not all(isinstance(f, MapFlag) for f in v):
            raise ValueError(f"{field}={v!r} is not a set of MapFlag")
        return ",".join(f.value for f in flags_canonical(frozenset(v))) or self.NONE


def _set_key(done: dict, field: str) -> SetKey:
    keys = [v for v in done.values() if isinstance(v, SetKey)]
    assert len(keys) == 1, f"WORD field {field} needs exactly one KEY field before it"
    return keys[0]


def _check_set_word(key: SetKey, word: str, col: int) -> str:
    """The value of `set KEY VALUE` per reference.ops.SET_VALUES; returns its canonical text."""
    allowed = SET_VALUES[key]
    if allowed is not None:
        if word not in allowed:
            raise _Reject(_one_of(f"set {key.value} value", word, allowed), col)
        return word
    if not _NUM_RE.fullmatch(word):
        raise _Reject(f"set {key.value} value '{word}' is not a number: write one in "
                      f"0..{_SET_NUMBER_MAX}", col)
    n = int(word, 16) if word[:2] in ("0x", "0X") else int(word, 10)
    if n > _SET_NUMBER_MAX:
        raise _Reject(f"set {key.value} value {word} is out of range: write one in "
                      f"0..{_SET_NUMBER_MAX}", col)
    return str(n)   # stored in decimal: `16` and `0x10` give the same op


class _WordCodec(_Codec):
    """A `set` value: checked against SET_VALUES of the KEY argument parsed before it."""

    def parse(self, tok, field, done):
        return _check_set_word(_set_key(done, field), tok.text, tok.col)

    def format(self, v, field, op):
        key = next(getattr(op, f.name) for f in fields(op)
                   if isinstance(getattr(op, f.name), SetKey))
        try:
            canon = _check_set_word(key, v, 0) if isinstance(v, str) else None
        except _Reject as e:
            raise ValueError(e.reason) from None
        if canon != v:
            raise ValueError(f"{field}={v!r} is not the canonical text of a `set "
                             f"{key.value}` value (want {canon!r})")
        return v


_CODECS: dict[ArgKind, _Codec] = {
    ArgKind.NUM: _NumberCodec(),
    ArgKind.VALUE: _NumberCodec(),
    ArgKind.PROT: _EnumCodec(Prot),
    ArgKind.FLAGS: _FlagsCodec(),
    ArgKind.ADVICE: _EnumCodec(Advice),
    ArgKind.PINMODE: _EnumCodec(PinMode),
    ArgKind.KEY: _EnumCodec(SetKey),
    ArgKind.WORD: _WordCodec(),
}
_CODECS.update({k: _NameCodec(k) for k in ArgKind if k.is_name})


# --- SYNTAX compiler ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Pos:          # field:KIND
    field: str
    kind: ArgKind


@dataclass(frozen=True)
class _Lit:          # 'word'
    word: str


@dataclass(frozen=True)
class _Key:          # key=field:KIND (optional inside a group, required outside)
    key: str
    field: str
    kind: ArgKind
    optional: bool


@dataclass(frozen=True)
class _Flag:         # ?word=field
    word: str
    field: str


@dataclass(frozen=True)
class _Group:        # [ ... ]: its positionals all present or all absent
    items: tuple


_Item = Union[_Pos, _Lit, _Key, _Flag, _Group]

_SYNTAX_TOKEN = re.compile(
    r"(?P<open>\[)|(?P<close>\])|'(?P<lit>[a-z_]+)'|\?(?P<flag>[a-z_]+)=(?P<flagf>[a-z_0-9]+)"
    r"|(?P<key>[a-z_]+)=(?P<keyf>[a-z_0-9]+):(?P<keyk>[A-Z]+)"
    r"|(?P<pos>[a-z_0-9]+):(?P<posk>[A-Z]+)|(?P<bad>\S+)")


class _Syntax:
    """One op class's compiled SYNTAX: matches argument tokens, prints an op's arguments."""

    def __init__(self, cls: type):
        self.cls = cls
        self.name: str = cls.NAME
        self.items: tuple = self._compile(cls)
        self.keys: dict[str, _Key] = {}
        self.positional: list = []   # _Pos/_Lit/_Flag/_Group(without keys), in order
        for it in self.items:
            self._index(it, self.positional)
        self.usage = " ".join([self.name] + _usage_words(self.items))
        # (index among positional words, word) of the first literal, when every
        # positional before it is required: how ops sharing a name are told apart.
        self.dispatch: Optional[tuple[int, str]] = None
        for i, it in enumerate(self.positional):
            if isinstance(it, _Lit):
                self.dispatch = (i, it.word)
            if not isinstance(it, _Pos):
                break
        self.later_flags = [  # flag words at or after each positional entry
            {e.word for e in self.positional[i:] if isinstance(e, _Flag)}
            for i in range(len(self.positional) + 1)]

    def _fail(self, why: str) -> SyntaxTableError:
        return SyntaxTableError(f"op {self.cls.__name__} ({self.name!r}): SYNTAX "
                                f"{self.cls.SYNTAX!r}: {why}; fix the table in "
                                f"reference/ops.py or teach fuzz/text.py")

    def _compile(self, cls) -> tuple:
        declared = {f.name: f for f in fields(cls)}
        top: list = []
        cur = top
        optional_seen = False
        used: set = set()

        def kind_of(k: str) -> ArgKind:
            if k not in ArgKind.__members__:
                raise self._fail(f"unknown KIND {k!r}")
            if ArgKind[k] not in _CODECS:
                raise self._fail(f"ArgKind.{k} has no codec in fuzz/text.py _CODECS")
            return ArgKind[k]

        def field_of(name: str, optional: bool) -> str:
            f = declared.get(name)
            if f is None or name in used:
                raise self._fail(f"field {name!r} is not a dataclass field or is used twice")
            if optional and f.default is MISSING and f.default_factory is MISSING:
                raise self._fail(f"optional field {name!r} needs a default in the dataclass")
            used.add(name)
            return name

        for m in _SYNTAX_TOKEN.finditer(cls.SYNTAX):
            in_group = cur is not top
            if m["bad"]:
                raise self._fail(f"cannot read {m['bad']!r}")
            if m["open"]:
                if in_group:
                    raise self._fail("optional groups do not nest")
                cur = []
                continue
            if m["close"]:
                if not in_group or not cur:
                    raise self._fail("']' without an open non-empty group")
                if any(isinstance(i, _Pos) for i in cur) and optional_seen:
                    raise self._fail("an optional group of positionals after another "
                                     "optional part is ambiguous")
                top.append(_Group(tuple(cur)))
                optional_seen = True
                cur = top
                continue
            if m["flag"]:
                if in_group:
                    raise self._fail("flag words cannot be inside a group")
                cur.append(_Flag(m["flag"], field_of(m["flagf"], True)))
                optional_seen = True
                continue
            if m["key"]:
                if any(isinstance(i, _Key) and i.key == m["key"] for i in _walk(top + cur)):
                    raise self._fail(f"key {m['key']!r} appears twice")
                cur.append(_Key(m["key"], field_of(m["keyf"], in_group), kind_of(m["keyk"]),
                                in_group))
                continue
            if optional_seen and not in_group:
                raise self._fail("a positional after an optional part is ambiguous")
            if m["lit"]:
                cur.append(_Lit(m["lit"]))
                continue
            kind = kind_of(m["posk"])
            if kind is ArgKind.WORD and not any(
                    isinstance(i, _Pos) and i.kind is ArgKind.KEY for i in _walk(top + cur)):
                raise self._fail("a WORD argument needs a KEY argument before it")
            cur.append(_Pos(field_of(m["pos"], in_group), kind))
        if cur is not top:
            raise self._fail("'[' is never closed")
        return tuple(top)

    def _index(self, it: _Item, out: list) -> None:
        if isinstance(it, _Key):
            self.keys[it.key] = it
        elif isinstance(it, _Group):
            for sub in it.items:
                if isinstance(sub, _Key):
                    self.keys[sub.key] = sub
            pos = tuple(s for s in it.items if not isinstance(s, _Key))
            if pos:
                out.append(_Group(pos))
        else:
            out.append(it)

    # -- parsing ------------------------------------------------------------------------

    def match(self, pos: list, kws: list, end_col: int, names: "_Names") -> Op:
        """The op for these argument tokens (positional words, key=value words)."""
        done: dict = {}
        i = 0

        def take(entry) -> None:
            nonlocal i
            if i >= len(pos):
                what = entry.word if isinstance(entry, _Lit) else entry.field.upper()
                raise _Reject(f"too few arguments for {self.name}: got {len(pos)}, {what} is "
                              f"missing (usage: {self.usage})", end_col)
            tok = pos[i]
            i += 1
            if isinstance(entry, _Lit):
                if tok.text != entry.word:
                    raise _Reject(f"expected '{entry.word}' here, got '{tok.text}' "
                                  f"(usage: {self.usage})", tok.col)
                return
            done[entry.field] = self._arg(entry.field, entry.kind, tok, done, names)

        for k, entry in enumerate(self.positional):
            if isinstance(entry, _Flag):
                if i < len(pos) and pos[i].text == entry.word:
                    done[entry.field] = True
                    i += 1
            elif isinstance(entry, _Group):
                if i < len(pos) and pos[i].text not in self.later_flags[k + 1]:
                    for sub in entry.items:
                        take(sub)
            else:
                take(entry)
        if i < len(pos):
            extra = pos[i]
            hint = _did_you_mean(extra.text, self.later_flags[0])
            raise _Reject(f"too many arguments for {self.name}: got {len(pos)}, "
                          f"'{extra.text}' is extra{hint} (usage: {self.usage})", extra.col)
        for tok in kws:
            key, _, word = tok.text.partition("=")
            spec = self.keys.get(key)
            if spec is None:
                known = ", ".join(f"{k}=" for k in self.keys) or "none"
                raise _Reject(f"unknown argument '{key}=' for {self.name} (its keyword "
                              f"arguments: {known}){_did_you_mean(key, self.keys)}", tok.col)
            if spec.field in done:
                raise _Reject(f"'{key}=' is given twice: keep one", tok.col)
            vtok = _Tok(word, tok.col + len(key) + 1)
            if not word:
                raise _Reject(f"'{key}=' needs a value (usage: {self.usage})", vtok.col)
            done[spec.field] = self._arg(spec.field, spec.kind, vtok, done, names)
        for spec in self.keys.values():
            if not spec.optional and spec.field not in done:
                raise _Reject(f"{self.name} needs '{spec.key}=' (usage: {self.usage})",
                              end_col)
        return self.cls(**done)

    def _arg(self, field: str, kind: ArgKind, tok: _Tok, done: dict, names: "_Names"):
        v = _CODECS[kind].parse(tok, field, done)
        if kind.is_name:
            if field == self.cls.DEFINES:
                names.check_new(kind, v, tok.col)
            else:
                names.check_exists(kind, v, tok.col)
        return v

    # -- printing ------------------------------------------------------------------------

    def emit(self, op: Op) -> list[str]:
        out: list[str] = []
        for it in self.items:
            self._emit(it, op, out)
        return out

    def _emit(self, it: _Item, op: Op, out: list) -> None:
        what = f"{self.name}.{getattr(it, 'field', '')}"
        if isinstance(it, _Pos):
            out.append(_CODECS[it.kind].format(getattr(op, it.field), what, op))
        elif isinstance(it, _Lit):
            out.append(it.word)
        elif isinstance(it, _Flag):
            v = getattr(op, it.field)
            if not isinstance(v, bool):
                raise ValueError(f"{what}={v!r} must be a bool")
            if v:
                out.append(it.word)
        elif isinstance(it, _Key):
            v = getattr(op, it.field)
            if v is not None or not it.optional:
                out.append(f"{it.key}={_CODECS[it.kind].format(v, what, op)}")
        else:
            pos = [getattr(op, s.field) for s in it.items if isinstance(s, _Pos)]
            present = any(v is not None for v in pos)
            if present and None in pos:
                raise ValueError(f"{self.name}: {' '.join(_usage_words(it.items))} go together: set all "
                                 f"or none of them, got {pos}")
            for sub in it.items:
                if isinstance(sub, _Key) or present:
                    self._emit(sub, op, out)


def _usage_words(items) -> list[str]:
    """Usage text of SYNTAX items: fields in capitals, optional parts in brackets."""
    words = []
    for it in items:
        if isinstance(it, _Pos):
            words.append(it.field.upper())
        elif isinstance(it, _Lit):
            words.append(it.word)
        elif isinstance(it, _Key):
            words.append(f"{it.key}={it.field.upper()}")
        elif isinstance(it, _Flag):
            words.append(f"[{it.word}]")
        else:
            words.append("[" + " ".join(_usage_words(it.items)) + "]")
    return words


def _walk(items):
    for it in items:
        if isinstance(it, _Group):
            yield from it.items
        else:
            yield it


# --- the table -----------------------------------------------------------------------------

# First index of each counted name kind (names made by an op that CREATES them and
# defines no name itself): p0 exists at start, pins and subscriptions start at 1.
_FIRST_INDEX = {ArgKind.PROC: 0, ArgKind.PIN: 1, ArgKind.SUB: 1}


def _compile_table():
    by_name: dict[str, list[_Syntax]] = {}
    by_cls: dict[type, _Syntax] = {}
    creators: dict[ArgKind, str] = {}       # counted kind -> op name that creates it
    definers: dict[ArgKind, _Syntax] = {}   # defined kind -> op that defines it
    for cls in ALL_OPS:
        syn = _Syntax(cls)
        by_cls[cls] = syn
        by_name.setdefault(syn.name, []).append(syn)
        if cls.DEFINES is not None:
            kinds = [it.kind for it in _walk(syn.items)
                     if getattr(it, "field", None) == cls.DEFINES]
            if kinds != [cls.CREATES]:
                raise syn._fail(f"DEFINES={cls.DEFINES!r} must name one argument of kind "
                                f"CREATES={cls.CREATES}")
            definers[cls.CREATES] = syn
        elif cls.CREATES is not None:
            if cls.CREATES not in _FIRST_INDEX:
                raise syn._fail(f"CREATES={cls.CREATES} has no first index in "
                                f"fuzz/text.py _FIRST_INDEX")
            creators[cls.CREATES] = syn.name
    for name, syns in by_name.items():
        keys = [s.dispatch for s in syns]
        if len(syns) > 1 and (None in keys or len(set(keys)) != len(keys)):
            raise syns[0]._fail(f"{len(syns)} ops share the name {name!r}: each needs a "
                                f"distinct literal word before any optional part")
    return by_name, by_cls, creators, definers


_BY_NAME, _BY_CLS, _CREATORS, _DEFINERS = _compile_table()


class _Names:
    """Which names exist at the current line (SPEC §3: creation order, counted optimistically)."""

    def __init__(self) -> None:
        self.next = {k: 1 for k in _CREATORS}                  # next index to be created
        self.defined: dict[ArgKind, dict[str, int]] = {k: {} for k in _DEFINERS}  # -> line

    def check_exists(self, kind: ArgKind, name: str, col: int) -> None:
        noun, p = _noun(kind), kind.value
        if kind in self.next:
            first, idx, nxt = _FIRST_INDEX[kind], int(name[1:]), self.next[kind]
            if idx < first:
                raise _Reject(f"{noun} '{name}' never exists: {noun}s are numbered from "
                              f"{p}{first}", col)
            if idx >= nxt:
                have = (f"{p}{first}..{p}{nxt - 1} exist here" if nxt - 1 > first
                        else f"only {p}{first} exists here" if nxt - 1 == first
                        else f"no {noun} exists here")
                raise _Reject(f"{noun} '{name}' does not exist yet: {have}, and each "
                              f"'{_CREATORS[kind]}' line creates the next one", col)
        elif kind in self.defined and name not in self.defined[kind]:
            have = ", ".join(self.defined[kind]) or "none"
            raise _Reject(f"{noun} '{name}' is not defined yet: define it first with "
                          f"'{self._define_usage(kind, name)}' "
                          f"(defined here: {have})", col)

    @staticmethod
    def _define_usage(kind: ArgKind, name: str) -> str:
        syn = _DEFINERS[kind]
        return syn.usage.replace(syn.cls.DEFINES.upper(), name, 1)

    def check_new(self, kind: ArgKind, name: str, col: int) -> None:
        where = self.defined[kind].get(name)
        if where is not None:
            taken = {int(n[1:]) for n in self.defined[kind]}
            free = next(i for i in range(len(taken) + 1) if i not in taken)
            raise _Reject(f"{_noun(kind)} '{name}' is already defined on line {where}: pick "
                          f"a new name such as {kind.value}{free}", col)

    def record(self, op: Op, line: int) -> None:
        """Names the op creates become usable from the next line on."""
        cls = type(op)
        if cls.DEFINES is not None:
            self.defined[cls.CREATES][getattr(op, cls.DEFINES)] = line
        elif cls.CREATES is not None:
            self.next[cls.CREATES] += 1


# --- parsing ---------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\S+")
_ERRNO_LIKE = re.compile(r"E[A-Z0-9]+")


def _tokens(text: str) -> list[_Tok]:
    return [_Tok(m.group(0), m.start() + 1) for m in _TOKEN_RE.finditer(text)]


def _parse_op(toks: list[_Tok], end_col: int, names: _Names) -> Op:
    head, args = toks[0], toks[1:]
    syns = _BY_NAME.get(head.text)
    if syns is None:
        hint = _did_you_mean(head.text, _BY_NAME) or " (the ops are SPEC §3's table)"
        raise _Reject(f"unknown op '{head.text}'{hint}", head.col)
    # No positional kind accepts '=', so every key=value word is a keyword argument.
    kws = [t for t in args if "=" in t.text]
    pos = [t for t in args if "=" not in t.text]
    syn = syns[0]
    if len(syns) > 1:
        syn = next((s for s in syns if s.dispatch[0] < len(pos)
                    and pos[s.dispatch[0]].text == s.dispatch[1]), None)
        if syn is None:
            words = " or ".join(f"'{s.dispatch[1]}'" for s in syns)
            usage = " | ".join(s.usage for s in syns)
            idx = syns[0].dispatch[0]
            if idx >= len(pos):
                raise _Reject(f"too few arguments for {head.text}: got {len(pos)}, {words} "
                              f"is missing (usage: {usage})", end_col)
            bad = pos[idx]
            hint = _did_you_mean(bad.text, [s.dispatch[1] for s in syns])
            raise _Reject(f"{head.text} needs {words} as argument {idx + 1}, got "
                          f"'{bad.text}'{hint} (usage: {usage})", bad.col)
    return syn.match(pos, kws, end_col, names)


def _parse_expect(text: str, col: int) -> Result:
    t = text.strip()
    if not t:
        raise _Reject("empty expectation after '->': write a result (ok, 0x11, EINVAL, "
                      "SEGV, p1, ...) or drop the arrow", col)
    if _ERRNO_LIKE.fullmatch(t) and t not in Errno.__members__:
        raise _Reject(_one_of("errno", t, Errno.__members__), col)
    return Result.parse(t)


def _header_version(stmt: Stmt) -> Optional[str]:
    """The version word of a `# mmdiff vN` line, None if the line is no header."""
    if stmt.op is not None or stmt.comment is None:
        return None
    words = stmt.comment.split()
    return words[1] if len(words) == 2 and words[0] == "mmdiff" else None


def _parse_line(raw: str, n: int, names: _Names) -> Stmt:
    hash_at = raw.find("#")
    body = raw if hash_at < 0 else raw[:hash_at]
    comment = None if hash_at < 0 else raw[hash_at + 1:]
    arrow = body.find("->")
    toks = _tokens(body if arrow < 0 else body[:arrow])
    expect = None
    if arrow >= 0:
        rest = body[arrow + 2:]
        col = arrow + 3 + (len(rest) - len(rest.lstrip()))
        if not toks:
            raise _Reject("expectation '->' without an op: put it after the op it "
                          "checks", arrow + 1)
    if not toks:
        return Stmt(comment=comment, line=n)
    end_col = toks[-1].col + len(toks[-1].text) + 1
    op = _parse_op(toks, end_col, names)
    if arrow >= 0:
        expect = _parse_expect(body[arrow + 2:], col)
    names.record(op, n)
    return Stmt(op=op, expect=expect, comment=comment, line=n)


def parse(text: str, source: str = "<string>", strict: bool = True) -> Prog:
    """Parse `.mmd` text into a Prog; raises ParseError at the first bad line.

    strict: the first line must be the ``# mmdiff v1`` header (lenient mode, for old
    corpus files, accepts its absence; a header naming another version is refused
    in both modes).
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()   # the final newline ends the last line, it does not start one
    names = _Names()
    stmts: list[Stmt] = []
    for n, line in enumerate(lines, 1):
        raw = line[:-1] if line.endswith("\r") else line
        try:
            stmt = _parse_line(raw, n, names)
        except _Reject as e:
            raise ParseError(source, n, e.col, e.reason, raw) from None
        if n == 1:
            version = _header_version(stmt)
            if version is not None and version != _HEADER_WORDS[1]:
                raise ParseError(source, 1, raw.find("mmdiff") + 1,
                                 f"unsupported format version '{version}': this parser "
                                 f"reads '{HEADER}'", raw)
        stmts.append(stmt)
    if strict and (not stmts or _header_version(stmts[0]) is None):
        first = lines[0].rstrip("\r") if lines else ""
        raise ParseError(source, 1, 1, f"missing header: the first line must be '{HEADER}' "
                         f"(add it, or parse with strict=False for old files)", first)
    return Prog(tuple(stmts), source)


def parse_file(path, strict: bool = True) -> Prog:
    """Parse a `.mmd` file; unreadable or non-UTF-8 files raise ParseError with line 0."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ParseError(source, 0, 0, f"cannot read the file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ParseError(source, 0, 0, f"not UTF-8: byte 0x{data[e.start]:02x} on line "
                         f"{line} (byte offset {e.start}); .mmd files are UTF-8 text") from None
    return parse(text, source, strict)


# --- printing --------------------------------------------------------------------------------

def format_op(op: Op) -> str:
    """The canonical text of one op (rules in the module docstring); ValueError if unprintable."""
    syn = _BY_CLS.get(type(op))
    if syn is None:
        raise ValueError(f"{op!r} is not an op of reference.ops.ALL_OPS")
    return " ".join([syn.name] + syn.emit(op))


def format_result(r: Result) -> str:
    return str(r)


def format_stmt(stmt: Stmt) -> str:
    """One line: op, `` -> EXPECT``, `` #COMMENT`` (each part only when present)."""
    parts = []
    if stmt.op is not None:
        parts.append(format_op(stmt.op))
    if stmt.expect is not None:
        if stmt.op is None:
            raise ValueError(f"statement {stmt!r} has an expectation but no op")
        want = format_result(stmt.expect)
        if "#" in want or "\n" in want or not want.strip():
            raise ValueError(f"expectation {want!r} cannot be written on one line "
                             f"before a comment")
        parts.append("-> " + want)
    if stmt.comment is not None:
        if "\n" in stmt.comment or stmt.comment.endswith("\r"):
            raise ValueError(f"comment {stmt.comment!r} must fit on one line")
        parts.append("#" + stmt.comment)
    return " ".join(parts)


def format_prog(prog: Prog) -> str:
    """The whole file, with the ``# mmdiff v1`` header first and a final newline."""
    lines = [format_stmt(s) for s in prog.stmts]
    if not prog.stmts or _header_version(prog.stmts[0]) != _HEADER_WORDS[1]:
        lines.insert(0, HEADER)
    return "\n".join(lines) + "\n"
