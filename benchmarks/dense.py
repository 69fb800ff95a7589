"""Dense populations at 10^7 cells: the engine's Numba kernels against plain NumPy.

    python benchmarks/dense.py                    # heat and epidemic, 10^7 cells, 1 and 2 ranks
    python benchmarks/dense.py --ticks 40         # more measured ticks (default 20)
    python benchmarks/dense.py --no-mpi           # skip the 2-rank runs
    python benchmarks/dense.py --quick            # 10^5 cells, a few seconds (the smoke test)
    python benchmarks/dense.py --json out.json    # also write every figure as JSON

For each model the population of ``scenarios/<model>.toml`` (with its actors)
runs on an ``engine.Kernel`` for ``--warmup`` + ``--ticks`` ticks; the figures
are over the measured ticks, from the kernel's own per-tick trace, so a tick
includes everything the engine does: posts, halo exchange, the update kernel,
aggregates of every field over every region, probe recording. Also measured,
in the same worker process:

- the update kernel alone over the whole local block (no aggregates);
- the same model in plain vectorised NumPy (same initial state, same ticks,
  the same aggregates every tick; NumPy's own generator for the epidemic draws).

Bandwidth: the main process times a NumPy copy (16 B per element) and a STREAM
triad ``a = b + s * c`` (24 B per element) on 10^7 doubles; the larger is the
machine's measured bandwidth. A heat update must read and write one double
per cell (16 B); an epidemic update one byte each way (2 B). Achieved
bandwidth = those bytes x cell-updates/s; write-allocate traffic is not counted.

The 2-rank figure is a real ``mpiexec -n 2`` job (halves of the grid, halo
exchange and aggregate gathering over MPI); on a 2-core machine both ranks
share one memory system.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODELS = {"heat": 16, "epidemic": 2}  # model -> bytes per cell update (read + write)


# --- the machine -----------------------------------------------------------------------


def bandwidth(n: int, repeats: int = 5) -> dict[str, float]:
    """NumPy copy and STREAM triad bandwidth (GB/s, best of ``repeats``) on n doubles."""
    a = np.full(n, 1.0)
    b = np.full(n, 2.0)
    c = np.full(n, 3.0)
    copy = triad = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        copy = min(copy, time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)
        triad = min(triad, time.perf_counter() - t0)
    return {"copy_gbs": 16 * n / copy / 1e9, "triad_gbs": 24 * n / triad / 1e9}


# --- plain NumPy versions --------------------------------------------------------------


def numpy_heat(t0: np.ndarray, alpha: float, wall: float, ticks: int, warmup: int) -> float:
    """Seconds per tick of the heat plate in vectorised NumPy (fixed walls)."""
    ny, nx = t0.shape
    t = np.full((ny + 2, nx + 2), wall)
    t[1:-1, 1:-1] = t0
    u = t.copy()
    times = []
    for tick in range(warmup + ticks):
        start = time.perf_counter()
        c = t[1:-1, 1:-1]
        u[1:-1, 1:-1] = c + alpha * (
            t[:-2, 1:-1] + t[2:, 1:-1] + t[1:-1, :-2] + t[1:-1, 2:] - 4.0 * c
        )
        inner = u[1:-1, 1:-1]
        _ = (inner.sum(), inner.min(), inner.max())
        t, u = u, t
        if tick >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.mean(times))


def numpy_epidemic(s0: np.ndarray, pop, ticks: int, warmup: int) -> float:
    """Seconds per tick of the SEIR grid in vectorised NumPy (periodic, Moore, regions)."""
    from models.epidemic.model import infection_table

    ny, nx = s0.shape
    local = pop.local
    region = local.region_rows[:, None] * pop.regions[1] + local.region_cols[None, :]
    table = infection_table(pop.beta, pop.param("contact"))
    gen = np.random.default_rng(1)
    p = np.zeros((ny + 2, nx + 2), np.uint8)
    p[1:-1, 1:-1] = s0
    times = []
    for tick in range(warmup + ticks):
        start = time.perf_counter()
        p[0, :], p[-1, :] = p[-2, :], p[1, :]
        p[:, 0], p[:, -1] = p[:, -2], p[:, 1]
        inf = (p == 2).view(np.uint8)
        k = inf[:-2, :-2] + inf[:-2, 1:-1]
        for dy, dx in ((0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)):
            k += inf[dy : dy + ny, dx : dx + nx]
        s = p[1:-1, 1:-1]
        u = gen.random((ny, nx))
        new = s.copy()
        new[(s == 0) & (k > 0) & (u < table[region, k])] = pop.onset
        new[(s == 1) & (u < pop.sigma)] = 2
        new[(s == 2) & (u < pop.gamma)] = 3
        p[1:-1, 1:-1] = new
        _ = np.bincount(new.ravel(), minlength=4)
        if tick >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.mean(times))


# --- one measurement, in its own process (or one rank of an mpiexec job) -----------------


def grid_for(cells: int) -> tuple[int, int]:
    if cells == 10**7:
        return 3200, 3125
    rows = int(math.sqrt(cells))
    return rows, cells // rows


def worker(args: argparse.Namespace) -> None:
    from engine import Kernel, MemorySink, ProbeStore
    from runtime.launch import world
    from runtime.placement import make_placement
    from runtime.runner import make_transport
    from runtime.scenario import load_scenario
    from runtime.sgroups import SGroups

    w = world()
    scenario = load_scenario(ROOT / "scenarios" / f"{args.worker}.toml")
    (entry,) = scenario.populations
    rows, columns = grid_for(args.cells)
    entry.args = {**entry.args, "rows": rows, "columns": columns}
    transport = make_transport(w, SGroups.of(w.size, None), "direct", watchdog_s=600.0)
    kernel = Kernel(
        stop_tick=args.warmup + args.ticks,
        seed=scenario.seed or 0,
        transport=transport,
        placement=make_placement("round_robin", size=w.size, group_size=w.size, scenario=scenario),
        probes=ProbeStore(MemorySink()),
    )
    scale = (rows / 3200, columns / 3125)  # heat sources sit where they would on 10^7 cells
    for a in scenario.actors:
        kw = dict(a.args)
        if "row" in kw:
            kw["row"], kw["column"] = int(kw["row"] * scale[0]), int(kw["column"] * scale[1])
            kw["size"] = max(1, int(kw.get("size", 1) * min(scale)))
        kernel.add_actors(a.cls, a.count, a.hint, **kw)
    pop = kernel.add_population(entry.cls, entry.name, None, entry.args)
    initial = {n: getattr(pop.local, n).copy() for n in pop._names}
    stats = kernel.run()
    if stats.status != "completed":
        raise SystemExit(f"the {args.worker} run {stats.status}: {stats.failures}")
    trace = kernel.trace.columns()
    measured = trace["wall_s"][trace["tick"] >= args.warmup]
    tick_s = float(measured.mean())
    tick_max = float(w.allreduce(np.array([tick_s]), "max")[0])
    out = {"model": args.worker, "cells": rows * columns, "ranks": w.size, "tick_s": tick_max}
    if w.size == 1:
        kargs = pop.kernel_args()
        times = []
        for tick in range(5):
            t0 = time.perf_counter()
            pop._kernel(pop._src, pop._dst, tick, pop._key, pop._geometry(), *kargs)
            times.append(time.perf_counter() - t0)
        out["kernel_s"] = float(np.mean(times[1:]))
        del kernel
        if args.worker == "heat":
            wall = pop.fill["T"]
            out["numpy_s"] = numpy_heat(initial["T"], pop.alpha, wall, args.ticks, args.warmup)
        else:
            out["numpy_s"] = numpy_epidemic(initial["state"], pop, args.ticks, args.warmup)
    if w.rank == 0:
        print(json.dumps(out), flush=True)


def measure(model: str, ranks: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model]
    cmd += ["--cells", str(args.cells), "--ticks", str(args.ticks), "--warmup", str(args.warmup)]
    if ranks > 1:
        from runtime.launch import find_mpiexec

        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise SystemExit("no mpiexec: install mpich (pip install mpich) or use --no-mpi")
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the report ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=float, default=1e7, help="cells per model (1e7)")
    parser.add_argument("--ticks", type=int, default=20, help="measured ticks (20)")
    parser.add_argument("--warmup", type=int, default=3, help="ticks before measuring (3)")
    parser.add_argument("--no-mpi", action="store_true", help="skip the 2-rank runs")
    parser.add_argument("--quick", action="store_true", help="10^5 cells, 5 ticks")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.ticks, args.warmup = 1e5, 5, 2
    args.cells = int(args.cells)
    if args.worker:
        worker(args)
        return 0

    bw = bandwidth(max(args.cells, 10**7))
    measured_bw = max(bw["copy_gbs"], bw["triad_gbs"])
    print(
        f"Machine: {os.cpu_count()} cores; NumPy copy {bw['copy_gbs']:.1f} GB/s, "
        f"triad {bw['triad_gbs']:.1f} GB/s on one core: measured bandwidth {measured_bw:.1f} GB/s"
    )
    print(f"{args.cells:,} cells per model, {args.ticks} ticks measured after {args.warmup}\n")
    rows = []
    for model, per_cell in MODELS.items():
        one = measure(model, 1, args)
        two = None if args.no_mpi else measure(model, 2, args)
        cells = one["cells"]
        rate = cells / one["tick_s"]
        row = {
            "model": model,
            "cells": cells,
            "tick_ms": one["tick_s"] * 1e3,
            "updates_per_s": rate,
            "bandwidth_gbs": per_cell * rate / 1e9,
            "fraction": per_cell * rate / 1e9 / measured_bw,
            "kernel_ms": one["kernel_s"] * 1e3,
            "kernel_updates_per_s": cells / one["kernel_s"],
            "kernel_fraction": per_cell * cells / one["kernel_s"] / 1e9 / measured_bw,
            "numpy_ms": one["numpy_s"] * 1e3,
            "speedup": one["numpy_s"] / one["tick_s"],
        }
        if two is not None:
            row["tick_ms_2_ranks"] = two["tick_s"] * 1e3
            row["speedup_2_ranks"] = one["tick_s"] / two["tick_s"]
        rows.append(row)

    head = (
        f"{'model':<9}{'ms/tick':>9}{'updates/s':>11}{'GB/s':>7}{'of bw':>7}"
        f"{'kernel ms':>11}{'kernel bw':>11}{'numpy ms':>10}{'vs numpy':>10}"
        f"{'2-rank ms':>11}{'2-rank x':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        two_ms = f"{r['tick_ms_2_ranks']:>11.1f}" if "tick_ms_2_ranks" in r else f"{'-':>11}"
        two_x = f"{r['speedup_2_ranks']:>9.2f}x" if "speedup_2_ranks" in r else f"{'-':>10}"
        print(
            f"{r['model']:<9}{r['tick_ms']:>9.1f}{r['updates_per_s']:>11.2e}"
            f"{r['bandwidth_gbs']:>7.1f}{r['fraction']:>7.0%}{r['kernel_ms']:>11.1f}"
            f"{r['kernel_fraction']:>11.0%}{r['numpy_ms']:>10.1f}{r['speedup']:>9.1f}x"
            f"{two_ms}{two_x}"
        )
    heat, epi = rows[0], rows[1]
    checks = [
        ("heat reaches >= 50% of the measured bandwidth (whole tick)", heat["fraction"] >= 0.5),
        ("epidemic >= 1e8 cell-updates/s per core", epi["updates_per_s"] >= 1e8),
        ("heat >= 3x its NumPy version", heat["speedup"] >= 3),
        ("epidemic >= 3x its NumPy version", epi["speedup"] >= 3),
    ]
    print("\nTargets (whole engine tick, one core):")
    for text, ok in checks:
        print(f"  {'met    ' if ok else 'MISSED '} {text}")
    print(
        "\nms/tick: a whole engine tick (posts, halos, kernel, aggregates, probes); "
        "kernel: the update kernel alone;\nGB/s: 16 B (heat) or 2 B (epidemic) per cell "
        "update; 2-rank x: 1-rank ms/tick over 2-rank ms/tick."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"bandwidth": bw, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
