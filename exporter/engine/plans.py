"""How our polars plans run.

polars 2 runs a plan that names no engine on its streaming engine. Ours are sorts, joins and
ordered group-bys over frames already in memory, which the in-memory engine runs with less CPU
and less memory (500 hosts x 10 years: 1.19x less CPU, 0.79x peak RSS; BENCHMARKS.md). The two
engines may round a float differently in its last bit (seen in a rejected row's hours), so the
engine is part of what makes the output bytes: the command line always sets it, whatever the
environment says. Plans that name an engine keep it.
"""

from __future__ import annotations

import os
import sys

AFFINITY = "POLARS_ENGINE_AFFINITY"  # read by polars when it is imported, or when told to re-read it


def prefer_in_memory_engine() -> None:
    """Once, when the process starts, before any thread runs a plan (the setting lives in the
    environment, which is not safe to change while other threads read it)."""
    os.environ[AFFINITY] = "in-memory"
    if "polars" in sys.modules:  # imported already (tests, a library caller): it re-reads on request only
        sys.modules["polars"].Config.set_engine_affinity("in-memory")
