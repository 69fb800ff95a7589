"""Scenario files: read a TOML file, apply overrides, check everything.

Every check happens here, before any rank starts, so that a bad scenario costs
the user one clear line (file, key, what to do) instead of a traceback from the
middle of a distributed run. Actor classes are imported and their constructor
arguments matched now, and ``"@id"`` references become AAIs, which scenario
order alone fixes. Command-line flags and ``--set`` reach the scenario as
``Override``s, through the same checks as the file's own values.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import TimeConversionError, seconds_to_ticks

from ..placement import POLICIES
from ..sgroups import ROUTINGS
from .actors import (
    ActorEntry,
    PopulationEntry,
    _actors,
    _check_class_weights,
    _populations,
    _weights,
)
from .values import (
    MAX_DEPTH,
    MAX_RANKS,
    SEED_LIMIT,
    ScenarioError,
    _boolean,
    _check_keys,
    _mode,
    _name,
    _one_of,
    _patterns,
    _plot_modes,
    _positive,
    _process_grid,
    _table,
    _text,
    _unknown,
    _whole,
    parse_duration,
)


@dataclass
class Scenario:
    """A checked scenario: everything a run needs, and the text to keep with its results."""

    path: Path
    text: str
    name: str
    tick_duration: float
    stop_tick: int | None
    seed: int | None
    mode: str
    actors: list[ActorEntry]
    output: str | None
    data: dict
    include: list[str] = field(default_factory=list)  # [results] probe patterns to keep
    exclude: list[str] = field(default_factory=list)  # [results] probe patterns to drop
    plots: bool = True
    plot_modes: dict[str, str] = field(default_factory=dict)  # [results] plot: probe -> mode
    group_size: int | None = None  # None: one group of all ranks
    routing: str = "direct"
    watchdog_s: float = 60.0
    placement: str = "round_robin"
    weights: dict[type, float] = field(default_factory=dict)
    populations: list[PopulationEntry] = field(default_factory=list)
    process_grid: tuple[int, int] | None = None  # [deployment] process grid of 2-D populations
    checkpoint_every_ticks: int | None = None  # [checkpoint]: see docs/checkpoints.md
    checkpoint_every_s: float | None = None
    checkpoint_keep: int = 2


@dataclass(frozen=True)
class Override:
    """One setting that replaces the file's: ``[section] key = value``.

    ``--set section.key=value`` makes one with ``Override.parse``; a command-line
    flag such as ``--seed 5`` makes one with ``origin="--seed"``, so that a bad
    value is reported against the flag. Either way the value goes through the
    same check as the file's own.
    """

    section: str
    key: str
    value: Any
    origin: str = ""  # the flag that set it; "" for --set and the Python API

    @classmethod
    def parse(cls, text: str) -> Override:
        """``section.key=value``, the value read as TOML if it can be, else as a bare word."""
        where = f"--set {text if len(text) <= 100 else text[:100] + '...'}"
        target, equals, raw = text.partition("=")
        if not equals:
            target = ""  # malformed
        section, key = _target(target, where)
        raw = raw.strip()
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: --set simulation.name=foo
        except RecursionError:
            raise ScenarioError(
                "arrays or tables nested too deeply to read",
                where=where,
                fix=f"nest at most {MAX_DEPTH} levels",
            ) from None
        return cls(section, key, value)

    @classmethod
    def of(cls, target: str, value: Any) -> Override:
        """``section.key`` set to ``value`` as it is (the Python API's overrides)."""
        section, key = _target(str(target), f"override {target!r}")
        return cls(section, key, value)


def _target(target: str, where: str) -> tuple[str, str]:
    """The (section, key) of ``section.key``, which must be one that can be set."""
    section, dot, key = target.strip().partition(".")
    if not (section and dot and key):
        raise ScenarioError(
            "malformed override",
            where=where,
            fix="expected section.key=value, e.g. simulation.seed=5",
        )
    keys = _OVERRIDABLE.get(section)
    if keys is None:
        known = [_SECTIONS[name] for name in _OVERRIDABLE]
        listing = "only these sections can be set"
        _unknown("section cannot be set", f"[{section}]", known, where, listing)
    if key not in keys:
        _unknown(f"unknown key of [{section}]", key, list(keys), where, "allowed keys")
    return section, key


def load_scenario(path: str | Path, overrides: Iterable[str | Override] = ()) -> Scenario:
    """Read, override and check a scenario file; raise ScenarioError on the first problem.

    ``overrides`` are ``--set`` strings (``"simulation.seed=5"``) or ``Override``s.
    """
    try:
        return _load(Path(path), overrides)
    except ScenarioError as error:
        if not error.from_flag:
            error.file = str(path)
        raise


# Allowed keys of each table and their checkers: a new key is one line here.
_SIMULATION_KEYS = {
    "name": _name,
    "tick_duration": parse_duration,
    "stop_tick": _whole(1),
    "duration": parse_duration,
    "seed": _whole(0, SEED_LIMIT - 1),
    "mode": _mode,
}
_RESULTS_KEYS = {
    "output": _text,
    "include": _patterns,
    "exclude": _patterns,
    "plots": _boolean,
    "plot": _plot_modes,
}
_DEPLOYMENT_KEYS = {
    "group_size": _whole(1, MAX_RANKS),
    "routing": _one_of(ROUTINGS),
    "watchdog_s": _positive("a number of seconds > 0", maximum=1e9),
    "process_grid": _process_grid,
}
_PLACEMENT_KEYS = {"policy": _one_of(POLICIES), "weights": _table}
_CHECKPOINT_KEYS = {
    "every_ticks": _whole(1),
    "every_s": _positive("a number of wall-clock seconds > 0", maximum=1e9),
    "keep": _whole(1, 1000),
}

_SECTIONS = {
    "simulation": "[simulation]",
    "actors": "[[actors]]",
    "results": "[results]",
    "deployment": "[deployment]",
    "placement": "[placement]",
    "populations": "[[populations]]",
    "checkpoint": "[checkpoint]",
}
_OVERRIDABLE = {
    "simulation": _SIMULATION_KEYS,
    "results": _RESULTS_KEYS,
    "deployment": _DEPLOYMENT_KEYS,
    "placement": _PLACEMENT_KEYS,
    "checkpoint": _CHECKPOINT_KEYS,
    "populations": {"backend": None},  # every [[populations]] entry; checked there
}


def _section(data: dict, name: str, keys: dict[str, Callable], flags: dict) -> dict:
    """The checked keys of the optional table ``[name]``."""
    where = f"[{name}]"
    return _check_keys(_table(data.get(name, {}), where), keys, where, flags.get(name))


# --- the document ------------------------------------------------------------


def _load(path: Path, overrides: Iterable[str | Override]) -> Scenario:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ScenarioError(
            f"cannot read the file ({error.strerror or error})", fix="check the path"
        ) from None
    except UnicodeDecodeError as error:
        raise ScenarioError(
            f"not UTF-8 text (byte {error.start})", fix="save the file as UTF-8"
        ) from None
    data = _parse(text.removeprefix("\ufeff"))
    flags: dict[str, dict[str, str]] = {}  # section -> key -> the flag that set it
    for override in overrides:
        if isinstance(override, str):
            override = Override.parse(override)
        _apply(data, override)
        named = flags.setdefault(override.section, {})
        if override.origin:
            named[override.key] = override.origin
        else:  # the last override of a key is the one an error is about
            named.pop(override.key, None)

    for key, value in data.items():
        if key not in _SECTIONS:
            label = f"[{key}]" if isinstance(value, dict) else key
            label = f"[[{key}]]" if isinstance(value, list) else label
            _unknown("unknown section", label, list(_SECTIONS.values()), label, "known sections")
    if "simulation" not in data:
        raise ScenarioError("missing section", where="[simulation]", fix="add a [simulation] table")
    sim = _section(data, "simulation", _SIMULATION_KEYS, flags)
    results = _section(data, "results", _RESULTS_KEYS, flags)
    deployment = _section(data, "deployment", _DEPLOYMENT_KEYS, flags)
    placement = _section(data, "placement", _PLACEMENT_KEYS, flags)
    checkpoint = _section(data, "checkpoint", _CHECKPOINT_KEYS, flags)
    if "every_ticks" in checkpoint and "every_s" in checkpoint:
        raise ScenarioError(
            "both every_ticks and every_s are given", where="[checkpoint]", fix="keep only one"
        )
    tick_duration = sim.get("tick_duration", 1.0)
    resolved = path.resolve()
    populations = _populations(data.get("populations"), resolved.parent)
    if populations and "stop_tick" not in sim and "duration" not in sim:
        raise ScenarioError(
            "populations update at every tick, so the run needs an end",
            where="[simulation]",
            fix="add stop_tick or duration",
        )
    actors = _actors(data.get("actors"), resolved.parent, allow_none=bool(populations))
    policy = placement.get("policy", "round_robin")
    weights = _weights(placement.get("weights", {}), actors)
    if policy == "least_loaded":
        _check_class_weights(actors, weights)
    return Scenario(
        path=resolved,
        text=text,
        name=sim.get("name", path.stem),
        tick_duration=tick_duration,
        stop_tick=_stop_tick(sim, tick_duration),
        seed=sim.get("seed"),
        mode=sim.get("mode", "reproducible"),
        actors=actors,
        output=results.get("output"),
        data=data,
        include=results.get("include", []),
        exclude=results.get("exclude", []),
        plots=results.get("plots", True),
        plot_modes=results.get("plot", {}),
        group_size=deployment.get("group_size"),
        routing=deployment.get("routing", "direct"),
        watchdog_s=deployment.get("watchdog_s", 60.0),
        placement=policy,
        weights=weights,
        populations=populations,
        process_grid=deployment.get("process_grid"),
        checkpoint_every_ticks=checkpoint.get("every_ticks"),
        checkpoint_every_s=checkpoint.get("every_s"),
        checkpoint_keep=checkpoint.get("keep", 2),
    )


def _parse(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ScenarioError(
            "arrays or tables nested too deeply to read",
            fix=f"nest at most {MAX_DEPTH} levels",
        ) from None
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
        if found:
            what, line, column = found.groups()
            where, what = f"line {line}", f"{what} (column {column})"
        else:
            where, what = "end of file", message.removesuffix(" (at end of document)")
        raise ScenarioError(what, where=where, fix="fix the TOML syntax there") from None


# A run ends at stop_tick or after duration: setting one replaces the other.
_EXCLUSIVE = {
    ("simulation", "stop_tick"): "duration",
    ("simulation", "duration"): "stop_tick",
    ("checkpoint", "every_ticks"): "every_s",
    ("checkpoint", "every_s"): "every_ticks",
}


def _apply(data: dict, override: Override) -> None:
    """Put ``override`` into the document, in place of what the file says."""
    if override.section == "populations":  # every entry (there may be none)
        for entry in data.get("populations") or ():
            if isinstance(entry, dict):
                entry[override.key] = override.value
        return
    table = data.setdefault(override.section, {})
    if isinstance(table, dict):  # otherwise the section check reports it
        table[override.key] = override.value
        other = _EXCLUSIVE.get((override.section, override.key))
        if other is not None:
            table.pop(other, None)


def _stop_tick(sim: dict, tick_duration: float) -> int | None:
    if "duration" not in sim:
        return sim.get("stop_tick")
    if "stop_tick" in sim:
        raise ScenarioError(
            "both stop_tick and duration are given", where="[simulation]", fix="keep only one"
        )
    try:
        return seconds_to_ticks(sim["duration"], tick_duration)
    except TimeConversionError as error:
        raise ScenarioError(str(error), where="[simulation] duration") from None
