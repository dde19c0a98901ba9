"""The Cython kernel-shaped model (impl side of the differential pair).

``ImplMachine(mutant=None)`` implements the reference/api.py contract plus
``run_batch(ops)``; see machine.pyx for the layout and MUTANTS.
"""
from .machine import MUTANTS, ImplMachine

__all__ = ["ImplMachine", "MUTANTS"]
