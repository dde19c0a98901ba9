"""What the differ compares (SPEC §4) and the record of the first difference found.

A ``Divergence`` is data: the runner fills one in, the report prints it, the
minimizer keeps its ``kind`` fixed while shrinking. Results are compared exactly
(both models return canonical ``Result`` objects); states are compared as the
flat ``{path: text}`` maps of ``reference.state.canonicalize``.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Optional

from mmdiff.fuzz.prog import Stmt
from mmdiff.reference.results import Result

# A state field missing on one side is shown as this text.
MISSING = "-"


class DivergenceKind(enum.Enum):
    """How the two runs (or a run and its expectations) parted ways."""

    RESULT = "result"        # the two models returned different results for one op
    STATE = "state"          # canonical snapshots differ after an op
    EXPECT = "expect"        # a model's result is not the `-> EXPECT` of the statement
    CRASH = "crash"          # a model raised: always a model bug
    INVARIANT = "invariant"  # a model's check_invariants() raised InvariantError


# (path, left text, right text); MISSING where one side lacks the path.
FieldDiff = tuple[str, str, str]


@dataclass(frozen=True)
class Divergence:
    """The first difference of a run, with everything the report needs to replay it.

    ``left``/``right`` are the two models' results for the op (None where a model
    crashed before returning); for EXPECT they are the expected and the got result.
    ``side`` names the model that crashed, broke an invariant or missed the
    expectation; it is None for RESULT and STATE, which involve both.
    """

    kind: DivergenceKind
    index: int                       # 0-based index of the op among the program's ops
    stmt: Stmt                       # the statement holding the op (line, expectation)
    left: Optional[Result] = None
    right: Optional[Result] = None
    fields: tuple[FieldDiff, ...] = ()  # differing state fields, in path order (STATE)
    traceback: Optional[str] = None  # formatted traceback (CRASH)
    side: Optional[str] = None       # "reference" / "impl" (CRASH, INVARIANT, EXPECT)
    detail: str = ""                 # one-line cause: exception or invariant message

    def __str__(self) -> str:
        where = f"op #{self.index}" + (f" (line {self.line})" if self.line else "")
        who = f" [{self.side}]" if self.side else ""
        return f"{self.kind.value} divergence at {where}{who}: {self.detail}"

    @property
    def line(self) -> int:
        """1-based source line of the divergent op (0 for programs built in code)."""
        return self.stmt.line


def diff_results(left: Result, right: Result) -> bool:
    """True if two results differ (SPEC §4.1: kind and canonical payload must be equal)."""
    return left != right


def expectation_met(expect: Result, got: Result) -> bool:
    """True if ``got`` satisfies ``-> expect``.

    Expectations are text, so a result also meets one when its printed form
    parses back to it (a model returning the text ``p1`` for the name p1).
    """
    if got == expect:
        return True
    try:
        return Result.parse(str(got)) == expect
    except ValueError:   # an empty printed result never meets an expectation
        return False


def diff_states(a: dict[str, str], b: dict[str, str]) -> list[FieldDiff]:
    """The fields whose text differs, in path order; a path one side lacks shows MISSING."""
    out = []
    for path in sorted(a.keys() | b.keys(), key=path_order):
        left, right = a.get(path, MISSING), b.get(path, MISSING)
        if left != right:
            out.append((path, left, right))
    return out


_SECTION = {"p": 0, "h": 1, "m": 2, "f": 3, "d": 4, "v": 5}
_TOKEN_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+|[^0-9]+")


def path_order(path: str) -> tuple:
    """Sort key matching canonicalize's layout: processes, pins, ..., files, then frames.

    Within a section numbers sort numerically (``p2`` before ``p10``, ``0x20``
    before ``0x100``) and a process's VMAs come before its pages.
    """
    head = path.split(" ", 1)[0]
    if head == "frame":
        section = 9
    elif head[:1] in _SECTION and head[1:].isdigit():
        section = _SECTION[head[:1]]
    else:
        section = 8
    vmas_first = 0 if " vma[" in path else 1
    tokens = [(1, int(tok, 0), "") if tok[0].isdigit() else (0, 0, tok)
              for tok in _TOKEN_RE.findall(path)]
    return (section, tokens[:2], vmas_first, tokens)
