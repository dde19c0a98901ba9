"""Human-readable divergence reports and one-line run summaries.

A report answers: where (file:line, op index and text), what (both results
and the differing state fields side by side), why (traceback, invariant
message) and how to replay it: the program prefix up to the divergent op in
the .mmd format, ready to drop into corpus/ unchanged (STYLE §5).
"""
from __future__ import annotations

from typing import Optional, Sequence

from mmdiff.fuzz.differ import Divergence, DivergenceKind
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.fuzz.runner import RunOutcome
from mmdiff.fuzz.text import format_op, format_prog
from mmdiff.reference.results import Result

HEADER = "# mmdiff v1"
MAX_FIELD_ROWS = 60      # state rows shown; the rest are counted (frame renames cascade)


def _location(prog: Prog, div: Divergence) -> str:
    return f"{prog.source}:{div.line}" if div.line else prog.source


def _cell(r: Optional[Result], twin: Optional[Result]) -> str:
    """A result as printed; its repr when it prints like a different twin (kind mismatch)."""
    if r is None:
        return "(no result)"
    if twin is not None and r != twin and str(r) == str(twin):
        return f"{r} ({r.kind.name})"
    return str(r)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows in aligned columns; the last column is not padded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: Sequence[str]) -> str:
        cells = [c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]
        return (indent + "  ".join(cells)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _results_block(div: Divergence, sides: Sequence[str]) -> list[str]:
    if div.kind is DivergenceKind.EXPECT:
        return _table(["", "expected", div.side or sides[0]],
                      [["result", _cell(div.left, div.right), _cell(div.right, div.left)]])
    if div.kind in (DivergenceKind.CRASH, DivergenceKind.INVARIANT):
        return [f"  {div.side} {'crashed' if div.kind is DivergenceKind.CRASH else 'broke an invariant'}: "
                f"{div.detail}"]
    rows = [["result", _cell(div.left, div.right), _cell(div.right, div.left)]]
    if div.stmt.expect is not None:
        rows.append(["expected", str(div.stmt.expect), str(div.stmt.expect)])
    return _table(["", *sides[:2]], rows)


def _fields_block(div: Divergence, sides: Sequence[str]) -> list[str]:
    shown = div.fields[:MAX_FIELD_ROWS]
    out = [f"state fields that differ after op #{div.index} ({len(div.fields)}):"]
    out += _table(["path", *sides[:2]], [list(f) for f in shown])
    if len(div.fields) > len(shown):
        out.append(f"  ... and {len(div.fields) - len(shown)} more")
    return out


def prefix_stmts(prog: Prog, div: Divergence) -> tuple[Stmt, ...]:
    """Statements up to and including the divergent op (comments between ops kept)."""
    seen = -1
    for i, stmt in enumerate(prog.stmts):
        if stmt.op is not None:
            seen += 1
            if seen == div.index:
                return prog.stmts[:i + 1]
    raise ValueError(f"divergence op index {div.index} is past the program's {len(prog)} ops "
                     f"({prog.source}): the divergence belongs to another program")


def reproducer(prog: Prog, div: Divergence) -> str:
    """The .mmd text replaying the divergence: header, a note, the program prefix."""
    text = format_prog(Prog(prefix_stmts(prog, div), prog.source))
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        lines.insert(0, HEADER)
    lines.insert(1, f"# reproducer: {div.kind.value} divergence at op #{div.index} "
                    f"of {_location(prog, div)}")
    return "\n".join(lines) + "\n"


def format_report(outcome: RunOutcome) -> str:
    """The full report of a run's divergence (empty string when the run agreed)."""
    div = outcome.divergence
    if div is None:
        return ""
    prog, sides = outcome.prog, outcome.sides
    out = [f"== {div.kind.value.upper()} divergence: {_location(prog, div)}: "
           f"op #{div.index}: {format_op(div.stmt.op)}"]
    out += _results_block(div, sides)
    if div.fields:
        out += _fields_block(div, sides)
    if div.traceback:
        out.append(f"traceback ({div.side}):")
        out += ["  " + ln for ln in div.traceback.rstrip().splitlines()]
    out.append(f"reproducer (ops #0..#{div.index}; save as corpus/<name>.mmd):")
    out.append(reproducer(prog, div).rstrip())
    return "\n".join(out) + "\n"


def summary_line(outcome: RunOutcome) -> str:
    """One line per program: ``file: ok (N ops)`` or where and how it diverged."""
    n = len(outcome.prog)
    div = outcome.divergence
    if div is None:
        return f"{outcome.prog.source}: ok ({n} ops, {'/'.join(outcome.sides)})"
    who = f" [{div.side}]" if div.side else ""
    return (f"{_location(outcome.prog, div)}: {div.kind.value.upper()}{who} at op "
            f"#{div.index} of {n}: {format_op(div.stmt.op)}")
