"""Whether a scenario's actors and populations can fit in memory, estimated before a run.

A ``count`` of 10^9 would otherwise fill the memory for minutes, in silence,
before the run fails or is killed. The estimate is a lower bound per rank, so
that it refuses only what cannot work:

- every rank keeps a directory entry for every actor (``DIRECTORY_BYTES``);
- each rank holds its share of the actors (``ACTOR_BYTES`` each; a PHOLD LP
  with its pending event takes about 800);
- each rank holds its share of every population's cells, double-buffered.

It is compared with the memory available on the root's machine, the only one
the root can see: on a cluster, every node is assumed to be at least as large.
"""

from __future__ import annotations

import math
import os

from .load import Scenario
from .values import ScenarioError

ACTOR_BYTES = 500
DIRECTORY_BYTES = 24


def available_memory() -> int | None:
    """Bytes of memory available to a new process here, or None if the system does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def memory_problem(scenario: Scenario, ranks: int, available: int | None = None) -> str | None:
    """The one-line error for a scenario that cannot fit in memory on ``ranks`` ranks, or None."""
    available = available_memory() if available is None else available
    if available is None:
        return None
    actors = sum(entry.count for entry in scenario.actors)
    need = actors * DIRECTORY_BYTES + math.ceil(actors / ranks) * ACTOR_BYTES
    parts = [f"{actors:,} actors"] if actors else []
    where, largest = "[[actors]] count", need
    for number, entry in enumerate(scenario.populations, 1):
        cells, cell_bytes = _population_size(entry.cls, entry.args)
        size = math.ceil(cells / ranks) * cell_bytes * 2
        parts += [f"{cells:,} cells of population {entry.name}"] if cells else []
        need += size
        if size > largest:
            where, largest = f"[[populations]] #{number} args", size
    if need <= available:
        return None
    per_rank = "" if ranks == 1 else f" on each of {ranks} ranks"
    return str(
        ScenarioError(
            f"{' and '.join(parts)} need at least {_size(need)}{per_rank}, but this machine "
            f"has {_size(available)} available",
            where=where,
            fix="make the model smaller, or spread it over more ranks",
            file=str(scenario.path),
        )
    )


def _population_size(cls: type, args: dict) -> tuple[int, int]:
    """(cells, bytes per cell) that ``cls(**args)`` declares; (0, 0) when it cannot tell.

    The constructor only sets attributes; a failure is left for the run to report.
    """
    import numpy as np

    try:
        pop = cls.__new__(cls)
        pop.__init__(**args)
        shape = pop.shape
        dims = [shape] if isinstance(shape, int | np.integer) else list(shape)
        cells = math.prod(int(d) for d in dims)
        cell_bytes = sum(np.dtype(d).itemsize for d in dict(pop.fields).values())
    except Exception:
        return 0, 0
    return max(cells, 0), cell_bytes


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""  # unreachable
