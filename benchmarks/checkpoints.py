"""What checkpoints cost: write time and size per actor or cell, and the overhead on a run.

    python benchmarks/checkpoints.py                 # 10^6 PHOLD actors, 10^7 cells, PHOLD 10^5
    python benchmarks/checkpoints.py --quick         # tiny sizes, a few seconds

Each figure comes from a fresh Python process (the script calls itself with
``--worker``). A checkpoint here is what one rank does (``runtime.checkpoint``):
snapshot the kernel (``engine.snapshot``), pickle it (protocol 5), write it to
a temporary file, fsync and rename. The overhead figure runs ``pydiasca``'s own
runner on PHOLD with and without ``[checkpoint] every_ticks = 100``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _write_once(kernel, folder: Path) -> dict:
    """Stop the kernel after tick 1 with one checkpoint of it; its figures."""
    from engine import snapshot
    from runtime.checkpoint import write_atomic

    found: dict = {}

    def at_end(k, next_tick: int) -> bool:
        t0 = time.perf_counter()
        blob = pickle.dumps(snapshot.snapshot(k, next_tick), protocol=5)
        t1 = time.perf_counter()
        write_atomic(folder / "rank-0.part", blob)
        t2 = time.perf_counter()
        found.update(bytes=len(blob), snapshot_s=t1 - t0, write_s=t2 - t1, total_s=t2 - t0)
        return False

    kernel.at_tick_end = at_end
    kernel.run()
    return found


def _phold_actors(n: int, folder: Path) -> dict:
    from engine import Kernel
    from models.phold import LP

    k = Kernel(stop_tick=10, seed=1)
    k.add_actors(LP, n, None, None, n_lps=n, remote=0.25, mean=2.0, record_every=10**9)
    out = _write_once(k, folder)
    out["per_actor_bytes"] = out["bytes"] / n
    out["per_actor_us"] = out["total_s"] / n * 1e6
    return out


def _heat_cells(cells: int, folder: Path) -> dict:
    from engine import Kernel
    from models.heat import HeatPlate

    columns = 4000 if cells >= 4000 * 16 else 64
    rows = cells // columns
    k = Kernel(stop_tick=10, seed=1)
    k.add_population(HeatPlate, "plate", None, {"rows": rows, "columns": columns, "initial": 1.0})
    out = _write_once(k, folder)
    out["per_cell_bytes"] = out["bytes"] / (rows * columns)
    return out


def _phold_run(lps: int, ticks: int, every: int | None, folder: Path) -> dict:
    from runtime.runner import run_scenario
    from runtime.scenario import load_scenario

    text = (
        f'[simulation]\nname = "phold-cp"\nstop_tick = {ticks}\nseed = 1\n\n'
        f'[[actors]]\nid = "lp"\nclass = "models.phold:LP"\ncount = {lps}\n'
        f"args = {{ n_lps = {lps}, remote = 0.25, mean = 2.0, record_every = 50 }}\n\n"
        f"[results]\nplots = false\n"
    )
    if every:
        text += f"\n[checkpoint]\nevery_ticks = {every}\n"
    scenario = folder / "phold.toml"
    scenario.write_text(text)
    t0 = time.perf_counter()
    outcome = run_scenario(load_scenario(scenario), out=folder / "run")
    wall = time.perf_counter() - t0
    log = (folder / "run" / "run.log").read_text()
    taken = [float(s) for s in re.findall(r"checkpoint of tick \d+ written in ([0-9.]+) s", log)]
    return {
        "wall_s": wall,
        "run_s": outcome.stats.wall_s,
        "digest": outcome.digest,
        "checkpoints_s": taken,
    }


def _worker(kind: str, size: int, ticks: int, every: int) -> None:
    with tempfile.TemporaryDirectory(
        dir=ROOT / "results" if (ROOT / "results").is_dir() else None
    ) as tmp:
        folder = Path(tmp)
        if kind == "actors":
            found = _phold_actors(size, folder)
        elif kind == "cells":
            found = _heat_cells(size, folder)
        else:
            found = _phold_run(size, ticks, every or None, folder)
    print(json.dumps(found))


def _measure(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "SIZE", "TICKS", "EVERY"))
    args = parser.parse_args()
    if args.worker:
        kind, size, ticks, every = args.worker
        _worker(kind, int(size), int(ticks), int(every))
        return
    actors, cells, lps, ticks = (10**6, 10**7, 10**5, 300)
    if args.quick:
        actors, cells, lps, ticks = (1000, 4096, 1000, 30)
    a = _measure("actors", str(actors), "0", "0")
    print(
        f"PHOLD actors {actors:,}: {a['bytes'] / 1e6:,.1f} MB, {a['per_actor_bytes']:.0f} B/actor, "
        f"snapshot+pickle {a['snapshot_s']:.2f} s, write+fsync {a['write_s']:.2f} s, "
        f"{a['bytes'] / 1e6 / a['total_s']:,.0f} MB/s overall, {a['per_actor_us']:.2f} us/actor"
    )
    c = _measure("cells", str(cells), "0", "0")
    print(
        f"heat cells {cells:,}: {c['bytes'] / 1e6:,.1f} MB, {c['per_cell_bytes']:.1f} B/cell, "
        f"snapshot+pickle {c['snapshot_s']:.2f} s, write+fsync {c['write_s']:.2f} s, "
        f"{c['bytes'] / 1e6 / c['total_s']:,.0f} MB/s overall"
    )
    every = max(ticks // 3, 1) if args.quick else 100
    plain = _measure("run", str(lps), str(ticks), "0")
    taken = _measure("run", str(lps), str(ticks), str(every))
    assert plain["digest"] == taken["digest"]
    spent = sum(taken["checkpoints_s"])
    print(
        f"PHOLD {lps:,} LPs, {ticks} ticks: {plain['run_s']:.2f} s without checkpoints, "
        f"{taken['run_s']:.2f} s with one every {every} ticks "
        f"({len(taken['checkpoints_s'])} taken, {spent:.2f} s in all): "
        f"{spent / (taken['run_s'] - spent):.1%} of the run's time"
    )


if __name__ == "__main__":
    main()
