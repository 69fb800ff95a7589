"""pydiasca's per-rank engine: the Actor API, the tick/diasca kernel and its seams.

The engine never imports ``runtime`` or ``mpi4py``: distribution plugs in
through :class:`engine.transport.Transport`.
"""

from .actor import Actor
from .errors import MessageError, PlanningError, SimulationError, TimeConversionError
from .kernel import MODES, Kernel, RunStats
from .probes import MemorySink, ProbeStore
from .random import Random
from .timing import seconds_to_ticks
from .transport import Failure, LocalTransport, Report, RoundRobin, Transport

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "Failure",
    "Kernel",
    "LocalTransport",
    "MODES",
    "MemorySink",
    "MessageError",
    "PlanningError",
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
