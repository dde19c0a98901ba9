"""Issue 5: each THP seeded-bug mutant is caught by the fuzzer's own inputs.

Five rules of mm/huge_memory.c and the folio split broken on purpose in the impl
(impl/machine.pyx MUTANTS): a PMD split that drops the dirty bit, one that marks the
pages of a shared THP AnonExclusive, a write that lands in the huge zero folio, a folio
split whose zero-page remap loses soft-dirty (fixed during 6.18) and one whose rmap walk
stops after the first PMD (6.18 as released). Random 2 KB byte strings decoded into
programs catch each of them through the fuzz harness (results, canonical state and
invariants compared), while the faithful impl passes the same inputs. When written, of
60 inputs (seed 64) the decoder caught 25, 8, 3, 7 and 3; the decoder before the
issue-5 reach work caught 1, 1 and 0 of the first three. Floors are about half of that.
The Hypothesis lockstep machine catching them is a soak test (slow).
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from mmdiff.fuzz import machine as M
from mmdiff.fuzz.decoder import decode
from mmdiff.fuzz.harness import Harness
from mmdiff.impl import MUTANTS

THP_MUTANTS = {"split_drops_dirty": 12, "split_marks_shared_exclusive": 4,
               "huge_zero_written_in_place": 1, "zero_remap_drops_soft_dirty": 3,
               "split_walk_stops_at_first_pmd": 1}


def _inputs(seed: int, n: int, size: int = 2048):
    r = random.Random(seed)
    for _ in range(n):
        yield r.randbytes(size)


def test_the_thp_mutants_exist() -> None:
    assert set(THP_MUTANTS) <= set(MUTANTS)


def test_faithful_impl_passes_the_inputs() -> None:
    h = Harness()
    found = [d for d in (h.check(decode(b)) for b in _inputs(64, 60)) if d is not None]
    assert not found, f"the faithful impl diverges: {found[0]}"


@pytest.mark.parametrize("mutant", sorted(THP_MUTANTS))
def test_decoded_inputs_catch_thp_mutants(mutant) -> None:
    h = Harness(mutant)
    caught = sum(h.check(decode(b)) is not None for b in _inputs(64, 60))
    assert caught >= THP_MUTANTS[mutant], f"{mutant}: caught by {caught} of 60 inputs"


@pytest.mark.soak
@pytest.mark.parametrize("mutant", sorted(THP_MUTANTS))
def test_machine_catches_thp_mutants(mutant) -> None:
    find = settings(max_examples=3000, stateful_step_count=30, deadline=None,
                    derandomize=True, database=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])
    with pytest.raises(M.LockstepFailure, match=mutant):
        run_state_machine_as_test(M.make_lockstep_machine(mutant), settings=find)
