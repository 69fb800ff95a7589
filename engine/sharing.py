"""Mutable state shared by two actors: the commonest way to break layout independence.

Python lets two actors hold the same list, most often through a mutable
default argument (``def __init__(self, visitors=[])``). On one rank both see
every change the other makes; on two ranks each has its own copy, so results
depend on the layout. After the initial actors are built, the kernel looks for
one mutable object (list, dict, set, bytearray, NumPy array, or a subclass)
held in the attributes of two actors, and reports each (class, attribute) once.

Only identity is checked: two views of one NumPy array, or a list inside a
shared dict's value, are not seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .actor import Actor

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
        if klass is Actor or klass is object:
            continue
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else [s for s in slots if s != "__dict__"]
    return tuple(names)


def shared_state(actors: Iterable[Actor]) -> list[SharedState]:
    """Each (class, attribute) whose mutable object some other actor also holds.

    One pass over the actors' attributes, remembering the first holder of every
    mutable object by ``id``; the actors keep those objects alive meanwhile.
    """
    holders: dict[int, tuple[int, str]] = {}  # id(object) -> (AAI, attribute)
    found: dict[tuple[type, str], SharedState] = {}
    slots: dict[type, tuple[str, ...]] = {}
    plain, mutable = _PLAIN, _MUTABLE
    for actor in actors:
        cls = type(actor)
        names = slots.get(cls)
        if names is None:
            names = slots[cls] = _model_slots(cls)
        items = list(actor.__dict__.items())
        if names:
            items += [(n, getattr(actor, n)) for n in names if hasattr(actor, n)]
        aai = actor._aai
        for name, value in items:
            if type(value) in plain or not isinstance(value, mutable):
                continue
            first = holders.setdefault(id(value), (aai, name))
            if first[0] != aai and (cls, name) not in found:
                found[(cls, name)] = SharedState(
                    cls, name, type(value).__name__, aai, first[0], first[1]
                )
    return list(found.values())


__all__ = ["SharedState", "shared_state"]
