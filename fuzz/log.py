"""structlog setup for the CLI: events go to stderr, reports stay on stdout.

``console`` (default) renders for a terminal; ``json`` prints one JSON object
per event: one ``program`` event per file run and a final ``summary``.
"""
from __future__ import annotations

import sys
from typing import Optional, TextIO

import structlog

from mmdiff.fuzz.runner import RunOutcome

FORMATS = ("console", "json")


def _current_stderr_logger(*_args) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def configure(fmt: str = "console", stream: Optional[TextIO] = None) -> structlog.BoundLogger:
    """Route structlog to ``stream`` (default: the current sys.stderr) in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    renderer = (structlog.processors.JSONRenderer(sort_keys=True) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        # Without an explicit stream, sys.stderr is looked up at each message, so a
        # logger used after the caller swapped (or closed) its stderr never writes to
        # a stale stream (pytest's capture, a library caller's redirect).
        logger_factory=(structlog.PrintLoggerFactory(file=stream) if stream is not None
                        else _current_stderr_logger),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("mmdiff")


def status_of(outcome: RunOutcome) -> str:
    """``ok`` or ``diverged`` (the kind is a separate field)."""
    return "ok" if outcome.divergence is None else "diverged"


def log_program(log, outcome: RunOutcome, seconds: float) -> None:
    """The per-program event: file, ops, status, divergence kind/op/line."""
    div = outcome.divergence
    fields = dict(file=outcome.prog.source, ops=len(outcome.prog),
                  ops_executed=outcome.ops_executed, status=status_of(outcome),
                  backend="/".join(outcome.sides), seconds=round(seconds, 4),
                  divergence=div.kind.value if div else None)
    if div is None:
        log.info("program", **fields)
    else:
        log.warning("program", **fields, op_index=div.index, line=div.line, side=div.side)


def log_summary(log, outcomes: list[RunOutcome], seconds: float) -> None:
    """The final event: how many programs ran, agreed, diverged (by kind)."""
    kinds: dict[str, int] = {}
    for o in outcomes:
        if o.divergence is not None:
            kinds[o.divergence.kind.value] = kinds.get(o.divergence.kind.value, 0) + 1
    diverged = sum(kinds.values())
    (log.warning if diverged else log.info)(
        "summary", programs=len(outcomes), ok=len(outcomes) - diverged, diverged=diverged,
        kinds=kinds, ops=sum(o.ops_executed for o in outcomes), seconds=round(seconds, 3),
        status="diverged" if diverged else "ok")
