"""Scenario files: a TOML file, overrides, and every check before a run starts.

``load_scenario`` reads a file, applies ``--set`` and command-line overrides,
and checks everything, so that a bad scenario costs one clear line (file, key,
what to do) instead of a traceback from the middle of a distributed run. The
modules: ``load`` (the document and its sections), ``actors`` (the
``[[actors]]`` and ``[[populations]]`` entries and ``"@id"`` references),
``classes`` (importing model classes, matching their arguments) and ``values``
(the checks of single values and ``ScenarioError``).
"""

from .actors import ActorEntry, PopulationEntry
from .load import Override, Scenario, load_scenario
from .values import ScenarioError, parse_duration

__all__ = [
    "ActorEntry",
    "Override",
    "PopulationEntry",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_duration",
]
