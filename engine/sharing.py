"""Mutable state shared by two actors: the commonest way to break layout independence.

Python lets two actors hold the same list, most often through a mutable
default argument (``def __init__(self, visitors=[])``). On one rank both see
every change the other makes; on two ranks each has its own copy, so results
depend on the layout. After the initial actors are built, the kernel looks for
one mutable object (list, dict, set, bytearray, NumPy array, or a subclass)
held in the attributes of two actors, and reports each (class, attribute) once.

Only identity is checked: two views of one NumPy array, or a list inside a
shared dict's value, are not seen.

Cost: looking at every actor takes 0.4 to 0.7 s per million actors of plain
numbers and 1.3 to 3.5 s per million with a list and a dict each
(``benchmarks/sharing.py`` on a shared 2-core machine), as long as building
them or longer. So a rank that builds more than ``FULL_SCAN``
initial actors looks only at the first ``SAMPLE`` of each scenario entry, all
entries together. That still catches what makes every actor of a class share
an object: a mutable default argument, a class attribute, a module global.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ._columns import own_items
from .actor import Actor

FULL_SCAN = 10_000  # initial actors on a rank up to which every one is looked at
SAMPLE = 1_000  # beyond: the first actors of each scenario entry looked at

_ENGINE_CLASSES = frozenset(Actor.__mro__)  # their slots are the engine's, not the model's
_MUTABLE = (list, dict, set, bytearray, np.ndarray)
_PLAIN = frozenset({int, float, str, bool, type(None), tuple, frozenset, bytes})


@dataclass(frozen=True)
class SharedState:
    """One attribute whose object another actor holds too (the first pair found)."""

    cls: type  # the class of the second actor found holding the object
    attribute: str
    kind: str  # the object's type name: "list", "dict", "ndarray", ...
    aai: int  # the second actor
    other_aai: int  # the first actor found holding it
    other_attribute: str


def _model_slots(cls: type) -> tuple[str, ...]:
    """Slot names that model classes (not the engine's Actor) declare."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass in _ENGINE_CLASSES:
            continue
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else [s for s in slots if s != "__dict__"]
    return tuple(names)


def shared_state(actors: Iterable[Actor]) -> list[SharedState]:
    """Each (class, attribute) whose mutable object some other actor also holds.

    One pass over the actors' attributes, remembering the first holder of every
    mutable object by ``id``; the actors keep those objects alive meanwhile. The
    garbage collector is off during the pass: it would walk every actor again
    and again while the table of holders grows.
    """
    holders: dict[int, Actor] = {}  # id(object) -> the first actor found holding it
    found: dict[tuple[type, str], SharedState] = {}
    slots: dict[type, tuple[str, ...]] = {}
    plain, mutable = _PLAIN, _MUTABLE
    collecting = gc.isenabled()
    gc.disable()
    try:
        for actor in actors:
            cls = type(actor)
            names = slots.get(cls)
            if names is None:
                names = slots[cls] = _model_slots(cls)
            items: Iterable = own_items(actor)  # not __dict__: see engine._columns
            if names:
                items = [*items, *((n, getattr(actor, n)) for n in names if hasattr(actor, n))]
            for name, value in items:
                if type(value) in plain or not isinstance(value, mutable):
                    continue
                first = holders.setdefault(id(value), actor)
                if first is not actor and (cls, name) not in found:
                    found[(cls, name)] = SharedState(
                        cls, name, type(value).__name__, actor.aai, first.aai, _name(first, value)
                    )
    finally:
        if collecting:
            gc.enable()
    return list(found.values())


def shared_by_initial(
    actors: Sequence[Actor | None], built: list[Sequence[int]]
) -> list[SharedState]:
    """``shared_state`` of the initial actors of a rank, given by AAI block by block
    (the first ``SAMPLE`` of each block when there are more than ``FULL_SCAN``)."""
    if sum(map(len, built)) > FULL_SCAN:
        built = [aais[:SAMPLE] for aais in built]
    return shared_state(actors[aai] for aais in built for aai in aais)  # type: ignore[misc]


def _name(actor: Actor, value: object) -> str:
    """The attribute of ``actor`` that holds ``value`` (found again: the rare path)."""
    for name, held in own_items(actor):
        if held is value:
            return name
    for name in _model_slots(type(actor)):
        if getattr(actor, name, None) is value:
            return name
    return "?"


__all__ = ["FULL_SCAN", "SAMPLE", "SharedState", "shared_by_initial", "shared_state"]
