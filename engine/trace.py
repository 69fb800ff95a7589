"""Per-tick performance figures of one rank: the raw material of the performance tracker."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

FIELDS = {
    # name: (array typecode, meaning)
    "tick": ("q", "the tick"),
    "wall_s": ("d", "wall-clock seconds the tick took on this rank"),
    "diascas": ("q", "diascas the tick needed"),
    "sent": ("q", "messages this rank's actors sent"),
    "received": ("q", "messages this rank's actors processed"),
    "crossing": ("q", "messages sent to other ranks"),
    "actors": ("q", "actors alive on this rank at the end of the tick"),
    "kernel_s": ("d", "seconds in model code and dispatch"),
    "exchange_s": ("d", "seconds exchanging messages with other ranks"),
    "consensus_s": ("d", "seconds in the end-of-diasca consensus"),
}


class TickTrace:
    """One row per evaluated tick, kept in flat typed arrays (8 bytes per figure)."""

    def __init__(self) -> None:
        self._columns = {name: array(code) for name, (code, _) in FIELDS.items()}

    def add(self, **row: float) -> None:
        for name, column in self._columns.items():
            column.append(row[name])

    def __len__(self) -> int:
        return len(self._columns["tick"])

    def columns(self) -> dict[str, np.ndarray]:
        """The figures as NumPy arrays, one per field."""
        return {
            name: np.frombuffer(
                column, dtype=np.int64 if column.typecode == "q" else np.float64
            ).copy()
            for name, column in self._columns.items()
        }


@dataclass(slots=True)
class TickRow:
    """Figures of the tick being evaluated, added to the trace when it ends."""

    tick: int
    start: float
    received_before: int
    diascas: int = 0
    sent: int = 0
    crossing: int = 0
    kernel_s: float = 0.0
    exchange_s: float = 0.0
    consensus_s: float = 0.0
    closed: bool = False

    def close(self, kernel: Any, now: float) -> None:
        self.closed = True
        if self.tick == 0:
            kernel.stats.setup_s = now - self.start
        kernel.trace.add(
            tick=self.tick,
            wall_s=now - self.start,
            diascas=self.diascas,
            sent=self.sent,
            received=kernel.stats.messages - self.received_before,
            crossing=self.crossing,
            actors=kernel.actor_count,
            kernel_s=self.kernel_s,
            exchange_s=self.exchange_s,
            consensus_s=self.consensus_s,
        )
