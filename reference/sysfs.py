"""Kernel tunables and choices the `set` op changes (/sys/kernel/mm/transparent_hugepage/*),
plus the deterministic stand-in for whether a THP allocation succeeds."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ThpSettings:
    enabled: str = "madvise"     # always / madvise / never (this machine: madvise)
    use_zero_page: bool = True   # thp_zero: use_zero_page
    alloc_ok: bool = True        # thp_alloc: every THP allocation fails while False
    max_ptes_none: int = 511     # khugepaged/max_ptes_none (no khugepaged here: stored)
