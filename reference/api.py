"""The contract both models implement: same public names on ReferenceMachine and ImplMachine.

A machine starts with process ``p0`` (empty address space), no files, default
settings. ``execute`` runs one op and returns its Result; errno and signal
results are normal outputs, never exceptions. An exception escaping a machine
is a model bug (the runner reports it as a ``crash`` divergence).
"""
from __future__ import annotations

from typing import Protocol

from .ops import Op
from .results import Result
from .state import RawSnapshot


class InvariantError(AssertionError):
    """A model broke one of SPEC §5's invariants; the message names it and the values (hex)."""


class Machine(Protocol):
    def execute(self, op: Op) -> Result:
        """Run one op; names it creates follow creation order (p1, h1, m1, ...)."""

    def snapshot(self) -> RawSnapshot:
        """The canonical-state observation (SPEC §4.2) with the model's own frame keys."""

    def check_invariants(self) -> None:
        """Raise InvariantError if a SPEC §5 invariant does not hold right now."""
