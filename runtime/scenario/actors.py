"""The ``[[actors]]`` and ``[[populations]]`` entries of a scenario, and placement weights.

Initial actors are numbered in scenario order: entry by entry, instance by
instance, from AAI 1. An entry's ``id`` names its actors (``"shop"``, or
``"lp-0"`` .. for counted entries), and an ``"@id"`` string anywhere in another
entry's ``args`` becomes that actor's AAI. References may point forward.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from engine import Actor

from ..placement import class_weight
from .classes import _check_args, _check_types, _resolve_class
from .values import (
    ScenarioError,
    _arguments,
    _check_keys,
    _expected,
    _hint,
    _id,
    _one_of,
    _positive,
    _quote,
    _table,
    _text,
    _unknown,
    _whole,
)

_ACTOR_KEYS = {"class": _text, "count": _whole(0), "args": _table, "id": _id, "hint": _hint}
MAX_POPULATION_NAME = 100  # characters; probe names ("<name>.<field>.mean") hold 200
_POPULATION_KEYS = {
    "class": _text,
    "name": _id,
    "args": _table,
    "backend": _one_of(("cpu", "threads", "cuda")),
    "digest": _one_of(("portable", "per-backend")),
}


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
    backend: str | None = None  # cpu, threads or cuda; None: the default (docs/populations.md)
    digest: str = "portable"  # or "per-backend": its floats may differ on the GPU


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
        weight = _positive()(value, where)
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
        _check_args(cls, Actor, args, label)
        _arguments(args, f"{label} args")
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
        _check_types(entry.cls, Actor, entry.args, label)  # "@id" references are AAIs now
    _model_checks(entries)
    return entries


def _model_checks(entries: list[ActorEntry]) -> None:
    """Run each class's ``check_scenario(entries)``, if it has one, once per distinct check.

    A model whose entries must agree with data of its own (a generated city)
    says so before the run starts: a ``ValueError`` it raises becomes the
    scenario's one-line error.
    """
    checks = [getattr(entry.cls, "check_scenario", None) for entry in entries]
    for check in dict.fromkeys(c for c in checks if callable(c)):
        try:
            check(entries)
        except ValueError as error:
            raise ScenarioError(" ".join(str(error).splitlines()), where="[[actors]]") from None


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
        candidates = [c for c in candidates if _instance(c[1:], ids)]  # only what resolves
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
        _check_args(cls, DensePopulation, args, label)
        _arguments(args, f"{label} args")
        _check_types(cls, DensePopulation, args, label)
        name = values.get("name", cls.__name__.lower())
        if "/" in name or len(name) > MAX_POPULATION_NAME:  # it starts its probes' names
            _expected(
                name,
                f"{label} name",
                f'a non-empty string without "@" or "/", at most {MAX_POPULATION_NAME} characters',
            )
        for other, entry in enumerate(entries, 1):
            if entry.name == name:
                raise ScenarioError(
                    f"name {_quote(name)} is already used by [[populations]] #{other}",
                    where=f"{label} name",
                    fix="give each population its own name",
                )
        entries.append(
            PopulationEntry(
                cls,
                values["class"],
                name,
                args,
                values.get("backend"),
                values.get("digest", "portable"),
            )
        )
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
