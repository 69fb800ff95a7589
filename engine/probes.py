"""Probe recording: buffers of (tick, AAI, value) rows, one per probe name.

The engine only buffers. Full buffers go to a sink that the runtime provides
(an HDF5 staging file in a real run), so memory stays bounded however long the
run. Rows are flat typed arrays, not Python objects: 8 bytes per field.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .errors import SimulationError

MAX_VECTOR = 1024


class ProbeSink(Protocol):
    def write(self, name: str, ticks: np.ndarray, aais: np.ndarray, values: np.ndarray) -> None:
        """Take one chunk of rows of probe ``name``; values has shape (n,) or (n, width)."""


class MemorySink:
    """Keeps every chunk in memory: for tests and small runs."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def write(self, name: str, ticks: np.ndarray, aais: np.ndarray, values: np.ndarray) -> None:
        self.chunks.setdefault(name, []).append((ticks, aais, values))

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = self.chunks[name]
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


class _Series:
    __slots__ = ("ticks", "aais", "values", "width")

    def __init__(self, width: int) -> None:
        self.ticks = array("q")
        self.aais = array("q")
        self.values = array("d")
        self.width = width  # 0 for scalars


class ProbeStore:
    """Collects what actors record; only probes that ``wanted`` accepts cost anything."""

    def __init__(
        self,
        sink: ProbeSink | None = None,
        wanted: Callable[[str], bool] | None = None,
        chunk_rows: int = 1 << 18,
    ) -> None:
        self.sink: ProbeSink = sink if sink is not None else MemorySink()
        self._wanted = wanted
        self._chunk_rows = chunk_rows
        self._series: dict[str, _Series | None] = {}
        self.rows = 0

    def record(self, name: str, tick: int, aai: int, value: object) -> None:
        series = self._series.get(name, False)
        if series is False:
            series = self._open(name, value)
        if series is None:  # excluded probe: nothing is kept
            return
        if series.width:
            vec = np.asarray(value, dtype=np.float64).ravel()
            if vec.size != series.width:
                raise SimulationError(
                    f"probe '{name}' holds vectors of length {series.width}; got length {vec.size}"
                )
            series.values.frombytes(vec.tobytes())
        else:
            try:
                series.values.append(value)  # type: ignore[arg-type]
            except TypeError:
                raise SimulationError(
                    f"probe '{name}' records numbers; got {type(value).__name__} {value!r}"
                ) from None
        series.ticks.append(tick)
        series.aais.append(aai)
        self.rows += 1
        if len(series.ticks) >= self._chunk_rows:
            self._flush(name, series)

    def _open(self, name: str, value: object) -> _Series | None:
        if not isinstance(name, str) or not name or "/" in name:
            raise SimulationError(
                f"a probe name must be a non-empty string without '/'; got {name!r}"
            )
        if self._wanted is not None and not self._wanted(name):
            self._series[name] = None
            return None
        if isinstance(value, (int, float, np.integer, np.floating)):
            width = 0
        else:
            vec = np.asarray(value)
            if vec.ndim != 1 or not 0 < vec.size <= MAX_VECTOR or vec.dtype.kind not in "biuf":
                raise SimulationError(
                    f"probe '{name}': record a number or a 1-D numeric vector of 1 to "
                    f"{MAX_VECTOR} elements; got {type(value).__name__} {value!r:.60}"
                )
            width = vec.size
        series = self._series[name] = _Series(width)
        return series

    def _flush(self, name: str, series: _Series) -> None:
        if not series.ticks:
            return
        values = np.frombuffer(series.values, dtype=np.float64).copy()
        if series.width:
            values = values.reshape(-1, series.width)
        ticks = np.frombuffer(series.ticks, dtype=np.int64).copy()
        aais = np.frombuffer(series.aais, dtype=np.int64).copy()
        self.sink.write(name, ticks, aais, values)
        series.ticks, series.aais, series.values = array("q"), array("q"), array("d")

    def flush(self) -> None:
        """Hand every buffered row to the sink (end of run, or before a checkpoint)."""
        for name, series in self._series.items():
            if series is not None:
                self._flush(name, series)

    @property
    def names(self) -> list[str]:
        return sorted(n for n, s in self._series.items() if s is not None)
