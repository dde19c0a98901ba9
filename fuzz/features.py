"""Extra coverage features for libFuzzer: state transitions the models went through.

atheris sees no coverage from the gcc-built impl, and the reference's Python
branches say little about *which* page states a program reached. So each op
also reports a feature: (op kind, entry kind before -> after at the page it
targets, result class). Features are hashed into FEATURE_SLOTS slots, and slot i
is reported by reaching leaf i of a generated binary decision tree: every leaf
is a distinct instrumented branch, so a new feature is new edge coverage for
libFuzzer at a cost of log2(FEATURE_SLOTS) comparisons.
"""
from __future__ import annotations

import zlib
from typing import Callable

FEATURE_SLOTS = 4096
_DEPTH = FEATURE_SLOTS.bit_length() - 1


def _tree_source(lo: int, hi: int, indent: str) -> list[str]:
    if hi - lo == 1:
        return [f"{indent}seen[{lo}] = 1"]
    mid = (lo + hi) // 2
    return ([f"{indent}if slot < {mid}:"] + _tree_source(lo, mid, indent + "    ")
            + [f"{indent}else:"] + _tree_source(mid, hi, indent + "    "))


def make_hit() -> Callable[[int, bytearray], None]:
    """A fresh `hit(slot, seen)` whose leaves are separate branches (instrument it)."""
    src = "def hit(slot, seen):\n" + "\n".join(_tree_source(0, FEATURE_SLOTS, "    ")) + "\n"
    namespace: dict = {}
    exec(compile(src, "<mmdiff-features>", "exec"), namespace)
    return namespace["hit"]


def feature_slot(*parts: str) -> int:
    """Stable slot of one feature tuple (crc32: the same in every worker process)."""
    return zlib.crc32("|".join(parts).encode()) % FEATURE_SLOTS


assert 1 << _DEPTH == FEATURE_SLOTS, "FEATURE_SLOTS must be a power of two"
