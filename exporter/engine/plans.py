"""How our polars plans run.

polars 2 runs a plan that names no engine on its streaming engine. Ours are sorts, joins and
ordered group-bys over frames already in memory, which the in-memory engine runs with less CPU
and less memory and the same result (500 hosts x 10 years: 0.93x CPU, 0.82x peak RSS, every output
byte-identical; BENCHMARKS.md). Plans that name an engine keep it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import polars as pl

_P = ParamSpec("_P")
_R = TypeVar("_R")


def in_memory_plans(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """``function`` with the plans it runs that name no engine run in memory.

    polars keeps the choice process-wide, so a fresh setting per call, restored on return: a
    concurrent call can only change which engine runs, never a result.
    """
    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with pl.Config(engine_affinity="in-memory"):
            return function(*args, **kwargs)
    return run
