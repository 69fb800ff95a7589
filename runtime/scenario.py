"""Scenario files: read a TOML file, apply ``--set`` overrides, check everything.

Every check happens here, before any rank starts, so that a bad scenario costs
the user one clear line (file, key, what to do) instead of a traceback from the
middle of a distributed run. Actor classes are imported and their constructor
arguments matched now, and ``"@id"`` references become AAIs, which scenario
order alone fixes.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from engine import MODES, Actor, TimeConversionError, seconds_to_ticks

from .launch import ROUTINGS
from .placement import POLICIES, class_weight


class ScenarioError(Exception):
    """A bad scenario. ``str(e)`` is the one-line message shown to the user.

    It reads ``<file>: <where>: <problem>; <fix>``. Checks raise it without the
    file; :func:`load_scenario` fills it in.
    """

    def __init__(
        self, problem: str, *, where: str = "", fix: str = "", file: str | None = None
    ) -> None:
        super().__init__(problem)
        self.problem, self.where, self.fix, self.file = problem, where, fix, file

    def __str__(self) -> str:
        text = ": ".join(part for part in (self.file, self.where, self.problem) if part)
        if self.fix:
            text = f"{text}; {self.fix}"
        return " ".join(text.splitlines())  # always one line


@dataclass
class ActorEntry:
    """One ``[[actors]]`` entry, checked: ``count`` instances from ``first_aai`` on."""

    cls: type
    class_ref: str
    count: int
    first_aai: int
    args: dict
    id: str | None
    hint: object | None
    refs: list[int] = field(default_factory=list)  # AAIs its args reference, sorted, unique


@dataclass
class PopulationEntry:
    """One ``[[populations]]`` entry, checked: an engine.DensePopulation subclass and its args."""

    cls: type
    class_ref: str
    name: str
    args: dict


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
    group_size: int | None = None  # None: one group of all ranks
    routing: str = "direct"
    watchdog_s: float = 60.0
    placement: str = "round_robin"
    weights: dict[type, float] = field(default_factory=dict)
    populations: list[PopulationEntry] = field(default_factory=list)
    process_grid: tuple[int, int] | None = None  # [deployment] process grid of 2-D populations


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read, override and check a scenario file; raise ScenarioError on the first problem."""
    try:
        return _load(Path(path), overrides)
    except ScenarioError as error:
        error.file = str(path)
        raise


# --- values ------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|min|s|h|d|w)")
_DURATION = re.compile(rf"(?:{_PART.pattern})+\s*")
_DURATION_HELP = (
    'a number of seconds or a duration such as "90s", "15min" or "1h30min" '
    "(units: ms, s, min, h, d, w)"
)


def parse_duration(text: str | int | float, where: str) -> float:
    """Seconds in a duration written as a number of seconds or as "1h30min".

    ``where`` names the key in the error message.
    """
    if isinstance(text, str) and _DURATION.fullmatch(text):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    elif isinstance(text, int | float) and not isinstance(text, bool) and math.isfinite(text):
        seconds = float(text)
    else:
        _expected(text, where, _DURATION_HELP)
    if seconds <= 0:
        _expected(text, where, "a duration > 0 seconds")
    return seconds


def _describe(value: Any) -> str:
    """A value and its TOML type, as an error message shows it."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"date/time {value}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _expected(value: Any, where: str, expected: str) -> NoReturn:
    raise ScenarioError(f"got {_describe(value)}", where=where, fix=f"expected {expected}")


def _unknown(problem: str, name: str, known: list[str], where: str, listing: str) -> NoReturn:
    """An unknown name, with "did you mean" when one of ``known`` is close."""
    close = difflib.get_close_matches(name, known, n=1)
    fix = f"did you mean {close[0]}? " if close else ""
    raise ScenarioError(problem, where=where, fix=f"{fix}{listing}: {', '.join(known)}")


# --- key checkers: (value, where) -> checked value ---------------------------


def _text(value: Any, where: str) -> str:
    if type(value) is not str or not value:
        _expected(value, where, "a non-empty string")
    return value


def _name(value: Any, where: str) -> str:
    if type(value) is not str or not value or "/" in value or "\\" in value:
        _expected(value, where, "a non-empty string without / or \\ (it names the results folder)")
    return value


def _whole(minimum: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if type(value) is not int or value < minimum:  # type(True) is bool, not int
            _expected(value, where, f"a whole number >= {minimum}")
        return value

    return check


def _mode(value: Any, where: str) -> str:
    if type(value) is not str or value not in MODES:
        _expected(value, where, f"one of {', '.join(MODES)}")
    return value


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        _expected(value, where, "a table")
    return value


def _id(value: Any, where: str) -> str:
    if type(value) is not str or not value or "@" in value:
        _expected(value, where, 'a non-empty string without "@"')
    return value


def _hint(value: Any, where: str) -> str | int:
    if type(value) not in (str, int):
        _expected(value, where, "a string or a whole number")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if type(value) is not str or value not in choices:
            _expected(value, where, f"one of {', '.join(choices)}")
        return value

    return check


def _positive(value: Any, where: str) -> float:
    if not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        _expected(value, where, "a number > 0")
    return float(value)


def _seconds(value: Any, where: str) -> float:
    if not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        _expected(value, where, "a number of seconds > 0")
    return float(value)


# Allowed keys of each table and their checkers: a new key is one line here.
_SIMULATION_KEYS = {
    "name": _name,
    "tick_duration": parse_duration,
    "stop_tick": _whole(1),
    "duration": parse_duration,
    "seed": _whole(0),
    "mode": _mode,
}
_ACTOR_KEYS = {"class": _text, "count": _whole(0), "args": _table, "id": _id, "hint": _hint}


def _patterns(value: Any, where: str) -> list[str]:
    """A list of regular expressions, each checked now rather than at run time."""
    example = 'e.g. ["^stock$", "cans_.*"]'
    if not isinstance(value, list):
        _expected(value, where, f"an array of regular expressions, {example}")
    for i, pattern in enumerate(value):
        if type(pattern) is not str:
            _expected(pattern, f"{where}[{i}]", f"a regular expression (a string), {example}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ScenarioError(
                f"got string {_quote(pattern)}, which is not a regular expression ({error})",
                where=f"{where}[{i}]",
                fix=r"fix the pattern; to match a special character such as ( itself, "
                r"put a backslash before it: '\(' (in TOML single quotes)",
            ) from None
    return list(value)


def _boolean(value: Any, where: str) -> bool:
    if type(value) is not bool:
        _expected(value, where, "true or false")
    return value


_RESULTS_KEYS = {"output": _text, "include": _patterns, "exclude": _patterns, "plots": _boolean}


def _process_grid(value: Any, where: str) -> tuple[int, int]:
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(type(v) is int and v >= 1 for v in value)
    ):
        _expected(value, where, "[rows, columns] of ranks, e.g. [2, 2]")
    return (value[0], value[1])


_DEPLOYMENT_KEYS = {
    "group_size": _whole(1),
    "routing": _one_of(ROUTINGS),
    "watchdog_s": _seconds,
    "process_grid": _process_grid,
}
_PLACEMENT_KEYS = {"policy": _one_of(POLICIES), "weights": _table}

_SECTIONS = {
    "simulation": "[simulation]",
    "actors": "[[actors]]",
    "results": "[results]",
    "deployment": "[deployment]",
    "placement": "[placement]",
    "populations": "[[populations]]",
}
_POPULATION_KEYS = {"class": _text, "name": _id, "args": _table}
_OVERRIDABLE = {
    "simulation": _SIMULATION_KEYS,
    "results": _RESULTS_KEYS,
    "deployment": _DEPLOYMENT_KEYS,
    "placement": _PLACEMENT_KEYS,
}


def _check_keys(table: dict, keys: dict[str, Callable], where: str) -> dict:
    """The checked values of ``table``, whose keys must all be in ``keys``."""
    checked = {}
    for key, value in table.items():
        check = keys.get(key)
        if check is None:
            _unknown("unknown key", key, list(keys), f"{where} {key}", "allowed keys")
        checked[key] = check(value, f"{where} {key}")
    return checked


# --- the document ------------------------------------------------------------


def _load(path: Path, overrides: Iterable[str]) -> Scenario:
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
    for override in overrides:
        _apply_override(data, override)

    for key, value in data.items():
        if key not in _SECTIONS:
            label = f"[{key}]" if isinstance(value, dict) else key
            label = f"[[{key}]]" if isinstance(value, list) else label
            _unknown("unknown section", label, list(_SECTIONS.values()), label, "known sections")
    if "simulation" not in data:
        raise ScenarioError("missing section", where="[simulation]", fix="add a [simulation] table")
    sim = _check_keys(_table(data["simulation"], "[simulation]"), _SIMULATION_KEYS, "[simulation]")
    results = _check_keys(_table(data.get("results", {}), "[results]"), _RESULTS_KEYS, "[results]")
    deployment = _check_keys(
        _table(data.get("deployment", {}), "[deployment]"), _DEPLOYMENT_KEYS, "[deployment]"
    )
    placement = _check_keys(
        _table(data.get("placement", {}), "[placement]"), _PLACEMENT_KEYS, "[placement]"
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
        group_size=deployment.get("group_size"),
        routing=deployment.get("routing", "direct"),
        watchdog_s=deployment.get("watchdog_s", 60.0),
        placement=policy,
        weights=weights,
        populations=populations,
        process_grid=deployment.get("process_grid"),
    )


def _parse(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
        if found:
            what, line, column = found.groups()
            where, what = f"line {line}", f"{what} (column {column})"
        else:
            where, what = "end of file", message.removesuffix(" (at end of document)")
        raise ScenarioError(what, where=where, fix="fix the TOML syntax there") from None


def _apply_override(data: dict, override: str) -> None:
    """Set ``section.key=value`` in the document, the value read as TOML if it can be."""
    where = f"--set {override}"
    target, equals, text = override.partition("=")
    section, dot, key = target.strip().partition(".")
    if not (equals and section and dot and key):
        raise ScenarioError(
            "malformed override",
            where=where,
            fix="expected section.key=value, e.g. simulation.seed=5",
        )
    keys = _OVERRIDABLE.get(section)
    if keys is None:
        known = [f"[{name}]" for name in _OVERRIDABLE]
        listing = "only these sections can be set"
        _unknown("section cannot be set", f"[{section}]", known, where, listing)
    if key not in keys:
        _unknown(f"unknown key of [{section}]", key, list(keys), where, "allowed keys")
    text = text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: --set simulation.name=foo
    table = data.setdefault(section, {})
    if isinstance(table, dict):  # otherwise the section check reports it
        table[key] = value


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


# --- placement -----------------------------------------------------------------


def _weights(table: dict, actors: list[ActorEntry]) -> dict[type, float]:
    """``[placement] weights``: class strings of [[actors]] entries to weights > 0."""
    classes: dict[str, type] = {}
    for entry in actors:
        classes.setdefault(entry.class_ref, entry.cls)
    weights: dict[type, float] = {}
    named_by: dict[type, str] = {}
    for key, value in table.items():
        where = f"[placement] weights.{_quote(key)}"
        cls = classes.get(key)
        if cls is None:
            known = [_quote(ref) for ref in classes]
            problem = f"no [[actors]] entry has class {_quote(key)}"
            _unknown(problem, _quote(key), known, where, "the classes of [[actors]]")
        weight = _positive(value, where)
        if cls in named_by and weights[cls] != weight:
            raise ScenarioError(
                f"{_quote(key)} and {_quote(named_by[cls])} are the same class "
                f"with different weights",
                where=where,
                fix="keep one of them",
            )
        weights[cls], named_by[cls] = weight, key
    return weights


def _check_class_weights(actors: list[ActorEntry], weights: dict[type, float]) -> None:
    """Under least_loaded, a class's own numeric ``weight`` attribute must be > 0."""
    for number, entry in enumerate(actors, 1):
        if entry.cls in weights:
            continue
        try:
            class_weight(entry.cls)
        except ValueError:
            value = entry.cls.weight
            raise ScenarioError(
                f"{entry.cls.__name__}.weight is {value!r}, which cannot be a placement weight",
                where=f"[[actors]] #{number} (class {_quote(entry.class_ref)})",
                fix="make it a number > 0, or give the class a weight in [placement] weights",
            ) from None


# --- actors ------------------------------------------------------------------


def _actors(items: Any, folder: Path, allow_none: bool = False) -> list[ActorEntry]:
    """Check every entry, then resolve references, which may point forward."""
    if allow_none and items is None:
        return []
    if items is None or items == []:
        raise ScenarioError(
            "no actors",
            where="[[actors]]",
            fix='add at least one [[actors]] table with a class, e.g. class = "model.py:Shop"',
        )
    if not isinstance(items, list):
        _expected(items, "[[actors]]", "an array of tables: write [[actors]] before each entry")
    entries: list[ActorEntry] = []
    labels: list[str] = []
    ids: dict[str, ActorEntry] = {}
    next_aai = 1
    for number, item in enumerate(items, 1):
        label, values, cls = _classed_entry(item, f"[[actors]] #{number}", _ACTOR_KEYS, folder)
        args = values.get("args", {})
        _check_args(cls, args, label)
        entry = ActorEntry(
            cls=cls,
            class_ref=values["class"],
            count=values.get("count", 1),
            first_aai=next_aai,
            args=args,
            id=values.get("id"),
            hint=values.get("hint"),
        )
        if entry.id is not None:
            _register(entry, ids, entries, f"{label} id")
        next_aai += entry.count
        entries.append(entry)
        labels.append(label)
    for entry, label in zip(entries, labels, strict=True):
        refs: set[int] = set()
        entry.args = _resolve(entry.args, ids, f"{label} args", refs)
        entry.refs = sorted(refs)
    return entries


def _instance(name: str, ids: dict[str, ActorEntry]) -> tuple[ActorEntry, int] | None:
    """The entry and the index of the instance called ``name``: "shop", or "lp-3"."""
    entry = ids.get(name)
    if entry is not None and entry.count == 1:
        return entry, 0
    base, _, index = name.rpartition("-")
    entry = ids.get(base)
    if entry is not None and entry.count > 1 and _is_index(index) and int(index) < entry.count:
        return entry, int(index)
    return None


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit() and str(int(text)) == text


def _register(
    entry: ActorEntry, ids: dict[str, ActorEntry], entries: list[ActorEntry], where: str
) -> None:
    """Add an id, refusing one that is taken or that would give two actors one name."""
    fix = "give each entry its own id"
    if entry.id in ids:
        number = entries.index(ids[entry.id]) + 1
        raise ScenarioError(
            f"id {_quote(entry.id)} is already used by [[actors]] #{number}", where=where, fix=fix
        )
    clash = None
    if entry.count == 1 and (found := _instance(entry.id, ids)):
        clash = found[0]
    elif entry.count > 1:
        mine = {entry.id: entry}
        clash = next((e for e in ids.values() if e.count == 1 and _instance(e.id, mine)), None)
    if clash is not None:
        other = f"[[actors]] #{entries.index(clash) + 1}"
        shared = entry.id if entry.count == 1 else clash.id
        raise ScenarioError(
            f"id {_quote(entry.id)} clashes with id {_quote(clash.id)} of {other}: "
            f"both name an actor {_quote(shared)}",
            where=where,
            fix=fix,
        )
    ids[entry.id] = entry


def _resolve(value: Any, ids: dict[str, ActorEntry], where: str, refs: set[int]) -> Any:
    """``value`` with every "@id" string replaced by that actor's AAI ("@@x" is "@x").

    The AAIs are also added to ``refs``.
    """
    if isinstance(value, str) and value.startswith("@"):
        if value.startswith("@@"):
            return value[1:]
        found = _instance(value[1:], ids)
        if found is None:
            _dangling(value, ids, where)
        entry, index = found
        refs.add(entry.first_aai + index)
        return entry.first_aai + index
    if isinstance(value, list):
        return [_resolve(item, ids, f"{where}[{i}]", refs) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _resolve(item, ids, f"{where}.{key}", refs) for key, item in value.items()}
    return value


def _dangling(ref: str, ids: dict[str, ActorEntry], where: str) -> NoReturn:
    name = ref[1:]
    base, _, index = name.rpartition("-")
    entry = ids.get(name) or (ids.get(base) if _is_index(index) else None)
    if entry is not None:
        fix = f"id {_quote(entry.id)} names "
        if entry.count == 0:
            fix += "no actor (count = 0)"
        elif entry.count == 1:
            fix += f"one actor: write {_quote('@' + entry.id)}"
        else:
            fix += f"{entry.count} actors, {_quote(f'@{entry.id}-0')} to "
            fix += _quote(f"@{entry.id}-{entry.count - 1}")
    else:
        candidates = [f"@{i}" for i, e in ids.items() if e.count == 1]
        if _is_index(index):
            candidates += [f"@{i}-{index}" for i, e in ids.items() if e.count > int(index)]
        close = difflib.get_close_matches(ref, candidates, n=3)
        if close:
            fix = f"did you mean {' or '.join(map(_quote, close))}?"
        else:
            fix = f"no actor has that id (write {_quote('@' + ref)} for the string {_quote(ref)})"
    raise ScenarioError(f"dangling reference {_quote(ref)}", where=where, fix=fix)


# --- populations -----------------------------------------------------------------


def _populations(items: Any, folder: Path) -> list[PopulationEntry]:
    """``[[populations]]``: dense populations, built on every rank in this order."""
    if items is None:
        return []
    if not isinstance(items, list):
        _expected(items, "[[populations]]", "an array of tables: write [[populations]] before each")
    from engine.dense import DensePopulation  # brings Numba: only for scenarios that need it

    entries: list[PopulationEntry] = []
    for number, item in enumerate(items, 1):
        label, values, cls = _classed_entry(
            item, f"[[populations]] #{number}", _POPULATION_KEYS, folder, DensePopulation
        )
        args = values.get("args", {})
        _check_args(cls, args, label)
        name = values.get("name", cls.__name__.lower())
        if "/" in name:
            _expected(name, f"{label} name", 'a non-empty string without "@" or "/"')
        for other, entry in enumerate(entries, 1):
            if entry.name == name:
                raise ScenarioError(
                    f"name {_quote(name)} is already used by [[populations]] #{other}",
                    where=f"{label} name",
                    fix="give each population its own name",
                )
        entries.append(PopulationEntry(cls, values["class"], name, args))
    return entries


# --- classes -------------------------------------------------------------------


def _classed_entry(
    item: Any, label: str, keys: dict, folder: Path, base: type = Actor
) -> tuple[str, dict, type]:
    """An [[actors]] or [[populations]] entry's label, checked keys and resolved class."""
    _table(item, label)
    if isinstance(item.get("class"), str):
        label += f" (class {_quote(item['class'])})"
    values = _check_keys(item, keys, label)
    if "class" not in values:
        raise ScenarioError(
            "missing key class",
            where=label,
            fix='add class = "package.module:Class" or class = "path/to/file.py:Class"',
        )
    return label, values, _resolve_class(values["class"], folder, f"{label} class", base)


def _resolve_class(ref: str, folder: Path, where: str, base: type = Actor) -> type:
    """The ``base`` subclass named by "package.module:Class" or "path/to/file.py:Class"."""
    module_name, _, class_name = ref.rpartition(":")
    if not module_name or not class_name:
        raise ScenarioError(
            f"got string {_quote(ref)}",
            where=where,
            fix='expected "package.module:Class" or "path/to/file.py:Class"',
        )
    is_file = module_name.endswith(".py") or "/" in module_name or "\\" in module_name
    module = _import_file(module_name, folder, where) if is_file else _import(module_name, where)
    cls = getattr(module, class_name, None)
    if cls is None:
        kind = base.__name__
        actors = sorted(
            name
            for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
        )
        close = difflib.get_close_matches(class_name, actors, n=1)
        fix = f"did you mean {close[0]}? " if close else ""
        fix += f"its {kind} classes: {', '.join(actors)}" if actors else f"it has no {kind} class"
        raise ScenarioError(f"{_quote(module_name)} has no {class_name}", where=where, fix=fix)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ScenarioError(
            f"{class_name} is not a subclass of engine.{base.__name__}",
            where=where,
            fix=f"name a class that subclasses engine.{base.__name__}",
        )
    return cls


def _import(name: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            raise ScenarioError(
                f"no module named {_quote(name)}",
                where=where,
                fix='check the spelling, or give a file: "path/to/file.py:Class"',
            ) from error
        _import_failed(name, error, where)
    except Exception as error:
        _import_failed(name, error, where)


def _import_file(name: str, folder: Path, where: str) -> ModuleType:
    """Load a model file once, under a name that is the same on every rank.

    The name comes from the absolute path, so two files both called model.py do
    not clash, and it is registered in sys.modules so pickle finds the classes.
    """
    path = (folder / name).resolve()
    if not path.is_file():
        raise ScenarioError(
            f"no file {path}", where=where, fix="paths are relative to the scenario file's folder"
        )
    module_name = "pydiasca_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot load {path} as Python", where=where, fix="name a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        _import_failed(name, error, where)
    return module


def _import_failed(name: str, error: Exception, where: str) -> NoReturn:
    raise ScenarioError(
        f"importing {_quote(name)} failed: {type(error).__name__}: {error}",
        where=where,
        fix="fix that module",
    ) from error


def _check_args(cls: type, args: dict, label: str) -> None:
    """Match ``args`` against the constructor, if the class has one of its own."""
    if cls.__init__ is Actor.__init__ or getattr(cls.__init__, "takes_any_keyword", False):
        return  # Actor.__init__ takes any keyword and sets it as an attribute
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # past self
    except (TypeError, ValueError):
        return
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    call = f"{cls.__name__}()"
    for key in args:
        if key not in named and not takes_any:
            where = f"{label} args.{key}"
            if not named:
                raise ScenarioError(
                    f"unknown argument of {call}", where=where, fix=f"{call} takes no arguments"
                )
            _unknown(f"unknown argument of {call}", key, named, where, f"{call} accepts")
    missing = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in args
    ]
    if missing:
        example = ", ".join(f"{name} = ..." for name in missing)
        raise ScenarioError(
            f"missing required argument{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} of {call}",
            where=f"{label} args",
            fix=f"add {'them' if len(missing) > 1 else 'it'} to args, e.g. args = {{ {example} }}",
        )
