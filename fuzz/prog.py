"""Programs as data: a Prog is a tuple of statements, one per text line (syzkaller prog.go).

A statement holds at most one op, its optional `-> EXPECT` and the line's comment,
so a parsed file prints back unchanged (blank and comment-only lines are
statements without an op).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from mmdiff.reference.ops import Op
from mmdiff.reference.results import Result


@dataclass(frozen=True)
class Stmt:
    op: Optional[Op] = None
    expect: Optional[Result] = None
    comment: Optional[str] = None   # text after '#', without the '#'
    line: int = 0                   # 1-based source line (0 when built in code)


@dataclass(frozen=True)
class Prog:
    stmts: tuple[Stmt, ...] = ()
    source: str = "<prog>"          # file name or a label, for messages

    @staticmethod
    def of(ops, source: str = "<prog>") -> "Prog":
        """A program from bare ops (no expectations, no comments)."""
        return Prog(tuple(Stmt(op=o) for o in ops), source)

    def ops(self) -> list[Op]:
        return [s.op for s in self.stmts if s.op is not None]

    def op_stmts(self) -> Iterator[Stmt]:
        return (s for s in self.stmts if s.op is not None)

    def __len__(self) -> int:
        return sum(1 for s in self.stmts if s.op is not None)
