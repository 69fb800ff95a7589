"""City at each scale: actors, cells, generation and build times, memory, events/s, acceleration.

    python benchmarks/city.py                                  # tiny and small, 1 and 2 ranks
    python benchmarks/city.py --scales medium large --ranks 16 --ticks 720
    python benchmarks/city.py --json out.json

For each scale the script times ``generate_city`` in this process, then, for each
rank count, runs the scenario ``scenarios/city-<scale>.toml`` twice under
``mpiexec`` (one rank: a plain process), each rank wrapped by this script's
``--worker`` mode, which reports the rank's peak RSS:

- a run of 1 tick: its ``wall_s`` is the **build** time (every rank generates the
  city, builds its own actors, and runs tick 0), and the whole process time is
  the **start** time (interpreter, imports, scenario checks, weather tiles
  allocated and initialised, build, tick 0, results written);
- a run of ``--ticks`` ticks: events (messages processed + spontaneous actions)
  per second and the **acceleration factor**, simulated time over wall time,
  both over the ticks after the build (``wall_s`` of the long run minus that of
  the short one). Weather cells, actors in Sim-Diasca, are no events here: the
  **cell activations** per second (a fifth of the cells each tick, 50 RK4
  steps each) count their work apart.

Sim-Diasca's anchor: its published City material gives no run-time figures
we could read; it says that huge took about 2 days just to generate
(``pydiasca``: see benchmarks/city_generate.py). Plots are off, as in
Sim-Diasca's benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICK_S = 5.0
PERIOD = 5  # a weather cell activates every 5 ticks
RSS = re.compile(r"^city-bench rank (\d+) peak_rss_kb (\d+)$", re.M)
COUNTER = re.compile(r"^\s+(messages|spontaneous)\s+([\d,]+)", re.M)


def worker(args: list[str]) -> int:
    """One rank: run the CLI, then print this process's peak RSS."""
    from runtime.cli import main

    code = main(args)
    rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMI_RANK") or "0"
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"city-bench rank {rank} peak_rss_kb {kb}", flush=True)
    return code or 0


def _mpiexec() -> str:
    from runtime.launch import find_mpiexec

    found = find_mpiexec()
    if found is None:
        raise SystemExit("no mpiexec: pip install mpich")
    return found


def _run(scale: str, ranks: int, ticks: int, folder: Path) -> dict:
    scenario = ROOT / "scenarios" / f"city-{scale}.toml"
    out = folder / f"{scale}-{ranks}-{ticks}"
    cli = ["run", str(scenario), "--stop-tick", str(ticks), "--out", str(out)]
    cli += ["--set", "results.plots=false"]
    cmd = [sys.executable, __file__, "--worker", *cli]
    if ranks > 1:
        cmd = [_mpiexec(), "-n", str(ranks), *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{scale} on {ranks} rank(s) failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    import h5py

    with h5py.File(out / "results.h5", "r") as f:
        attrs = {k: f.attrs[k] for k in ("wall_s", "initial_actors", "ticks", "digest")}
    counters = {k: int(v.replace(",", "")) for k, v in COUNTER.findall(proc.stdout)}
    rss = sorted((int(r), int(kb)) for r, kb in RSS.findall(proc.stdout))
    return {
        "wall_s": float(attrs["wall_s"]),
        "process_s": total,
        "actors": int(attrs["initial_actors"]),
        "ticks": int(attrs["ticks"]),
        "events": counters.get("messages", 0) + counters.get("spontaneous", 0),
        "rss_mb": [kb / 1024 for _, kb in rss],
        "digest": str(attrs["digest"]),
    }


def measure(scale: str, ranks_list: list[int], ticks: int, folder: Path) -> list[dict]:
    from models.city import SCALES, generate_city

    start = time.perf_counter()
    generate_city(scale, 1)
    generate_s = time.perf_counter() - start
    rows, cols = SCALES[scale].weather_shape
    out = []
    for ranks in ranks_list:
        build = _run(scale, ranks, 1, folder)
        run = _run(scale, ranks, ticks, folder)
        steady = max(run["wall_s"] - build["wall_s"], 1e-9)
        out.append(
            {
                "scale": scale,
                "ranks": ranks,
                "actors": run["actors"],
                "cells": rows * cols,
                "generate_s": generate_s,
                "build_s": build["wall_s"],
                "start_s": build["process_s"],
                "run_wall_s": run["wall_s"],
                "ticks": ticks,
                "rss_mb_max": max(run["rss_mb"], default=0.0),
                "rss_mb_mean": sum(run["rss_mb"]) / max(1, len(run["rss_mb"])),
                "events": run["events"] - build["events"],
                "events_per_s": (run["events"] - build["events"]) / steady,
                "activations_per_s": rows * cols / PERIOD * (ticks - 1) / steady,
                "acceleration": (ticks - 1) * TICK_S / steady,
                "digest": run["digest"][:8],
            }
        )
        print(_row(out[-1]), flush=True)
    return out


HEADER = (
    "| scale | ranks | actors | weather cells | generate s | build s | start s "
    "| peak RSS / rank MB | ticks | events/s | cell activations/s | acceleration | digest |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _row(r: dict) -> str:
    return (
        f"| {r['scale']} | {r['ranks']} | {r['actors']:,} | {r['cells']:,} | {r['generate_s']:.2f} "
        f"| {r['build_s']:.2f} | {r['start_s']:.1f} | {r['rss_mb_max']:.0f} | {r['ticks']:,} "
        f"| {r['events_per_s']:,.0f} | {r['activations_per_s']:,.0f} | {r['acceleration']:,.1f} "
        f"| {r['digest']} |"
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["tiny", "small"])
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--ticks", type=int, default=720, help="ticks of the timed run (1 h)")
    parser.add_argument("--json", default=None)
    a = parser.parse_args()
    print(f"City benchmark: {a.ticks:,} ticks of 5 s ({a.ticks * TICK_S / 3600:.2f} h simulated)")
    print(HEADER, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in a.scales:
            rows += measure(scale, a.ranks, a.ticks, Path(tmp))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
