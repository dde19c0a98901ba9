"""One fuzz execution: decode-free check of a Prog on both models, fast path first.

The hot loop runs the reference op by op and the impl in chunks of
``check_every`` ops through ``run_batch`` (one C call per chunk), comparing
results and canonical states at every chunk end. Only when something differs
(or a model raises) is the program replayed with ``run_lockstep`` at
``check_every=1`` to pin down the exact first divergence for the report; the
slow path is the single source of truth for what a divergence is.
"""
from __future__ import annotations

from typing import Callable, Optional

from mmdiff.fuzz.differ import Divergence
from mmdiff.fuzz.features import FEATURE_SLOTS, feature_slot
from mmdiff.fuzz.prog import Prog
from mmdiff.fuzz.runner import run_lockstep
from mmdiff.impl import ImplMachine
from mmdiff.reference import ops as O
from mmdiff.reference.machine import ReferenceMachine
from mmdiff.reference.state import canonicalize

HitFn = Callable[[int], None]


class Harness:
    """Runs programs against reference vs impl(mutant) and reports coverage features."""

    def __init__(self, mutant: Optional[str] = None, check_every: int = 64,
                 hit: Optional[HitFn] = None) -> None:
        ImplMachine(mutant)                 # unknown mutant names fail here, not mid-fuzz
        self.mutant = mutant
        self.check_every = max(1, check_every)
        self.hit = hit
        self.seen = bytearray(FEATURE_SLOTS)         # feature slots reached so far (stats)
        self.ops_run = 0

    @property
    def features(self) -> int:
        return sum(self.seen)

    def _entry(self, ref: ReferenceMachine, op: O.Op) -> str:
        """Entry kind at the page the op targets ('-' for ops without one)."""
        vpn = getattr(op, "vpn", None)
        if vpn is None or not hasattr(op, "proc"):
            return "-"
        return str(ref.execute(O.State(op.proc, vpn))).split(" ", 1)[0]

    def _fast_diverges(self, ops: list) -> bool:
        ref, imp = ReferenceMachine(), ImplMachine(self.mutant)
        for start in range(0, len(ops), self.check_every):
            chunk = ops[start:start + self.check_every]
            got = []
            for op in chunk:
                before = self._entry(ref, op)
                res = ref.execute(op)
                got.append(res)
                if self.hit is not None:
                    slot = feature_slot(op.NAME, before, self._entry(ref, op),
                                        res.kind.name, str(res) if res.is_error else "")
                    self.seen[slot] = 1
                    self.hit(slot)
            self.ops_run += len(chunk)
            if imp.run_batch(chunk) != got:
                return True
            ref.check_invariants()
            imp.check_invariants()
            if canonicalize(ref.snapshot()) != canonicalize(imp.snapshot()):
                return True
        return False

    def check(self, prog: Prog) -> Optional[Divergence]:
        """The first divergence of prog, or None."""
        ops = prog.ops()
        try:
            diverged = self._fast_diverges(ops)
        except Exception:  # classification point: any model exception -> exact replay below
            diverged = True
        if not diverged:
            return None
        outcome = run_lockstep(prog, ReferenceMachine(), ImplMachine(self.mutant),
                               check_every=1, check_invariants=True)
        return outcome.divergence
