"""Shrink a diverging program while it keeps failing the same way (syzkaller prog/minimization.go).

``minimize(prog, still_fails)`` runs a short plan of named passes over an opaque
predicate, always on copies; a candidate replaces the current best only when
``still_fails(candidate)`` holds. The CLI's predicate also pins the signature
(``signature(divergence_of(p), p) == target``), so no pass can trade the bug
for a *different* mismatch (STYLE §5). The plan repeats until a whole round
changes nothing (a fixed point) or the timeout passes:

  1. drop the tail    shortest failing prefix, by bisection (a divergence at op d
                      fails every prefix longer than d: the runner stops there)
  2. ddmin            remove chunks of ops, halving the chunk size down to single
                      ops; a round that ends with no removal leaves the result
                      1-minimal: removing any single op loses the divergence
  3. drop objects     each fork/pin/mirror/file/vm with every op that uses it
                      (after ddmin: each try reruns the whole program, cheap once
                      it is small)
  4. merge procs      run each forked child's ops in its parent, drop the fork
  5. reset args       values to 1, page counts to 1, offsets to 0, no populate,
                      VPNs rebased so the lowest is 0x100, then each VPN toward the
                      lowest one used, page counts bisected; expectations dropped
  6. rename           files and VMs to the lowest free names (f0, f1, ...)

Names stay valid through removals (``drop_ops``): removing the op that created
``pK`` (or ``hK``, ``mK``) renames ``p(K+1)``... down by one, and every op using a
removed name is removed with it, since the parser numbers names by creating
line (SPEC §3).
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Callable, Iterable, Optional

import structlog

from mmdiff.fuzz.differ import Divergence
from mmdiff.fuzz.prog import Prog, Stmt
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.reference import ops as _ops
from mmdiff.reference import results as _results
from mmdiff.reference.ops import ALL_OPS, ArgKind, MapFlag, Op

StillFails = Callable[[Prog], bool]

HEADER = Stmt(comment=" mmdiff v1")   # printed as the `# mmdiff v1` first line
CANONICAL_VPN = 0x100                 # where rebased addresses start (above MMAP_MIN_PAGES)
_PMD_ALIGN = _ops.HPAGE_PMD_NR        # fallback rebase keeps 2 MiB alignment (THP rules)


def divergence_of(prog: Prog, mutant: Optional[str] = None) -> Optional[Divergence]:
    """The first divergence of ``prog``: reference vs ImplMachine(mutant), every check on.

    States are compared after every op (check_every=1) so that a divergence is
    reported at the op that caused it, which keeps the signature stable while the
    program shrinks.
    """
    from mmdiff.impl import ImplMachine
    from mmdiff.reference.machine import ReferenceMachine
    impl = ImplMachine(mutant=mutant) if mutant else ImplMachine()
    return run_lockstep(prog, ReferenceMachine(), impl, check_every=1,
                        check_invariants=True).divergence


# --- names: which fields hold names, creation order ---------------------------------------

_FIELD_RE = re.compile(r"([a-z_0-9]+):([A-Z]+)")


def _name_fields(cls: type) -> tuple[tuple[str, ArgKind], ...]:
    """The (field, name kind) pairs of an op class, read from its SYNTAX (reference/ops.py)."""
    out = []
    for fname, kind in _FIELD_RE.findall(cls.SYNTAX):
        k = ArgKind[kind]
        if k.is_name:
            out.append((fname, k))
    return tuple(out)


_NAME_FIELDS = {cls: _name_fields(cls) for cls in ALL_OPS}
_VPN_FIELDS = ("vpn", "vpn2")            # CPU addresses in pages (GPU `va` is left alone)
_VALUE_FIELDS = ("value", "add")         # 64-bit contents: reset to 1
_ZERO_FIELDS = ("pgoff", "index", "off")  # offsets: reset to 0


def _created_name(kind: ArgKind, n: int) -> str:
    return f"{kind.value}{n}"            # p1, h1, m1: p0 exists from the start


def _renamed(op: Op, names: dict[tuple[ArgKind, str], Optional[str]]) -> Optional[Op]:
    """``op`` with its name arguments mapped; None if it uses a removed name."""
    changes = {}
    for fname, kind in _NAME_FIELDS[type(op)]:
        if fname == type(op).DEFINES:
            continue
        old = getattr(op, fname)
        if old is None or (kind, old) not in names:
            continue
        new = names[(kind, old)]
        if new is None:
            return None
        if new != old:
            changes[fname] = new
    return dataclasses.replace(op, **changes) if changes else op


def drop_ops(prog: Prog, drop: Iterable[int]) -> Prog:
    """``prog`` without the ops at indexes ``drop`` (0-based among ops), names kept valid.

    Guarantees: a) an op that uses a name created by a dropped op is dropped too
    (cascading: a dropped fork takes its child's ops along); b) names created
    later (p/h/m, numbered by creating line) are renumbered so the text parses;
    c) comments and blank lines are dropped, expectations stay on their op.
    """
    drop = set(drop)
    names: dict[tuple[ArgKind, str], Optional[str]] = {}
    old_count: dict[ArgKind, int] = {}
    new_count: dict[ArgKind, int] = {}
    out: list[Stmt] = []
    for i, st in enumerate(prog.op_stmts()):
        op = None if i in drop else _renamed(st.op, names)
        cls = type(st.op)
        if cls.DEFINES is not None:              # file/vm: the name is given, never renumbered
            given = (cls.CREATES, getattr(st.op, cls.DEFINES))
            names[given] = given[1] if op is not None else None
        expect = st.expect
        if cls.DEFINES is None and cls.CREATES is not None:   # fork/pin/mirror: next name
            k = cls.CREATES
            old_count[k] = old_count.get(k, 0) + 1
            old_name = _created_name(k, old_count[k])
            if op is not None:
                new_count[k] = new_count.get(k, 0) + 1
            new_name = _created_name(k, new_count[k]) if op is not None else None
            names[(k, old_name)] = new_name
            if new_name is not None and expect == _results.name(old_name):
                expect = _results.name(new_name)          # `fork p0 -> p2` follows the rename
        if op is not None:
            out.append(Stmt(op=op, expect=expect))
    return Prog((HEADER, *out), prog.source)


def merge_child(prog: Prog, i: int) -> Prog:
    """``prog`` with op ``i`` (a fork) dropped and its child's ops run by the parent instead.

    A finding often forks only to get a process to act in; the child's name is
    replaced by the parent's in every later op, then the fork is dropped (later
    process names renumbered by ``drop_ops``).
    """
    stmts = list(prog.op_stmts())
    fork = stmts[i].op
    assert isinstance(fork, _ops.Fork), f"op #{i} is {type(fork).__name__}, not a fork"
    child = _created_name(ArgKind.PROC, 1 + sum(
        isinstance(st.op, _ops.Fork) for st in stmts[:i]))
    alias = {(ArgKind.PROC, child): fork.proc}
    merged = [st if j <= i else Stmt(op=_renamed(st.op, alias), expect=st.expect)
              for j, st in enumerate(stmts)]
    return drop_ops(Prog(tuple(merged), prog.source), [i])


def rename_defined(prog: Prog) -> Prog:
    """Files and VMs renamed to the lowest names in order of definition (f0, f1, v0, ...)."""
    names: dict[tuple[ArgKind, str], Optional[str]] = {}
    count: dict[ArgKind, int] = {}
    out = []
    for st in prog.op_stmts():
        op = _renamed(st.op, names)
        cls = type(op)
        if cls.DEFINES is not None:
            k = cls.CREATES
            new = f"{k.value}{count.get(k, 0)}"
            count[k] = count.get(k, 0) + 1
            names[(k, getattr(op, cls.DEFINES))] = new
            op = dataclasses.replace(op, **{cls.DEFINES: new})
        out.append(Stmt(op=op, expect=st.expect))
    return Prog((HEADER, *out), prog.source)


# --- the search -----------------------------------------------------------------------------

class _OutOfTime(Exception):
    """Internal: the timeout passed; the best program so far is the answer."""


class _Search:
    """The current best program and the predicate; every pass proposes candidates here."""

    def __init__(self, prog: Prog, still_fails: StillFails, deadline: Optional[float],
                 index: Optional[int] = None):
        self.best = prog
        self.still_fails = still_fails
        self.deadline = deadline
        self.index = index          # divergent op of `best` when known (a hint, used once)

    def ops(self) -> list[Op]:
        return self.best.ops()

    def attempt(self, cand: Prog) -> bool:
        """Adopt ``cand`` if it differs from the best and still fails."""
        if cand.stmts == self.best.stmts:
            return False
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _OutOfTime
        if self.still_fails(cand):
            self.best = cand
            return True
        return False

    def with_op(self, i: int, op: Op, **expect) -> Prog:
        """The best program with op ``i`` replaced (and its expectation, if ``expect=`` given)."""
        stmts = list(self.best.op_stmts())
        stmts[i] = Stmt(op=op, expect=expect.get("expect", stmts[i].expect))
        return Prog((HEADER, *stmts), self.best.source)


def _pass_drop_tail(s: _Search) -> None:
    """Bisect the shortest failing prefix; everything after the divergent op goes at once."""
    n = len(s.best)
    hint, s.index = s.index, None
    if hint is not None and hint + 1 < n and s.attempt(drop_ops(s.best, range(hint + 1, n))):
        return                      # the caller knew the divergent op: one try (callIndex0)
    # First probe: the last op. If the program stops failing without it, the divergence
    # is at the last op and no shorter prefix can fail (the runner checks every op).
    if n <= 1 or not s.attempt(drop_ops(s.best, range(n - 1, n))):
        return
    lo, hi = 1, n - 1                   # invariant: the prefix of length hi fails
    while lo < hi:
        mid = (lo + hi) // 2
        if s.attempt(drop_ops(s.best, range(mid, len(s.best)))):
            hi = mid
        else:
            lo = mid + 1


def _pass_drop_objects(s: _Search) -> None:
    """Remove each created object (newest first) together with every op that uses it."""
    i = len(s.best) - 1
    while i >= 0:
        if i < len(s.best) and type(s.ops()[i]).CREATES is not None:
            s.attempt(drop_ops(s.best, [i]))
        i -= 1


def _pass_merge_procs(s: _Search) -> None:
    """Let the parent do what each forked child does (newest fork first), dropping the fork."""
    i = len(s.best) - 1
    while i >= 0:
        if i < len(s.best) and isinstance(s.ops()[i], _ops.Fork):
            s.attempt(merge_child(s.best, i))
        i -= 1


def _pass_ddmin(s: _Search) -> None:
    """Delta debugging over ops: remove chunks from the end toward the start, halving sizes.

    Walking from the end keeps the indexes of untried chunks valid after a removal
    (a cascade only removes later ops). The last sweep uses chunks of one op.
    """
    chunk = max(len(s.best) // 2, 1)
    while True:
        end = len(s.best)
        while end > 0:
            start = max(end - chunk, 0)
            if end <= len(s.best):
                s.attempt(drop_ops(s.best, range(start, end)))
            end = start
        if chunk == 1:
            return
        chunk //= 2


def _arg_resets(op: Op, low_vpn: int) -> list[Op]:
    """Simpler variants of one op, smallest change first; each is tried on its own."""
    out = []
    have = {f.name for f in dataclasses.fields(op)}
    for f in _VALUE_FIELDS:
        if f in have and getattr(op, f) not in (None, 1):
            out.append(dataclasses.replace(op, **{f: 1}))
    if "npages" in have and getattr(op, "npages") not in (None, 1):
        out.append(dataclasses.replace(op, npages=1))
    for f in _ZERO_FIELDS:
        if f in have and getattr(op, f) not in (None, 0):
            out.append(dataclasses.replace(op, **{f: 0}))
    if isinstance(op, _ops.Mmap) and MapFlag.POPULATE in op.flags:
        out.append(dataclasses.replace(op, flags=op.flags - {MapFlag.POPULATE}))
    for f in _VPN_FIELDS:
        v = getattr(op, f, None)
        if v and v > low_vpn:           # vpn 0 of mmap means "pick": keep it
            out.append(dataclasses.replace(op, **{f: low_vpn}))
    return out


def _vpns(prog: Prog) -> list[int]:
    return [v for op in prog.ops() for f in _VPN_FIELDS if (v := getattr(op, f, None))]


def _rebased(prog: Prog, delta: int) -> Prog:
    """Every nonzero VPN moved down by ``delta`` (the layout, gaps and offsets kept)."""
    stmts = []
    for st in prog.op_stmts():
        changes = {f: v - delta for f in _VPN_FIELDS if (v := getattr(st.op, f, None))}
        stmts.append(Stmt(op=dataclasses.replace(st.op, **changes), expect=st.expect))
    return Prog((HEADER, *stmts), prog.source)


def _pass_reset_args(s: _Search) -> None:
    """Values, sizes, offsets and addresses toward small canonical ones; expectations off."""
    if any(st.expect is not None for st in s.best.op_stmts()):
        # All expectations at once; else one by one (an EXPECT divergence needs its own).
        if not s.attempt(Prog((HEADER, *(Stmt(op=st.op) for st in s.best.op_stmts())),
                              s.best.source)):
            for i in range(len(s.best)):
                st = list(s.best.op_stmts())[i]
                if st.expect is not None:
                    s.attempt(s.with_op(i, st.op, expect=None))
    vpns = _vpns(s.best)
    if vpns and min(vpns) > CANONICAL_VPN:
        delta = min(vpns) - CANONICAL_VPN
        # Exact rebase first; then one that keeps 2 MiB alignment for THP-sensitive bugs.
        if not s.attempt(_rebased(s.best, delta)) and delta >= _PMD_ALIGN:
            s.attempt(_rebased(s.best, delta - delta % _PMD_ALIGN))
    for i in range(len(s.best)):
        vpns = _vpns(s.best)
        low = min(vpns) if vpns else CANONICAL_VPN
        for variant in _arg_resets(s.ops()[i], low):
            s.attempt(s.with_op(i, variant))
        _shrink_npages(s, i)


def _shrink_npages(s: _Search, i: int) -> None:
    """Bisect the smallest page count of op ``i`` that still fails (1 was tried already)."""
    op = s.ops()[i]
    n = getattr(op, "npages", None)
    if not n or n <= 2:
        return
    lo, hi = 2, n                       # invariant: npages=hi fails
    while lo < hi:
        mid = (lo + hi) // 2
        if s.attempt(s.with_op(i, dataclasses.replace(op, npages=mid))):
            hi = mid
        else:
            lo = mid + 1


def _pass_rename(s: _Search) -> None:
    """Files and VMs to the lowest free names (a finding reads f0, not f7)."""
    s.attempt(rename_defined(s.best))


PASSES: tuple[tuple[str, Callable[[_Search], None]], ...] = (
    ("drop-tail", _pass_drop_tail),
    ("ddmin", _pass_ddmin),
    ("drop-objects", _pass_drop_objects),
    ("merge-procs", _pass_merge_procs),
    ("reset-args", _pass_reset_args),
    ("rename", _pass_rename),
)


def minimize(prog: Prog, still_fails: StillFails, timeout: Optional[float] = None, *,
             index: Optional[int] = None) -> Prog:
    """The smallest program found that still fails, by the plan of PASSES to a fixed point.

    Note: ``still_fails`` is opaque and called only on copies; ``prog`` is never
    changed. With ``timeout`` (seconds) the best program so far is returned when
    it passes. ``index``, the divergent op's index when the caller knows it
    (``Divergence.index``), lets the first pass drop the tail in one try instead
    of bisecting for it; a wrong hint only costs that try. Raises ValueError if ``prog`` itself does not fail.
    Return: a program (header, one statement per op, no comments) for which
    ``still_fails`` holds; 1-minimal unless the timeout cut the search short.
    """
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout={timeout} must be > 0 seconds (or None for no limit)")
    if not still_fails(prog):
        raise ValueError(f"input does not reproduce: the predicate is false on the "
                         f"{len(prog)}-op program {prog.source}; minimize needs a failing "
                         f"program (same --mutant as when it was found?)")
    deadline = None if timeout is None else time.monotonic() + timeout
    start = drop_ops(prog, ())          # comments and blank lines carry no behaviour
    if not still_fails(start):
        raise AssertionError(f"dropping comments from {prog.source} lost the divergence: "
                             f"the predicate must depend on ops and expectations only")
    s = _Search(start, still_fails, deadline, index)
    try:
        while True:
            before = s.best
            for _name, run_pass in PASSES:
                run_pass(s)
            if s.best == before:        # a full round changed nothing: fixed point
                break
    except _OutOfTime:
        # The best program so far still fails, but may not be 1-minimal: say so.
        structlog.get_logger("mmdiff.minimize").warning(
            "minimize_timeout", source=prog.source, timeout=timeout,
            ops_before=len(prog), ops_after=len(s.best))
    return s.best
