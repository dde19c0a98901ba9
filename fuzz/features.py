"""Extra coverage features for libFuzzer: state transitions the models went through.

atheris sees no coverage from the gcc-built impl, and the reference's Python
branches say little about *which* page states a program reached. So each op
also reports a feature: (op kind, entry kind before -> after at the page it
targets, result class). Features are hashed into FEATURE_SLOTS slots, and slot i
is reported by reaching leaf i of generated binary decision trees: every leaf
is a distinct instrumented branch, so a new feature is new edge coverage for
libFuzzer at a cost of log2(FEATURE_SLOTS) comparisons. The trees are small
(LEAVES each, one per function) because atheris' bytecode instrumentation time
grows quadratically with a function's size (1024 leaves in one function: 6 s).
"""
from __future__ import annotations

import zlib
from typing import Callable

FEATURE_SLOTS = 2048
LEAVES = 32               # leaves per generated function


def _tree_source(lo: int, hi: int, indent: str) -> list[str]:
    if hi - lo == 1:
        return [f"{indent}return {lo}"]
    mid = (lo + hi) // 2
    return ([f"{indent}if slot < {mid}:"] + _tree_source(lo, mid, indent + "    ")
            + [f"{indent}else:"] + _tree_source(mid, hi, indent + "    "))


def make_trees(instrument: Callable = lambda f: f) -> Callable[[int], None]:
    """`hit(slot)` dispatching to FEATURE_SLOTS // LEAVES small trees, each passed
    through `instrument` (atheris.instrument_func in the fuzz worker)."""
    src = "def tree(slot):\n" + "\n".join(_tree_source(0, LEAVES, "    ")) + "\n"
    trees = []
    for i in range(FEATURE_SLOTS // LEAVES):
        namespace: dict = {}
        # a distinct code object per tree, so each has its own coverage counters
        exec(compile(src, f"<mmdiff-features-{i}>", "exec"), namespace)
        trees.append(instrument(namespace["tree"]))

    def hit(slot: int) -> None:
        trees[slot // LEAVES](slot % LEAVES)
    return hit


def feature_slot(*parts: str) -> int:
    """Stable slot of one feature tuple (crc32: the same in every worker process)."""
    return zlib.crc32("|".join(parts).encode()) % FEATURE_SLOTS


assert FEATURE_SLOTS % LEAVES == 0, "FEATURE_SLOTS must be a multiple of LEAVES"
