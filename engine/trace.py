"""Per-tick performance figures of one rank: the raw material of the performance tracker."""

from __future__ import annotations

from array import array

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
