"""Everything between ranks and around a run: scenarios, running, MPI, results, the CLI.

The names below are the runtime's Python API; each is imported on first use,
so that ``import runtime.launch`` (as every MPI rank does first) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .digest import digest_file, digest_of
    from .recovery import recover
    from .results import open_run, read_probes
    from .runner import RunOutcome, run_scenario
    from .scenario import Override, Scenario, ScenarioError, load_scenario

_HOMES = {
    "Override": "scenario",
    "RunOutcome": "runner",
    "Scenario": "scenario",
    "ScenarioError": "scenario",
    "digest_file": "digest",
    "digest_of": "digest",
    "load_scenario": "scenario",
    "open_run": "results",
    "read_probes": "results",
    "recover": "recovery",
    "run_scenario": "runner",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)


__all__ = [
    "Override",
    "RunOutcome",
    "Scenario",
    "ScenarioError",
    "digest_file",
    "digest_of",
    "load_scenario",
    "open_run",
    "read_probes",
    "recover",
    "run_scenario",
]
