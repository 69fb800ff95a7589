"""The replicated directory: every actor's rank, class and handlers, by AAI, on every rank.

Routing a message takes one list lookup: each AAI's entry is a shared
``(rank, handlers, class number)`` tuple, one per rank and class. The directory
also knows what errors need to name an actor (its class and scenario id) and
which actors have ended, so that every rank refuses a send to them alike.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from .actor import handlers_of

# A directory entry: (rank, handlers, class number). The handlers map each name to
# a function called as fn(actor, sender, *args).
Entry = tuple[int, Any, int]
_NO_HANDLERS: Any = MappingProxyType({})  # the handlers of an ended actor: none


class Directory:
    """``entries[aai]`` for every AAI so far (slot 0 unused), and the classes they name."""

    __slots__ = (
        "entries",
        "_shared",
        "_classes",
        "_class_index",
        "_idents",
        "_ended",
        "creators",
        "hints",
    )

    def __init__(self) -> None:
        self.entries: list[Entry] = [(-1, {}, -1)]
        self._shared: dict[tuple[int, int], Entry] = {}  # (rank, class number) -> entry
        self._classes: list[type] = []
        self._class_index: dict[type, int] = {}
        self._idents: list[tuple[int, int, str]] = []  # (first AAI, count, scenario id)
        self._ended: dict[int, int] = {}  # AAI of an ended actor -> the tick it ended
        # Where each actor came from, for placing it again on resume (engine.snapshot):
        # its creator's AAI by AAI (0: initial), and (first AAI, count, hint) of hinted ones.
        self.creators = array("q", [0])
        self.hints: list[tuple[int, int, Any]] = []

    def entry(self, rank: int, cls: type) -> Entry:
        """The shared entry of an actor of ``cls`` on ``rank``."""
        cid = self._class_index.get(cls)
        if cid is None:
            cid = self._class_index[cls] = len(self._classes)
            self._classes.append(cls)
        found = self._shared.get((rank, cid))
        if found is None:
            found = self._shared[(rank, cid)] = (rank, handlers_of(cls), cid)
        return found

    def name(self, first: int, count: int, ident: str) -> None:
        """Give actors first..first+count-1 the scenario id ``ident`` (or ident-0, ident-1...)."""
        self._idents.append((first, count, ident))

    def origin(self, first: int, count: int, hint: Any, creator: int) -> None:
        """Actors first..first+count-1 were placed with ``hint`` for ``creator`` (0: initial)."""
        if creator:
            self.creators.extend([creator] * count)
        else:
            self.creators.frombytes(bytes(8 * count))
        if hint is not None:
            self.hints.append((first, count, hint))

    def end(self, aais: list[int], tick: int) -> None:
        """Actors that ended at ``tick``: their entries keep rank and class, and lose handlers."""
        entries = self.entries
        for aai in aais:
            rank, _, cid = entries[aai]
            entries[aai] = (rank, _NO_HANDLERS, cid)
            self._ended[aai] = tick

    @property
    def classes(self) -> Sequence[type]:
        return tuple(self._classes)

    def class_of(self, aai: int) -> type | None:
        if not 0 < aai < len(self.entries):
            return None
        return self._classes[self.entries[aai][2]]

    def ident_of(self, aai: int) -> str | None:
        """The scenario id of actor ``aai`` ("shop", "lp-3"), None for unnamed actors."""
        for first, count, ident in self._idents:
            if first <= aai < first + count:
                return ident if count == 1 else f"{ident}-{aai - first}"
        return None

    def label(self, aai: int) -> str:
        """How errors name an actor: ``5 (Wolf, id 'wolf-3')``, or ``5 (Wolf)``."""
        cls = self.class_of(aai)
        if cls is None:
            return str(aai)
        ident = self.ident_of(aai)
        return f"{aai} ({cls.__name__}, id {ident!r})" if ident else f"{aai} ({cls.__name__})"

    def ended_at(self, aai: int) -> int | None:
        return self._ended.get(aai)

    def handler_name(self, aai: int, fn: Any) -> str:
        """The name a message used for handler ``fn`` of actor ``aai`` (error reports)."""
        for name, found in self.entries[aai][1].items():
            if found is fn:
                return name
        return "messages"


__all__: list[str] = []  # a unit of the kernel; nothing public
