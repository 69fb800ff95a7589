"""What every figure of a run shares: the simulated-time axis, fixed margins, time
bins, and saving a PNG whole or not at all (``runtime.plots`` draws the probes,
``runtime.performance_plots`` the performance tracker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .storage import StorageError, storage_message

MAX_BINS = 400  # time bins of a band plot, or of a long line plot
_BLOCK = 1 << 20  # rows read at once


@dataclass
class _Axis:
    """Simulated time on the x axis: ticks times tick_duration, in a readable unit."""

    tick_duration: float
    unit: str
    size: float

    def __call__(self, ticks: np.ndarray) -> np.ndarray:
        return np.asarray(ticks, dtype=np.float64) * (self.tick_duration / self.size)

    @property
    def label(self) -> str:
        return f"simulated time [{self.unit}]"


def _figure(
    width: float = 9.0,
    height: float = 5.0,
    *,
    top: float = 0.5,
    right: float = 0.25,
    wspace: float = 0.3,
    hspace: float = 0.5,
):
    """A figure with fixed margins, in inches: cheaper than a layout engine, which
    draws every figure twice."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(
        left=0.9 / width,
        right=1 - right / width,
        bottom=0.65 / height,
        top=1 - top / height,
        wspace=wspace,
        hspace=hspace,
    )
    return fig


def _save(fig, path: Path) -> None:
    """Write the PNG whole or not at all (a full disk leaves no half figure)."""
    part = path.with_name(path.name + ".part")
    try:
        fig.savefig(part, dpi=100, format="png")
        part.replace(path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise StorageError(storage_message(exc, path)) from None


def _bins(ticks: np.ndarray) -> np.ndarray:
    """Left tick edges of the time bins: every distinct tick, or MAX_BINS equal bins."""
    if ticks.shape[0] <= MAX_BINS:
        return ticks
    return np.unique(np.linspace(ticks[0], ticks[-1] + 1, MAX_BINS + 1)[:-1].astype(np.int64))
