"""The seam between one rank's kernel and the others.

The kernel runs one rank. Everything it needs from the rest of the world goes
through a ``Transport``: one exchange of message batches and one consensus per
diasca. ``LocalTransport`` is the single-process case; the MPI transport in
``runtime`` implements the same two calls across ranks and s_groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# A message waiting in its target's inbox: (sender AAI, handler function, args); the
# kernel calls handler(target, sender, *args). A target's entries arrive in each
# sender's send order (an exchange keeps the order of a sender's messages), so a
# stable sort by sender AAI gives the canonical order: by sender, then send order.
InboxEntry = tuple[int, Callable[..., Any], tuple]
# A message crossing ranks: (target AAI, sender AAI, handler name, args); the
# receiving rank looks the name up in the target's class.
Envelope = tuple[int, int, str, tuple]
# A creation request: (creator AAI, creator's creation count, class, hint, tag, kwargs).
Creation = tuple[int, int, type, Any, Any, dict]


@dataclass(slots=True)
class Failure:
    """What a rank reports when a model (or the engine on its behalf) fails."""

    aai: int
    class_name: str
    handler: str
    tick: int
    diasca: int
    message: str
    traceback: str = ""
    rank: int = 0
    ident: str = ""  # the actor's scenario id, when it has one

    def describe(self) -> str:
        named = f"{self.class_name}, id {self.ident!r}" if self.ident else self.class_name
        where = f"actor {self.aai} ({named})" if self.aai else "the engine"
        return (
            f"model failure in {where}, {self.handler}, at tick {self.tick} diasca {self.diasca}"
            f" on rank {self.rank}: {self.message}"
        )


@dataclass(slots=True)
class Report:
    """One rank's end-of-diasca report, and after ``merge`` the global decision input.

    ``active``: something was sent, created or deleted, so another diasca follows.
    ``next_tick``: the smallest planned tick, None when nothing is planned.
    """

    active: bool = False
    next_tick: int | None = None
    creations: list[Creation] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)  # AAIs that called terminate()
    interrupt: bool = False
    tick: int = 0
    diasca: int = 0
    events: int = 0  # events processed so far (summed over ranks once merged)

    @staticmethod
    def merge(reports: list[Report]) -> Report:
        """Combine rank reports; the result does not depend on their order."""
        ticks = [r.next_tick for r in reports if r.next_tick is not None]
        creations = [c for r in reports for c in r.creations]
        creations.sort(key=lambda c: (c[0], c[1]))
        failures = [f for r in reports for f in r.failures]
        failures.sort(key=lambda f: (f.rank, f.aai))
        return Report(
            active=any(r.active for r in reports),
            next_tick=min(ticks) if ticks else None,
            creations=creations,
            failures=failures,
            terminated=sorted(a for r in reports for a in r.terminated),
            interrupt=any(r.interrupt for r in reports),
            tick=reports[0].tick,
            diasca=reports[0].diasca,
            events=sum(r.events for r in reports),
        )


class Transport(Protocol):
    """What a kernel needs from the other ranks."""

    rank: int
    size: int

    def exchange(self, outgoing: dict[int, list[Envelope]]) -> list[Envelope]:
        """Deliver per-rank batches; return the envelopes addressed to this rank.

        The envelopes of one batch must come out in their order: message order
        depends on it (see ``InboxEntry``).
        """

    def agree(self, report: Report) -> Report:
        """The hierarchical consensus: every rank gets the same merged report."""

    # Dense populations (engine.dense): NumPy buffers only, never pickles.
    def halo_exchange(
        self, sends: list[tuple[int, int, np.ndarray]], recvs: list[tuple[int, int, np.ndarray]]
    ) -> None:
        """One non-blocking round: send each (rank, tag, buffer), fill each (rank, tag, buffer).

        Buffers are contiguous; a receive matches the send of that rank with that
        tag. A rank may send to itself (periodic wrap). Returns when all are done.
        """

    def allgather_arrays(self, array: np.ndarray) -> list[np.ndarray]:
        """Every rank's 1-D ``array`` (any length, one dtype everywhere), in rank order."""


class Placement(Protocol):
    """Chooses the rank of each actor; AAIs never depend on it."""

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        """Rank for actor ``aai``; ``creator`` is 0 for initial actors."""


class LocalTransport:
    """A single process: everything is local, the consensus is the own report."""

    rank = 0
    size = 1

    def exchange(self, outgoing: dict[int, list[Envelope]]) -> list[Envelope]:
        if outgoing:
            raise RuntimeError("a single-rank run has no other rank to send to")
        return []

    def agree(self, report: Report) -> Report:
        return Report.merge([report])

    def halo_exchange(
        self, sends: list[tuple[int, int, np.ndarray]], recvs: list[tuple[int, int, np.ndarray]]
    ) -> None:
        sent = {(peer, tag): buf for peer, tag, buf in sends}
        for peer, tag, buf in recvs:  # the only peer is this rank: a periodic wrap
            np.copyto(buf.reshape(-1), sent[(peer, tag)].reshape(-1))

    def allgather_arrays(self, array: np.ndarray) -> list[np.ndarray]:
        return [np.array(array, copy=True).reshape(-1)]


class RoundRobin:
    """Actor ``aai`` goes to rank ``(aai - 1) % size``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        return (aai - 1) % self.size
