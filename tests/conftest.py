"""Shared pytest setup: the ``--soak`` switch and fixtures for both machines.

``machine`` is parametrized over both models (STYLE §8: one test body, run
against the reference and the impl); ``reference`` and ``impl`` give one each.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="also run the long fuzzing soak tests (marker: soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


def _make_reference():
    from mmdiff.reference.machine import ReferenceMachine
    return ReferenceMachine()


def _make_impl():
    from mmdiff.impl import ImplMachine
    return ImplMachine()


MACHINES = {"reference": _make_reference, "impl": _make_impl}


@pytest.fixture
def reference():
    """A fresh ReferenceMachine (the oracle)."""
    return _make_reference()


@pytest.fixture
def impl():
    """A fresh ImplMachine (no mutant)."""
    return _make_impl()


@pytest.fixture(params=sorted(MACHINES))
def machine(request):
    """A fresh machine of each model in turn."""
    return MACHINES[request.param]()
