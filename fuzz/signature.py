"""Divergence signatures: the bug class a finding belongs to, as a filename-safe string.

A signature names *what* diverged, never *where*: the first divergent op's kind,
the divergence kind, and for a state divergence the class of the first differing
field (``page``, ``vma``, ``frame``, ...) plus, for a page, the entry kind and
level (``anon-pte``); for a crash or a broken invariant the model's side and the
exception type or the invariant's rule. Process names, VPNs and frame ids are stripped, so the
signature survives minimization (renaming, address rebasing, dropping noise)
and deduplicates findings: ``findings/<signature>.mmd``.

Examples: ``mprotect-state-page-anon-pte``, ``fork-result``,
``write-crash-impl-keyerror``,
``write-invariant-impl-i1-writable-anon-anonexclusive``.
"""
from __future__ import annotations

import re

from mmdiff.fuzz.differ import MISSING, Divergence, DivergenceKind
from mmdiff.fuzz.prog import Prog

# Field class of a state path by the leading name's kind letter (SPEC §4.2 layout of
# reference.state.canonicalize: "p0 page 0x100", "p0 vma[0]", "h1 pages",
# "f0 pgoff 0x3", "frame F2"; devices, subscriptions and VMs for later scopes).
_HEAD_CLASS = {"h": "pin", "f": "file", "m": "sub", "d": "dev", "v": "vm"}
_NAME_RE = re.compile(r"[a-z][0-9]+")
_UNSAFE_RE = re.compile(r"[^a-z0-9_]+")


def _safe(word: str) -> str:
    """Lower case, every run of characters outside [a-z0-9_] folded to one '-'."""
    return _UNSAFE_RE.sub("-", word.lower()).strip("-")


def field_class(path: str) -> str:
    """The class of a state field path with names and numbers stripped: ``page``, ``vma``, ..."""
    words = path.split()
    head = words[0] if words else ""
    if head == "frame":
        return "frame"
    if _NAME_RE.fullmatch(head):
        if head[0] == "p" and len(words) > 1:
            return _safe(words[1].split("[", 1)[0]) or "proc"   # "vma[0]" -> "vma"
        return _HEAD_CLASS.get(head[0], "state")
    return _safe(head) or "state"


def _entry_class(left: str, right: str) -> str:
    """Entry kind and level of a page field (``anon-pte``), from the oracle's side first.

    A side that lacks the page (MISSING) or maps nothing gives way to the other,
    so "reference has no page, impl maps one" still names the impl's entry.
    """
    for text in (left, right):
        words = text.split()
        if text != MISSING and words and words[0] != "none":
            return "-".join(_safe(w) for w in words[:2])
    return "none"


_STOP_WORDS = {"a", "an", "at", "of", "the", "in", "to", "by"}
_NUMBER_TOKEN = re.compile(r"[-+]?(0x[0-9a-f]+|[0-9]+),?", re.IGNORECASE)
_VALUE_TOKEN = re.compile(r"\w+=.*|.*[(<\[{].*")   # key=value, or the start of a repr
MAX_RULE_WORDS = 6


def invariant_rule(detail: str) -> str:
    """The rule an InvariantError names, its values stripped: ``i1-writable-anon-anonexclusive``.

    The impl says ``impl invariant broken: RULE: values``; the reference says
    ``p0: rule words at 0x100 ...``. Numbers are skipped and words are kept up to a
    ``key=value``, a repr or a colon, so the same rule always gives the same text.
    """
    m = re.search(r"invariant broken: ([^:]+)", detail)
    text = m.group(1) if m else re.sub(r"^[a-z][0-9]+: ", "", detail)
    words = []
    for w in text.split():
        if _VALUE_TOKEN.fullmatch(w):
            break
        if not _NUMBER_TOKEN.fullmatch(w) and w.lower() not in _STOP_WORDS and _safe(w):
            words.append(_safe(w))
        if w.endswith(":"):              # "rule words: values": the values follow
            break
    return "-".join(words[:MAX_RULE_WORDS]) or "invariant"


def signature(div: Divergence, prog: Prog) -> str:
    """The filename-safe signature ([a-z0-9_-]) of ``div``, a divergence of ``prog``.

    ``prog`` is accepted for the agreed API and for the self-check only: the op is
    the divergence's own statement, so the signature does not depend on its index.
    """
    op = div.stmt.op
    assert op is not None, f"divergence at op #{div.index} of {prog.source} holds no op"
    parts = [type(op).NAME, div.kind.value]
    if div.kind is DivergenceKind.STATE and div.fields:
        path, left, right = div.fields[0]        # fields are in path order: the first differs
        cls = field_class(path)
        parts.append(cls)
        if cls == "page":
            parts.append(_entry_class(left, right))
    elif div.kind in (DivergenceKind.CRASH, DivergenceKind.INVARIANT, DivergenceKind.EXPECT):
        parts.append(div.side or "unknown")
        if div.kind is DivergenceKind.CRASH:
            # "KeyError: 0x100" -> "keyerror": the exception type, not its message
            parts.append(div.detail.split(":", 1)[0] or "exception")
        elif div.kind is DivergenceKind.INVARIANT:
            parts.append(invariant_rule(div.detail))   # which SPEC §5 rule broke
    return "-".join(p for p in (_safe(x) for x in parts) if p)
