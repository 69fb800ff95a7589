"""One figure that tells what happened to a city: ``python -m models.city.plots RUN_DIR``.

Four panels over simulated time, from a run's ``results.h5``:

1. waste produced, collected, burnt and landfilled, cumulative, in tonnes;
2. trucks per state (idle, driving, loading, unloading, waiting);
3. road load (vehicles over capacity) percentiles over the roads carrying vehicles;
4. the weather: mean hygrometry of the grid and the rain threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

from .truck import STATES
from .weather import RAIN_Z

_FLOWS = ("produced", "collected", "burnt", "landfilled")


def _rows(f: h5py.File, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = f["probes"].get(name)
    if g is None:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return g["tick"][:], g["aai"][:], g["value"][:]


def _last_values(ticks, aais, values, at: np.ndarray) -> np.ndarray:
    """(len(at), actors) matrix: each actor's last value at or before each tick (nan: none yet)."""
    actors, inverse = np.unique(aais, return_inverse=True)
    order = np.lexsort((np.arange(len(ticks)), ticks, inverse))
    span = int(max(ticks.max(initial=0), at.max(initial=0))) + 1
    keys = inverse[order] * span + ticks[order]
    query = np.arange(len(actors))[None, :] * span + at[:, None]
    idx = np.searchsorted(keys, query, side="right") - 1
    ok = (idx >= 0) & (inverse[order][np.clip(idx, 0, None)] == np.arange(len(actors))[None, :])
    return np.where(ok, values[order][np.clip(idx, 0, None)], np.nan)


def city_figure(run_dir: str | Path, out: str | Path | None = None, points: int = 400) -> Path:
    """Draw the four panels of ``run_dir`` into ``out`` (default: RUN_DIR/city.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "city.png"
    with h5py.File(run_dir / "results.h5", "r") as f:
        tick_s = float(f.attrs["tick_duration"])
        last = int(f.attrs["last_tick"])
        at = np.unique(np.linspace(0, last, min(points, last + 1)).astype(np.int64))
        hours = at * tick_s / 3600
        fig, axes = plt.subplots(4, 1, figsize=(8, 11), sharex=True)
        ax = axes[0]
        for flow in _FLOWS:
            t, _, v = _rows(f, f"waste.{flow}")
            if len(t):
                per_tick = np.bincount(t, weights=v.sum(axis=1), minlength=last + 1)
                ax.plot(hours, np.cumsum(per_tick)[at] / 1000, label=flow)
        ax.set_ylabel("waste, cumulative (t)")
        ax.legend(loc="upper left")
        ax.set_title(f"{f.attrs['name']}: {f.attrs['initial_actors']:,} actors")
        t, a, v = _rows(f, "truck.state")
        if len(t):
            state = _last_values(t, a, v, at)
            for code, name in enumerate(STATES):
                axes[1].plot(hours, (state == code).sum(axis=1), label=name)
            axes[1].legend(loc="upper right", ncol=3)
        axes[1].set_ylabel("trucks")
        t, a, v = _rows(f, "road.load")
        if len(t):
            load = _last_values(t, a, v, at)
            load = np.where(load > 0, load, np.nan)
            used = np.isfinite(load).any(axis=1)
            for q in (50, 90, 100):
                curve = np.full(len(at), np.nan)
                if used.any():
                    curve[used] = np.nanpercentile(load[used], q, axis=1)
                axes[2].plot(hours, curve, label=f"p{q}" if q < 100 else "max")
            axes[2].legend(loc="upper right", ncol=3)
        axes[2].set_ylabel("road load (busy roads)")
        t, _, v = _rows(f, "weather.z.sum")
        if len(t):
            axes[3].plot(t * tick_s / 3600, v / _cells(f), label="mean hygrometry z")
            axes[3].axhline(RAIN_Z, color="k", ls=":", label="rain above")
            t2, _, vmax = _rows(f, "weather.z.max")
            axes[3].plot(t2 * tick_s / 3600, vmax, label="max z", alpha=0.6)
            axes[3].legend(loc="lower right", ncol=3)
        axes[3].set_ylabel("weather")
        axes[3].set_xlabel("simulated time (h)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _cells(f: h5py.File) -> int:
    """Weather cells of the run, from its scenario text."""
    import tomllib

    scenario = tomllib.loads(str(f.attrs["scenario"]))
    for pop in scenario.get("populations", []):
        if pop.get("name") == "weather":
            return int(pop["args"]["rows"]) * int(pop["args"]["columns"])
    return 1


def main(argv: list[str] | None = None) -> int:
    """Draw RUN_DIR/city.png."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2) or not (Path(argv[0]) / "results.h5").is_file():
        print("usage: python -m models.city.plots RUN_DIR [OUT.png]", file=sys.stderr)
        return 2
    print(city_figure(*argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
