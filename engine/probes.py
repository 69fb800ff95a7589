"""Probe recording: buffers of (tick, AAI, value) rows, one per probe name.

The engine only buffers. Full buffers go to a sink that the runtime provides
(an HDF5 staging file in a real run), so memory stays bounded however long the
run. Rows are flat typed arrays, not Python objects: 8 bytes per field.

Actors record with ``Actor.record`` (AAI = the actor's); dense populations and
other engine parts record aggregates with ``ProbeStore.record`` under AAI 0, or
whole arrays at once with ``ProbeStore.record_array``. A row of AAI 0 must be
recorded by one rank only (after a canonical reduction), so that results do not
depend on the number of ranks.

A probe the run does not want (``wanted`` says no) is remembered as ``None``:
no buffer, no declaration, no I/O.
"""

from __future__ import annotations

import difflib
import reprlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import SimulationError

MAX_VECTOR = 1024

# How ``pydiasca plot`` draws a probe ("" : lines for a few actors, bands for many).
PLOT_MODES = ("bands", "sum", "mean", "count", "events")


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


@dataclass(frozen=True, slots=True)
class ProbeDeclaration:
    """What ``declare_probe`` said about a probe: its unit, vector labels and plot mode."""

    unit: str
    labels: tuple[str, ...]
    plot: str = ""  # one of PLOT_MODES, or "" for the default drawing


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
        plot_modes: dict[str, str] | None = None,
    ) -> None:
        """``plot_modes`` (probe name: mode) come from the scenario and override what
        ``declare`` says about how to plot those probes."""
        self.sink: ProbeSink = sink if sink is not None else MemorySink()
        self._plot_modes = dict(plot_modes or {})
        self._wanted = wanted
        self._chunk_rows = chunk_rows
        self._series: dict[str, _Series | None] = {}
        self._declared: dict[str, ProbeDeclaration] = {}
        self._refused: set[str] = set()  # names ``wanted`` said no to, even if only declared
        self.rows = 0

    def wants(self, name: str) -> bool:
        """Whether this run keeps probe ``name`` (asks ``wanted`` once per name)."""
        if name in self._refused:
            return False
        if self._wanted is None or name in self._series or name in self._declared:
            return True
        if self._wanted(name):
            return True
        self._refused.add(name)
        self._series[name] = None
        return False

    def declare(
        self, name: str, unit: str = "", labels: Iterable[str] | None = None, plot: str = ""
    ) -> None:
        """Give probe ``name`` a unit, for vectors one label per component, and a plot mode.

        Declaring again with the same unit and labels is harmless (every actor of
        a class may declare its probes); different ones are an error.
        """
        _check_name(name)
        if not isinstance(unit, str):
            raise SimulationError(f"probe '{name}': unit must be a string; got {unit!r}")
        if labels is None:
            labels = ()
        elif isinstance(labels, str):
            raise SimulationError(
                f"probe '{name}': labels must be a list of strings, one per vector component; "
                f"got the string {labels!r}"
            )
        labels = tuple(labels)
        if not all(isinstance(label, str) for label in labels) or len(labels) > MAX_VECTOR:
            raise SimulationError(
                f"probe '{name}': labels must be a list of at most {MAX_VECTOR} strings, "
                f"one per vector component; got {list(labels)!r:.80}"
            )
        plot = check_plot_mode(plot, f"probe '{name}'")
        if not self.wants(name):
            return
        new = ProbeDeclaration(unit, labels, plot)
        old = self._declared.get(name)
        if old is not None:
            if old != new:
                raise SimulationError(
                    f"probe '{name}' is declared twice, differently: {old} then {new}; "
                    f"declare it the same way everywhere"
                )
            return
        series = self._series.get(name)
        if series is not None and labels:
            _check_labels(name, labels, series.width)
        self._declared[name] = new

    @property
    def declarations(self) -> dict[str, ProbeDeclaration]:
        """Declared probes that this run keeps, by name, with the run's plot modes
        (a probe that only has a plot mode counts as declared once it holds rows)."""
        out = dict(self._declared)
        for name, mode in self._plot_modes.items():
            old = out.get(name)
            if old is not None:
                out[name] = ProbeDeclaration(old.unit, old.labels, mode)
            elif self._series.get(name) is not None:
                out[name] = ProbeDeclaration("", (), mode)
        return out

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

    def record_array(self, name: str, tick: int, aais: np.ndarray, values: np.ndarray) -> None:
        """Record many rows of one tick at once: ``values[i]`` for AAI ``aais[i]``.

        For populations and other array producers: ``values`` has shape (n,) for a
        scalar probe or (n, width) for a vector probe.
        """
        if not self.wants(name):
            return
        aais = np.asarray(aais, dtype=np.int64).ravel()
        values = np.asarray(values, dtype=np.float64)
        if values.shape[0] != aais.shape[0] or values.ndim not in (1, 2):
            raise SimulationError(
                f"probe '{name}': record_array needs values of shape (n,) or (n, width) for "
                f"n = {aais.shape[0]} AAIs; got shape {values.shape}"
            )
        if aais.shape[0] == 0:
            return
        series = self._series.get(name)
        if series is None:
            series = self._open(name, values[0])
            assert series is not None
        width = values.shape[1] if values.ndim == 2 else 0
        if width != series.width:
            raise SimulationError(
                f"probe '{name}' holds {_shape_text(series.width)}; got {_shape_text(width)}"
            )
        series.values.frombytes(np.ascontiguousarray(values).tobytes())
        series.ticks.frombytes(np.full(aais.shape[0], tick, dtype=np.int64).tobytes())
        series.aais.frombytes(aais.tobytes())
        self.rows += aais.shape[0]
        if len(series.ticks) >= self._chunk_rows:
            self._flush(name, series)

    def _open(self, name: str, value: object) -> _Series | None:
        _check_name(name)
        if not self.wants(name):
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
        declared = self._declared.get(name)
        if declared is not None and declared.labels:
            _check_labels(name, declared.labels, width)
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
        """Probes that hold rows (recorded at least once), sorted."""
        return sorted(n for n, s in self._series.items() if s is not None)

    def width(self, name: str) -> int | None:
        """0 for a scalar probe, the length for a vector probe, None if never recorded."""
        series = self._series.get(name)
        return None if series is None else series.width


MAX_NAME = 200  # characters: a probe's plot is the file probe-<name>.png (255 bytes at most)


def _check_name(name: object) -> None:
    """Refuse a name that cannot name an HDF5 dataset and a PNG file, where it is recorded."""
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or name in (".", "..")
        or len(name) > MAX_NAME
        or not name.isprintable()
    ):
        shown = reprlib.repr(name)
        if isinstance(name, str) and len(name) > MAX_NAME:
            shown += f" ({len(name):,} characters)"
        raise SimulationError(
            f"a probe name must be a non-empty string of at most {MAX_NAME} printable "
            f"characters, without '/' (and not . or ..); got {shown}"
        )


def check_plot_mode(mode: object, where: str) -> str:
    """``mode`` if it names a plot mode ("" is the default), else one clear error."""
    if mode == "" or mode in PLOT_MODES:
        return mode  # type: ignore[return-value]
    close = difflib.get_close_matches(str(mode), PLOT_MODES, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise SimulationError(
        f"{where}: unknown plot mode {mode!r}; {hint}plot modes: {', '.join(PLOT_MODES)}"
    )


def _check_labels(name: str, labels: tuple[str, ...], width: int) -> None:
    if len(labels) != max(width, 1) or not width:
        raise SimulationError(
            f"probe '{name}' has {len(labels)} label(s) for {_shape_text(width)}; "
            f"give one label per vector component, or none"
        )


def _shape_text(width: int) -> str:
    return "numbers" if width == 0 else f"vectors of length {width}"
