"""Findings on disk: ``<dir>/<signature>.mmd``, one replayable program per bug class.

A finding is the minimized program in the .mmd format (SPEC §3) under a header
comment block saying what diverged and the exact command that replays it, so
the file can be dropped into corpus/ unchanged. Writes are atomic (temp file in
the same directory, fsync, os.replace): a crash or a concurrent fuzz job never
leaves a truncated finding, and an existing finding is only replaced by a
shorter program for the same signature (the dedup rule of `mmdiff fuzz`).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from mmdiff.fuzz.differ import Divergence
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.fuzz.signature import signature
from mmdiff.fuzz.text import ParseError, format_op, format_prog, parse_file

MAX_DIFF_LINES = 20     # state diff rows kept in the header; the rest are counted
_LOCK_NAME = ".findings.lock"


def _one_line(text: object) -> str:
    """Header comments are single lines: a newline in a message would end the comment."""
    return " ".join(str(text).split())


def replay_command(path: os.PathLike | str, mutant: Optional[str] = None) -> str:
    """The `mmdiff run` line that replays a finding (exit 1 while the bug is there)."""
    return f"mmdiff run {'--mutant ' + mutant + ' ' if mutant else ''}{os.fspath(path)}"


def header_lines(prog: Prog, div: Divergence, *, path: os.PathLike | str,
                 seed: Optional[int] = None, mutant: Optional[str] = None,
                 date: Optional[str] = None) -> list[str]:
    """The comment block (without '#') above a finding's program."""
    sig = signature(div, prog)
    when = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = [f" signature: {sig}",
           f" divergence: {div.kind.value} at op #{div.index}: {format_op(div.stmt.op)}",
           f" results: reference {div.left if div.left is not None else '(none)'} | "
           f"impl {div.right if div.right is not None else '(none)'}"]
    if div.side:
        out.append(f" side: {div.side}")
    if div.detail:
        out.append(f" detail: {_one_line(div.detail)}")
    if div.fields:
        out.append(f" state diff ({len(div.fields)} field(s); path: reference | impl):")
        out += [f"   {p}: {_one_line(l)} | {_one_line(r)}"
                for p, l, r in div.fields[:MAX_DIFF_LINES]]
        if len(div.fields) > MAX_DIFF_LINES:
            out.append(f"   ... and {len(div.fields) - MAX_DIFF_LINES} more")
    out += [f" seed: {seed if seed is not None else '-'}",
            f" mutant: {mutant or '-'}",
            f" date: {when}",
            f" replay: {replay_command(path, mutant)}"]
    return out


def format_finding(prog: Prog, div: Divergence, *, path: os.PathLike | str,
                   seed: Optional[int] = None, mutant: Optional[str] = None,
                   date: Optional[str] = None) -> str:
    """The whole .mmd text of a finding: `# mmdiff v1`, the header block, the program."""
    head = [Stmt(comment=" mmdiff v1")]
    head += [Stmt(comment=c) for c in header_lines(prog, div, path=path, seed=seed,
                                                   mutant=mutant, date=date)]
    body = [Stmt(op=st.op, expect=st.expect) for st in prog.op_stmts()]
    return format_prog(Prog(tuple(head + body), prog.source))


def write_atomic(path: os.PathLike | str, text: str) -> None:
    """Replace ``path`` by ``text`` all at once: temp file in the same dir, fsync, os.replace.

    Guarantees: a) readers see the old file or the new one, never a mix or a
    truncated file; b) on any failure the old file is intact and the temp file
    is removed; c) the directory entry is synced, so the new file survives a crash.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """Serialize compare-and-replace between fuzz jobs writing the same directory."""
    fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                       # closing drops the flock


def _existing_ops(path: Path) -> Optional[int]:
    """Op count of the finding at ``path``; None if there is none or it does not parse."""
    if not path.exists():
        return None
    try:
        return len(parse_file(path, strict=False))
    except ParseError:
        return None                        # a corrupt finding is replaced by a good one


def write_finding(directory: os.PathLike | str, prog: Prog, div: Divergence, *,
                  seed: Optional[int] = None, mutant: Optional[str] = None) -> Path:
    """Write ``prog`` (diverging as ``div``) as ``<directory>/<signature>.mmd``; its path.

    Note: an existing finding with the same signature is kept when its program
    is no longer than ``prog`` (the file is then left untouched); otherwise it
    is replaced atomically. The directory is created if needed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{signature(div, prog)}.mmd"
    with _dir_lock(directory):
        have = _existing_ops(path)
        if have is not None and have <= len(prog):
            return path
        write_atomic(path, format_finding(prog, div, path=path, seed=seed, mutant=mutant))
    return path
