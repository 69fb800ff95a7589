"""Figures of a run, drawn with matplotlib's Agg backend into the run folder.

One PNG per probe (``probe-<name>.png``) and two for the performance tracker
(``performance-imbalance.png``, ``performance-breakdown.png``). Every figure
reads ``results.h5`` a block at a time, so drawing a huge probe needs bounded
memory: time is cut into at most ``MAX_BINS`` bins when a probe has more
distinct ticks than that. A probe of up to ``MAX_LINES`` actors is one line per
actor (AAI 0 is "aggregate"), of more actors percentile bands (median, 10-90 %,
min-max); a vector is one panel per component, or for a single actor one line
per component (up to ``MAX_OVERLAID``) or a heat map (beyond ``MAX_PANELS``).
The time axis is simulated time, in s, min, h or d (see ``report.time_unit``).

A probe's plot mode (``declare_probe(..., plot=...)``, ``[results] plot`` or
``pydiasca plot --mode``, kept as the probe's ``plot`` attribute) replaces that
layout: ``bands`` always draws bands; ``sum``, ``mean`` and ``count`` draw one
line of the rows of each tick (``results.per_tick``); ``events`` draws the
histogram of the values and their cumulative count over time.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .figures import _BLOCK, MAX_BINS, _Axis, _bins, _figure, _save
from .performance_plots import PERFORMANCE_FILES, _draw_performance
from .report import time_unit
from .results import RESULTS_FILE, per_tick

_log = logging.getLogger("pydiasca")

MAX_LINES = 20  # more actors than this: percentile bands
MAX_PANELS = 16  # vector components drawn (one panel each)
MAX_OVERLAID = 10  # one actor's vector: components drawn in one axes up to this width
MAX_POINTS = 200_000  # rows read as they are; more: sampled per time bin
_SAMPLE = 100_000  # values kept per time bin for its percentiles


def file_name(probe: str) -> str:
    """``probe-<name>.png``, with characters unsafe in file names replaced by _; a name
    too long for a file name is cut, with a stable hash of the whole name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", probe)
    if len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.sha256(probe.encode()).hexdigest()[:12]}"
    return f"probe-{safe}.png"


def draw_run(
    run_dir: Path,
    *,
    rank: int = 0,
    size: int = 1,
    probe_pattern: str | None = None,
    performance: bool = True,
    stop: Callable[[], bool] | None = None,
    failed: list[str] | None = None,
    mode: str | None = None,
) -> list[Path]:
    """Draw this rank's share of the figures (probe ``i`` on rank ``i % size``,
    performance on rank 0); returns the PNGs written. A figure that fails is
    logged and named in ``failed``, and the others are drawn; ``stop()`` is asked
    before each figure. ``mode`` (a plot mode) replaces the probes' own."""
    results = Path(run_dir) / RESULTS_FILE
    written: list[Path] = []
    with h5py.File(results, "r") as f:
        td = float(f.attrs.get("tick_duration", 1.0))
        last = int(f.attrs.get("last_tick", 0))
        perf = f["performance"] if "performance" in f and f["performance/tick"].shape[0] else None
        last = max(last, int(perf["tick"][-1])) if perf is not None else last
        unit, unit_s = time_unit(max(last, 1) * td)
        axis = _Axis(td, unit, unit_s)
        names = sorted(f.get("probes", {}))
        if probe_pattern is not None:
            names = [n for n in names if re.search(probe_pattern, n)]
        figures: list[tuple[str, Callable[[], Any]]] = [
            (n, partial(_draw_probe, f["probes"][n], n, axis, results.parent / file_name(n), mode))
            for n in names[rank::size]
        ]
        if performance and rank == 0 and perf is not None:
            figures.append(("performance", partial(_draw_performance, perf, axis, results.parent)))
        for what, paint in figures:
            if stop is not None and stop():
                break
            try:
                written += paint()
            except Exception as exc:  # one figure never costs the others
                _log.warning("figure %s not drawn: %s: %s", what, type(exc).__name__, exc)
                if failed is not None:
                    failed.append(f"{what} ({exc})")
    return written


# --- probes -----------------------------------------------------------------------


def _actors(group: h5py.Group) -> np.ndarray:
    aai = group["aai"]
    found: set[int] = set()
    for start in range(0, aai.shape[0], _BLOCK):
        found.update(np.unique(aai[start : start + _BLOCK]).tolist())
        if len(found) > MAX_LINES:
            break
    return np.array(sorted(found), dtype=np.int64)


def _distinct_ticks(ticks_ds: h5py.Dataset) -> np.ndarray:
    parts = []
    for start in range(0, ticks_ds.shape[0], _BLOCK):
        parts.append(np.unique(ticks_ds[start : start + _BLOCK]))
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)


def _bands(group: h5py.Group, columns: list[int | None]):
    """Per time bin: its left tick, and the 0/10/50/90/100th percentiles per column."""
    t_ds, v_ds = group["tick"], group["value"]
    edges = _bins(_distinct_ticks(t_ds))
    stats = np.full((edges.shape[0], 5, len(columns)), np.nan)
    pending: list[np.ndarray] = []
    current = -1

    def close(b: int) -> None:
        if b < 0 or not pending:
            return
        vals = np.concatenate(pending)
        stats[b] = np.nanpercentile(vals, [0, 10, 50, 90, 100], axis=0)
        lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
        stats[b, 0], stats[b, 4] = lo, hi
        pending.clear()

    cols = [c if c is not None else 0 for c in columns]
    for start in range(0, t_ds.shape[0], _BLOCK):
        ticks = t_ds[start : start + _BLOCK]
        values = v_ds[start : start + _BLOCK]
        values = values[:, cols] if values.ndim == 2 else values[:, None]
        which = np.searchsorted(edges, ticks, "right") - 1
        cuts = np.flatnonzero(np.diff(which)) + 1
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, ticks.shape[0]], strict=True):
            b = int(which[s])
            if b != current:
                close(current)
                current = b
            chunk = values[s:e]
            step = max(1, chunk.shape[0] // _SAMPLE)
            if step > 1:  # keep extremes exact, sample the rest
                extremes = np.vstack([chunk.min(axis=0), chunk.max(axis=0)])
                chunk = np.vstack([chunk[::step], extremes])
            pending.append(chunk)
    close(current)
    return edges, stats


def _held_bands(group: h5py.Group, columns: list[int | None], actors: np.ndarray):
    """Like ``_bands``, over every actor's latest value at the end of each time bin.

    For probes that actors record now and then (on events): each value holds
    until the actor records again.
    """
    t_ds, a_ds, v_ds = group["tick"], group["aai"], group["value"]
    edges = _bins(_distinct_ticks(t_ds))
    stats = np.full((edges.shape[0], 5, len(columns)), np.nan)
    last = np.full((actors.shape[0], len(columns)), np.nan)
    seen = np.zeros(actors.shape[0], dtype=bool)
    cols = [c if c is not None else 0 for c in columns]
    current = -1

    def close(b: int) -> None:
        if b >= 0 and seen.any():
            stats[b] = np.percentile(last[seen], [0, 10, 50, 90, 100], axis=0)

    for start in range(0, t_ds.shape[0], _BLOCK):
        ticks = t_ds[start : start + _BLOCK]
        index = np.searchsorted(actors, a_ds[start : start + _BLOCK])
        values = v_ds[start : start + _BLOCK]
        values = values[:, cols] if values.ndim == 2 else values[:, None]
        which = np.searchsorted(edges, ticks, "right") - 1
        cuts = np.flatnonzero(np.diff(which)) + 1
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, ticks.shape[0]], strict=True):
            b = int(which[s])
            if b != current:
                close(current)
                current = b
            # The last row of each actor in the segment wins.
            idx = index[s:e][::-1]
            first, pos = np.unique(idx, return_index=True)
            last[first] = values[s:e][::-1][pos]
            seen[first] = True
    close(current)
    for b in range(1, stats.shape[0]):  # nobody recorded in a bin: every value holds
        if np.isnan(stats[b]).all():
            stats[b] = stats[b - 1]
    return edges, stats


def _lines(group: h5py.Group, actors: np.ndarray, columns: list[int | None]):
    """Per actor: ticks and values (sampled per time bin when the probe is long)."""
    t_ds, a_ds, v_ds = group["tick"], group["aai"], group["value"]
    n = t_ds.shape[0]
    cols = [c if c is not None else 0 for c in columns]
    out: dict[int, list] = {int(a): [[], []] for a in actors}
    edges = None if n <= MAX_POINTS else _bins(_distinct_ticks(t_ds))
    for start in range(0, n, _BLOCK):
        ticks, aais = t_ds[start : start + _BLOCK], a_ds[start : start + _BLOCK]
        values = v_ds[start : start + _BLOCK]
        values = values[:, cols] if values.ndim == 2 else values[:, None]
        for a in actors:
            mask = aais == a
            t, v = ticks[mask], values[mask]
            if edges is not None and t.shape[0]:  # the last value in each bin
                which = np.searchsorted(edges, t, "right") - 1
                keep = np.r_[which[1:] != which[:-1], True]
                t, v = t[keep], v[keep]
            out[int(a)][0].append(t)
            out[int(a)][1].append(v)
    return {
        a: (np.concatenate(ts), np.concatenate(vs)) for a, (ts, vs) in out.items() if ts
    }, edges is not None


def _actor_label(aai: int) -> str:
    return "aggregate" if aai == 0 else f"actor {aai}"


def _ylabel(text: str, unit: str) -> str:
    return f"{text} [{unit}]" if unit else text


@dataclass
class _Probe:
    """What decides how a probe is drawn: its rows, width, unit, labels and actors."""

    group: h5py.Group
    name: str
    rows: int
    width: int  # 0: numbers
    unit: str
    labels: list[str]
    actors: np.ndarray  # every actor when ``many``, else up to MAX_LINES
    many: bool  # more than MAX_LINES actors: percentile bands

    @classmethod
    def read(cls, group: h5py.Group, name: str) -> _Probe:
        value = group["value"]
        width = value.shape[1] if value.ndim == 2 else 0
        labels = [str(x) for x in group.attrs.get("labels", [])]
        if width and len(labels) != width:
            labels = [f"component {i}" for i in range(width)]
        actors = _actors(group) if value.shape[0] else np.empty(0, np.int64)
        many = actors.shape[0] > MAX_LINES
        if many:
            actors = _all_actors(group)
        unit = str(group.attrs.get("unit", ""))
        return cls(group, name, value.shape[0], width, unit, labels, actors, many)

    @property
    def columns(self) -> list[int | None]:
        """The panels: one for numbers, one per component (up to MAX_PANELS) for vectors."""
        return [None] if not self.width else list(range(min(self.width, MAX_PANELS)))

    @property
    def count(self) -> str:
        n = self.actors.shape[0]
        return f"{n:,} actor{'s' if n > 1 else ''}"


def _draw_probe(
    group: h5py.Group, name: str, axis: _Axis, path: Path, mode: str | None = None
) -> list[Path]:
    """One figure per probe, drawn in ``mode`` or else the probe's own plot mode;
    the default layout follows from the probe's shape and actors."""
    mode = mode or str(group.attrs.get("plot", ""))
    probe = _Probe.read(group, name)
    if probe.rows == 0:
        _draw_empty(name, path)
    elif mode in ("sum", "mean", "count"):
        _draw_aggregate(probe, axis, path, mode)
    elif mode == "events":
        _draw_events(probe, axis, path)
    elif probe.many or mode == "bands":
        _draw_bands(probe, axis, path)
    elif probe.width and probe.actors.shape[0] == 1 and probe.width > MAX_PANELS:
        _heatmap(group, name, probe.unit, probe.labels, axis, path, int(probe.actors[0]))
    elif probe.width and probe.actors.shape[0] == 1 and probe.width <= MAX_OVERLAID:
        _draw_components(probe, axis, path)
    else:
        _draw_actor_lines(probe, axis, path)
    return [path]


def _draw_empty(name: str, path: Path) -> None:
    fig = _figure(7, 3)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "no rows recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{name}")
    ax.set_axis_off()
    _save(fig, path)


def _draw_components(probe: _Probe, axis: _Axis, path: Path) -> None:
    """One actor's short vector: one line per component, in one axes."""
    series, sampled = _lines(probe.group, probe.actors, list(range(probe.width)))
    fig = _figure()
    ax = fig.add_subplot()
    ((t, v),) = series.values()
    for i in range(probe.width):
        _line(ax, axis(t), v[:, i], probe.labels[i])
    ax.legend(fontsize="small", loc="best")
    ax.set_xlabel(axis.label)
    ax.set_ylabel(_ylabel("value", probe.unit))
    who = _actor_label(int(probe.actors[0]))
    ax.set_title(f"{probe.name} ({who}){' - sampled' if sampled else ''}")
    ax.grid(alpha=0.3)
    _save(fig, path)


def _draw_bands(probe: _Probe, axis: _Axis, path: Path) -> None:
    """Many actors: median, 10-90 % and min-max bands per tick or time bin, per panel."""
    recorded_ticks = _distinct_ticks(probe.group["tick"]).shape[0]
    # Recorded by most actors at most ticks: the values of each tick. Recorded
    # now and then: every actor's latest value.
    dense = probe.rows >= 0.5 * probe.actors.shape[0] * recorded_ticks
    if dense:
        edges, stats = _bands(probe.group, probe.columns)
    else:
        edges, stats = _held_bands(probe.group, probe.columns, probe.actors)
    # Draw the last bin as wide as the one before it (one tick if there is only one).
    step = int(edges[-1] - edges[-2]) if edges.shape[0] > 1 else 1
    edges = np.r_[edges, edges[-1] + step]
    stats = np.concatenate([stats, stats[-1:]])
    x = axis(edges)
    per = "time bin" if recorded_ticks > MAX_BINS else "tick"
    how = "median, 10-90 %, min-max " + (
        f"of the values of each {per}" if dense else f"of each actor's latest value, per {per}"
    )
    fig, axes = _panel_grid(probe)
    for i, ax in enumerate(axes):
        s = stats[:, :, i]
        ax.fill_between(x, s[:, 0], s[:, 4], step="post", alpha=0.18, color="C0", label="min-max")
        ax.fill_between(x, s[:, 1], s[:, 3], step="post", alpha=0.35, color="C0", label="10-90 %")
        ax.step(x, s[:, 2], where="post", color="C0", lw=1.6, label="median")
    axes[0].legend(fontsize="small", loc="best")
    _finish_panels(fig, probe, axis, f"{probe.count}: {how}", path)


_AGGREGATES = {
    "sum": "sum over the actors recording at each tick",
    "mean": "mean over the actors recording at each tick",
    "count": "actors recording at each tick",
}


def _draw_aggregate(probe: _Probe, axis: _Axis, path: Path, mode: str) -> None:
    """One line per panel: the sum, mean or count of the rows of each tick
    (``results.per_tick``, the numbers ``Probe.series`` gives)."""
    ticks, sums, count = per_tick(probe.group)
    if mode == "count":
        probe = _Probe(probe.group, probe.name, probe.rows, 0, "actors", [], probe.actors, False)
        y = count[:, None].astype(np.float64)
    elif mode == "mean":
        y = sums / np.maximum(count, 1)[:, None]
    else:
        y = sums
    fig, axes = _panel_grid(probe)
    for i, ax in enumerate(axes):
        _line(ax, axis(ticks), y[:, i], mode)
    _finish_panels(fig, probe, axis, _AGGREGATES[mode], path)


_EVENT_BINS = 40


def _draw_events(probe: _Probe, axis: _Axis, path: Path) -> None:
    """One-shot records (a lifespan at death...): the histogram of the values, and
    how many were recorded up to each time."""
    edges, counts = _histogram(probe.group, probe.columns)
    ticks, _, per = per_tick(probe.group)
    fig = _figure(12, 4.8)
    left, right = fig.subplots(1, 2)
    for i, col in enumerate(probe.columns):
        label = probe.labels[col] if col is not None else probe.name
        left.stairs(counts[:, i], edges[:, i], label=label, fill=len(probe.columns) == 1)
    if len(probe.columns) > 1:
        left.legend(fontsize="small", loc="best")
    left.set_xlabel(_ylabel("value", probe.unit))
    left.set_ylabel("records")
    left.set_title(f"Histogram of the {probe.rows:,} values")
    left.grid(alpha=0.3)
    right.step(axis(ticks), np.cumsum(per), where="post", color="C1", lw=1.4)
    right.set_xlabel(axis.label)
    right.set_ylabel("records so far")
    right.set_title("Cumulative count over time")
    right.grid(alpha=0.3)
    fig.suptitle(f"{probe.name} (events)")
    _save(fig, path)


def _histogram(group: h5py.Group, columns: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per column: ``_EVENT_BINS`` equal bins over the values' range and their counts,
    read a block at a time; (edges, counts) with one column each per column."""
    v_ds = group["value"]
    cols = [c if c is not None else 0 for c in columns]

    def blocks():
        for start in range(0, v_ds.shape[0], _BLOCK):
            values = v_ds[start : start + _BLOCK]
            yield values[:, cols] if values.ndim == 2 else values[:, None]

    lo = np.full(len(cols), np.inf)
    hi = np.full(len(cols), -np.inf)
    for values in blocks():
        finite = np.where(np.isfinite(values), values, np.nan)
        lo = np.fmin(lo, np.nanmin(finite, axis=0, initial=np.inf))
        hi = np.fmax(hi, np.nanmax(finite, axis=0, initial=-np.inf))
    lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    same = hi <= lo
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)
    edges = np.linspace(lo, hi, _EVENT_BINS + 1)  # shape (bins + 1, columns)
    counts = np.zeros((_EVENT_BINS, len(cols)), dtype=np.int64)
    for values in blocks():
        for i in range(len(cols)):
            counts[:, i] += np.histogram(values[:, i], edges[:, i])[0]
    return edges, counts


def _draw_actor_lines(probe: _Probe, axis: _Axis, path: Path) -> None:
    """A few actors: one line per actor in each panel."""
    series, sampled = _lines(probe.group, probe.actors, probe.columns)
    fig, axes = _panel_grid(probe)
    for i, ax in enumerate(axes):
        for a, (t, v) in series.items():
            _line(ax, axis(t), v[:, i], _actor_label(a))
        if all(np.all(v[:, i] == np.round(v[:, i])) for _, v in series.values()):
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5
    n = probe.actors.shape[0]
    if 1 < n <= 10:
        axes[0].legend(fontsize="small", loc="best")
    sampled_text = ", sampled" if sampled else ""
    if n == 1:
        title = f"{_actor_label(int(probe.actors[0]))}: one line{sampled_text}"
    else:
        title = f"{probe.count}: one line per actor{sampled_text}"
    _finish_panels(fig, probe, axis, title, path)


def _panel_grid(probe: _Probe) -> tuple[Any, list]:
    """A figure with one panel per column, in rows of up to four; returns the used axes."""
    panels = len(probe.columns)
    ncols = 1 if panels == 1 else 2 if panels <= 4 else 3 if panels <= 9 else 4
    nrows = -(-panels // ncols)
    height = (5.0 if ncols == 1 else 4.0) if nrows == 1 else 2.7 * nrows + 1.0
    fig = _figure(9 if ncols == 1 else 4.2 * ncols, height, top=0.5 if panels == 1 else 0.9)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    return fig, [grid[i // ncols][i % ncols] for i in range(panels)]


def _finish_panels(fig: Any, probe: _Probe, axis: _Axis, what: str, path: Path) -> None:
    """Labels, grids and the title of a panel grid, then save it."""
    for ax, col in zip(fig.axes, probe.columns, strict=False):
        if col is None:
            ax.set_ylabel(_ylabel(probe.name, probe.unit))
        else:  # the panel's title names the component
            ax.set_title(probe.labels[col], fontsize="medium")
            ax.set_ylabel(probe.unit or "value")
        ax.grid(alpha=0.3)
    grid = fig.axes[0].get_subplotspec().get_gridspec()
    nrows, ncols = grid.get_geometry()
    panels = len(probe.columns)
    for j in range(panels, nrows * ncols):
        fig.axes[j].set_axis_off()
        if j - ncols >= 0:  # label the axes above an empty slot
            fig.axes[j - ncols].xaxis.set_tick_params(labelbottom=True)
            fig.axes[j - ncols].set_xlabel(axis.label)
    for ax in fig.axes[(nrows - 1) * ncols :]:
        ax.set_xlabel(axis.label)
    shown = ""
    if probe.width > MAX_PANELS:
        shown = f", first {MAX_PANELS} of {probe.width} components"
    fig.suptitle(f"{probe.name} ({what}{shown})")
    _save(fig, path)


def _all_actors(group: h5py.Group) -> np.ndarray:
    aai = group["aai"]
    found = np.empty(0, np.int64)
    for start in range(0, aai.shape[0], _BLOCK):
        found = np.union1d(found, aai[start : start + _BLOCK])
    return found


def _line(ax, x: np.ndarray, y: np.ndarray, label: str) -> None:
    marker = "o" if x.shape[0] <= 60 else None
    ax.step(x, y, where="post", marker=marker, markersize=3, lw=1.2, label=label)


def _heatmap(group, name, unit, labels, axis: _Axis, path: Path, aai: int) -> None:
    """One actor's wide vector: time across, components up; a log colour scale when
    the values are counts spanning orders of magnitude."""
    from matplotlib.colors import LogNorm

    width = group["value"].shape[1]
    series, sampled = _lines(group, np.array([aai]), list(range(width)))
    ((t, v),) = series.values()
    named = bool(labels) and width <= 64
    fig = _figure(10, max(5.0, 0.13 * width + 1.4) if named else 5.0, right=0.3)
    if named:
        fig.subplots_adjust(left=1.5 / 10)
    ax = fig.add_subplot()
    x = axis(t)
    right = x[-1] + (x[-1] - x[0]) / max(len(x) - 1, 1)
    positive = v[v > 0]
    norm, scale = None, ""
    if v.min() >= 0 and positive.size and v.max() > 100 * max(positive.min(), 1.0):
        norm, scale = LogNorm(vmin=max(positive.min(), 1.0), vmax=v.max()), ", log scale"
    shown = np.where(v > 0, v, np.nan) if norm is not None else v  # log: zeros left blank
    image = ax.imshow(
        shown.T,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        norm=norm,
        extent=(x[0], right if right > x[0] else x[0] + 1, -0.5, width - 0.5),
    )
    fig.colorbar(image, ax=ax, label=_ylabel("value", unit) + scale)
    ax.set_xlabel(axis.label)
    if named:
        ax.set_yticks(range(width), labels, fontsize="x-small")
    else:
        ax.set_ylabel("component")
    sampled_text = ", sampled" if sampled else ""
    ax.set_title(f"{name} ({_actor_label(aai)}, {width} components{sampled_text})")
    _save(fig, path)


__all__ = ["MAX_BINS", "PERFORMANCE_FILES", "draw_run", "file_name"]
