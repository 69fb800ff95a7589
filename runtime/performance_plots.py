"""The performance tracker's figures: load imbalance per tick, and where the ranks'
wall time went (kernel, exchange, consensus, other), over the run and per rank."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .figures import _BLOCK, _Axis, _bins, _figure, _save

PERFORMANCE_FILES = ("performance-imbalance.png", "performance-breakdown.png")

_COLOURS = {"kernel": "#4C72B0", "exchange": "#DD8452", "consensus": "#C44E52", "other": "#BBBBBB"}


def _perf_bins(ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each evaluated tick, and the left tick of each bin."""
    edges = _bins(ticks)
    return np.searchsorted(edges, ticks, "right") - 1, edges


def _draw_performance(perf: h5py.Group, axis: _Axis, folder: Path) -> list[Path]:
    ticks = perf["tick"][()]
    agg = perf["all_ranks"]
    ranks = int(perf.attrs.get("ranks", 1))
    which, edges = _perf_bins(ticks)
    nb = edges.shape[0]

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.bincount(which, weights=values, minlength=nb)

    paths = []
    # Load imbalance: the busiest rank's kernel time over the mean, per tick (per
    # bin: time-weighted). Wall time would say nothing: ranks wait for each other.
    busiest = per_bin(agg["kernel_s_max"][()])
    mean = per_bin(agg["kernel_s"][()]) / ranks
    imbalance = np.divide(busiest, mean, out=np.ones(nb), where=mean > 0)
    fig = _figure(9, 4.5)
    ax = fig.add_subplot()
    label = "busiest / mean rank kernel time"
    ax.step(axis(edges), imbalance, where="post", color="C3", lw=1.4, label=label)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="perfect balance")
    ax.set_xlabel(axis.label)
    ax.set_ylabel("load imbalance [max / mean]")
    top = max(1.1, float(imbalance.max()) * 1.08)
    ax.set_ylim(bottom=min(0.95, float(imbalance.min()) - 0.05), top=top)
    overall = float(perf.attrs.get("imbalance", 1.0))
    if ranks > 1:
        title = f"Load imbalance per tick on {ranks} ranks: {overall:.2f} over the run"
    else:
        title = "Load imbalance per tick: 1 rank, always balanced"
    ax.set_title(title)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    path = folder / PERFORMANCE_FILES[0]
    _save(fig, path)
    paths.append(path)

    # Time breakdown: where the ranks' wall time went, over time and per rank.
    parts = {k: agg[f"{k}_s"][()] for k in ("kernel", "exchange", "consensus")}
    wall = agg["wall_s"][()]
    parts["other"] = np.clip(wall - sum(parts.values()), 0.0, None)
    fig = _figure(12, 4.8)
    left, right = fig.subplots(1, 2, width_ratios=[2.2, 1])
    ticks_in_bin = np.maximum(np.bincount(which, minlength=nb), 1)
    x = axis(edges)
    bottom = np.zeros(nb)
    for key, values in parts.items():
        y = per_bin(values) / ranks / ticks_in_bin * 1e3  # ms per tick, mean over ranks
        left.fill_between(x, bottom, bottom + y, step="post", color=_COLOURS[key], label=key, lw=0)
        bottom += y
    left.set_xlabel(axis.label)
    left.set_ylabel("wall time per tick, mean over ranks [ms]")
    left.set_title("Time breakdown over the run")
    left.legend(fontsize="small", loc="upper right")
    left.grid(alpha=0.3)

    totals = _rank_totals(perf)
    labels = [f"rank {r}" for r in range(totals["kernel"].shape[0])]
    if len(labels) > 64:  # too many bars: show the fastest, the median and the slowest rank
        order = np.argsort(totals["wall"])
        pick = [order[0], order[len(order) // 2], order[-1]]
        labels = [
            f"rank {r} ({w})" for r, w in zip(pick, ("fastest", "median", "slowest"), strict=True)
        ]
        totals = {k: v[pick] for k, v in totals.items()}
    y = np.arange(len(labels))
    left_edge = np.zeros(len(labels))
    scale, unit = (1e3, "ms") if totals["wall"].max() < 1 else (1.0, "s")
    for key in ("kernel", "exchange", "consensus", "other"):
        right.barh(y, totals[key] * scale, left=left_edge, color=_COLOURS[key], label=key)
        left_edge += totals[key] * scale
    right.set_yticks(y, labels, fontsize="small" if len(labels) < 24 else "x-small")
    right.invert_yaxis()
    right.set_xlabel(f"wall time over the run [{unit}]")
    comm = float(perf.attrs.get("communication_share", 0.0))
    right.set_title(f"Per rank: {comm:.1%} in communication")
    right.grid(alpha=0.3, axis="x")
    path = folder / PERFORMANCE_FILES[1]
    _save(fig, path)
    paths.append(path)
    return paths


def _rank_totals(perf: h5py.Group) -> dict[str, np.ndarray]:
    """Per rank, seconds over the run in kernel, exchange, consensus and other."""
    keys = {k: f"{k}_s" for k in ("kernel", "exchange", "consensus", "wall")}
    n = perf["tick"].shape[0]
    out = {k: np.zeros(perf["wall_s"].shape[0]) for k in keys}
    step = max(1, _BLOCK // max(1, perf["wall_s"].shape[0]))
    for start in range(0, n, step):
        for k, ds in keys.items():
            out[k] += np.nansum(perf[ds][:, start : start + step], axis=1)
    out["other"] = np.clip(
        out["wall"] - out["kernel"] - out["exchange"] - out["consensus"], 0, None
    )
    return out
