"""pydiasca's per-rank engine: the Actor API, the tick/diasca kernel and its seams.

The engine never imports ``runtime`` or ``mpi4py``: distribution plugs in
through :class:`engine.transport.Transport`.
"""

from typing import TYPE_CHECKING

from .actor import Actor
from .errors import MessageError, PlanningError, SimulationError, TimeConversionError
from .kernel import MODES, Kernel, RunStats
from .probes import PLOT_MODES, MemorySink, ProbeStore
from .random import Random
from .timing import seconds_to_ticks
from .transport import Failure, LocalTransport, Report, RoundRobin, Transport

if TYPE_CHECKING:
    from .dense import Aggregate, DensePopulation, PopulationView

__version__ = "0.1.0"

_DENSE = ("Aggregate", "DensePopulation", "PopulationView")


def __getattr__(name: str):
    # Dense populations bring Numba (a quarter second to import): only on demand.
    if name in _DENSE:
        from . import dense

        return getattr(dense, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = [
    "PLOT_MODES",
    "Actor",
    "Aggregate",
    "DensePopulation",
    "Failure",
    "Kernel",
    "LocalTransport",
    "MODES",
    "MemorySink",
    "MessageError",
    "PlanningError",
    "PopulationView",
    "ProbeStore",
    "Random",
    "Report",
    "RoundRobin",
    "RunStats",
    "SimulationError",
    "TimeConversionError",
    "Transport",
    "seconds_to_ticks",
]
