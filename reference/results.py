"""Op results: the first observable the differ compares (SPEC §4.1).

A result is one of a few kinds, each printed canonically (numbers in hex) so
that `-> 17` and `-> 0x11` compare equal once parsed. Both models return these
objects; the impl's batch API returns (kind, payload) integer pairs that
``Result.from_code`` turns back into them.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Union


class Errno(enum.IntEnum):
    """The errno values an op may return (Linux x86-64 numbers)."""

    EPERM = 1
    ENOENT = 2
    ESRCH = 3
    EIO = 5
    ENXIO = 6
    EBADF = 9
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    EINVAL = 22
    ENOSPC = 28
    ENOSYS = 38
    EOVERFLOW = 75
    EOPNOTSUPP = 95
    EHWPOISON = 133


class Signal(enum.IntEnum):
    """A fault the access raised instead of completing (FAULT: a GPU page fault)."""

    SEGV = 11
    BUS = 7
    FAULT = 1000


class ResultKind(enum.IntEnum):
    OK = 0        # "ok"
    VALUE = 1     # a number: page contents, a VPN, a count
    ERRNO = 2     # e.g. "EINVAL"
    SIGNAL = 3    # "SEGV" / "BUS" / "FAULT"
    NAME = 4      # a created name: "p1", "h2", "m1"
    TEXT = 5      # anything else: "yes", "anon pte rw dirty excl", op lists


_NAME_RE = re.compile(r"^[phmfdv][0-9]+$")
# A number inside a word (p1, m2) is not one; after `=` it is (clean_record's `bits=1,3`).
_NUM_RE = re.compile(r"(?<![\w])(0[xX][0-9a-fA-F]+|[0-9]+)(?![\w])")


def _hex_numbers(text: str) -> str:
    """Canonical text: every standalone number printed in hex, whitespace folded."""
    text = " ".join(text.split())
    return _NUM_RE.sub(lambda m: hex(int(m.group(0), 0)), text)


@dataclass(frozen=True)
class Result:
    """One op's result. Construct with the helpers below (``ok()``, ``value(n)``, ...)."""

    kind: ResultKind
    payload: Union[int, str, None] = None

    def __str__(self) -> str:
        k = self.kind
        if k is ResultKind.OK:
            return "ok"
        if k is ResultKind.VALUE:
            return hex(self.payload)  # type: ignore[arg-type]
        if k is ResultKind.ERRNO:
            return Errno(self.payload).name  # type: ignore[arg-type]
        if k is ResultKind.SIGNAL:
            return Signal(self.payload).name  # type: ignore[arg-type]
        return str(self.payload)

    @property
    def is_error(self) -> bool:
        """An errno or a signal: the op did not do its work (and created no name)."""
        return self.kind in (ResultKind.ERRNO, ResultKind.SIGNAL)

    @staticmethod
    def parse(text: str) -> "Result":
        """Parse an expectation or a printed result; raises ValueError if empty."""
        t = " ".join(text.split())
        if not t:
            raise ValueError("empty result")
        if t == "ok":
            return OK
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|[0-9]+", t):
            return value(int(t, 0))
        if t in Errno.__members__:
            return errno(Errno[t])
        if t in Signal.__members__:
            return signal(Signal[t])
        if _NAME_RE.match(t):
            return name(t)
        return text_result(t)


OK = Result(ResultKind.OK)


def ok() -> Result:
    return OK


def value(v: int) -> Result:
    return Result(ResultKind.VALUE, v & ((1 << 64) - 1))


def errno(e: Errno) -> Result:
    return Result(ResultKind.ERRNO, int(e))


def signal(s: Signal) -> Result:
    return Result(ResultKind.SIGNAL, int(s))


def name(n: str) -> Result:
    return Result(ResultKind.NAME, n)


def text_result(t: str) -> Result:
    return Result(ResultKind.TEXT, _hex_numbers(t))


ENOSYS = errno(Errno.ENOSYS)
