"""Dense populations at 10^7 cells: every backend (cpu, threads, cuda) against plain NumPy.

    python benchmarks/dense.py                    # heat and epidemic, 10^7 cells, 1 and 2 ranks
    python benchmarks/dense.py --ticks 40         # more measured ticks (default 20)
    python benchmarks/dense.py --no-mpi           # skip the 2-rank runs
    python benchmarks/dense.py --backends cpu threads   # only these (default: cpu, threads,
                                                  # and cuda where a GPU is present)
    python benchmarks/dense.py --quick            # 10^5 cells, a few seconds (the smoke test)
    python benchmarks/dense.py --json out.json    # also write every figure as JSON

For each model and backend the population of ``scenarios/<model>.toml`` (with
its actors) runs on an ``engine.Kernel`` for ``--warmup`` + ``--ticks`` ticks,
in a process of its own; the figures are over the measured ticks, from the
kernel's own per-tick trace, so a tick includes everything the engine does:
posts, halo exchange, the update kernel, aggregates of every field over every
region, probe recording. Also measured, in the same worker process:

- the update kernel alone over the whole local block (no aggregates), so
  "tick/kernel" shows what the rest of the tick costs;
- the worker's peak memory (resident set);
- (cpu only) the same model in plain vectorised NumPy (same initial state,
  same ticks, the same aggregates every tick; NumPy's own generator for the
  epidemic draws); (cuda only) a device-to-device copy, the GPU's bandwidth.

``threads`` uses NUMBA_NUM_THREADS threads (all cores by default). Each
backend runs ``--repeat`` times (default 2), the backends in turn, and the best
run counts, so that load from other processes falls on all of them; on a
shared machine the threads/cpu ratio is still noisy: repeat it.

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
BACKENDS = ("cpu", "threads", "cuda")


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
    import resource

    from engine import Kernel, MemorySink, ProbeStore
    from engine.dense import rng
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
    backend = args.backend
    pop = kernel.add_population(entry.cls, entry.name, None, entry.args, backend=backend)
    initial = {n: getattr(pop.local, n).copy() for n in pop._names}
    stats = kernel.run()
    if stats.status != "completed":
        raise SystemExit(f"the {args.worker} run {stats.status}: {stats.failures}")
    trace = kernel.trace.columns()
    measured = trace["wall_s"][trace["tick"] >= args.warmup]
    tick_s = float(np.median(measured))
    tick_max = float(w.allreduce(np.array([tick_s]), "max")[0])
    out = {
        "model": args.worker,
        "backend": backend,
        "cells": rows * columns,
        "ranks": w.size,
        "tick_s": tick_max,
    }
    if w.size == 1:
        out["kernel_s"] = kernel_only(pop, backend, rng)
        if backend == "cuda":
            out["device_copy_gbs"] = device_copy_gbs()
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if backend == "cpu":
            del kernel
            if args.worker == "heat":
                wall = pop.fill["T"]
                out["numpy_s"] = numpy_heat(initial["T"], pop.alpha, wall, args.ticks, args.warmup)
            else:
                out["numpy_s"] = numpy_epidemic(initial["state"], pop, args.ticks, args.warmup)
    if w.rank == 0:
        print(json.dumps(out), flush=True)


def kernel_only(pop, backend: str, rng) -> float:
    """Median seconds of the update kernel alone over the block (no aggregates, no halos)."""
    kargs = pop.kernel_args()
    times = []
    if backend == "cuda":
        from numba import cuda

        for tick in range(6):
            tk = np.uint64(rng.tick_key(pop.key, tick))
            t0 = time.perf_counter()
            pop._device.update(pop._kernel, tick, tk, kargs, pop._cell_shape)
            cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return float(np.median(times[1:]))
    loop = pop._kernel.loop(backend, (), len(kargs), pop._cell_shape)
    none = np.empty((0, 0))
    for tick in range(6):
        tk = np.uint64(rng.tick_key(pop.key, tick))
        t0 = time.perf_counter()
        loop(pop._src, pop._dst, np.int64(tick), tk, pop._cell_geo, none, kargs)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def device_copy_gbs(n: int = 10**8) -> float:
    """The GPU's bandwidth: a device-to-device copy of n doubles (read + write)."""
    from numba import cuda

    a = cuda.to_device(np.ones(n))
    b = cuda.device_array(n)
    best = math.inf
    for _ in range(5):
        cuda.synchronize()
        t0 = time.perf_counter()
        b.copy_to_device(a)
        cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 16 * n / best / 1e9


def measure(model: str, ranks: int, backend: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model]
    cmd += ["--cells", str(args.cells), "--ticks", str(args.ticks), "--warmup", str(args.warmup)]
    cmd += ["--backend", backend]
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


def has_gpu() -> bool:
    code = "from numba import cuda; print(cuda.is_available())"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return proc.stdout.strip() == "True"


# --- the report ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=float, default=1e7, help="cells per model (1e7)")
    parser.add_argument("--ticks", type=int, default=20, help="measured ticks (20)")
    parser.add_argument("--warmup", type=int, default=3, help="ticks before measuring (3)")
    parser.add_argument("--no-mpi", action="store_true", help="skip the 2-rank runs")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, help="backends to measure")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per backend, in turn; the best counts (2)"
    )
    parser.add_argument("--quick", action="store_true", help="10^5 cells, 5 ticks, 1 run")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BACKENDS, default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.ticks, args.warmup, args.repeat = 1e5, 5, 2, 1
    args.cells = int(args.cells)
    if args.worker:
        worker(args)
        return 0
    backends = args.backends or ["cpu", "threads", *(["cuda"] if has_gpu() else [])]
    if "cpu" not in backends:
        backends = ["cpu", *backends]  # the reference of every ratio

    bw = bandwidth(max(args.cells, 10**7))
    measured_bw = max(bw["copy_gbs"], bw["triad_gbs"])
    print(
        f"Machine: {os.cpu_count()} cores; NumPy copy {bw['copy_gbs']:.1f} GB/s, "
        f"triad {bw['triad_gbs']:.1f} GB/s on one core: measured bandwidth {measured_bw:.1f} GB/s"
    )
    threads = os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count()))
    print(
        f"{args.cells:,} cells per model, {args.ticks} ticks measured after {args.warmup}; "
        f"backends {', '.join(backends)} (threads: {threads})\n"
    )
    rows = []
    for model, per_cell in MODELS.items():
        runs: dict[str, dict] = {}
        for _ in range(args.repeat):  # backends in turn, so that machine load falls on all
            for b in backends:
                got = measure(model, 1, b, args)
                best = runs.setdefault(b, got)
                for key in ("tick_s", "kernel_s"):
                    best[key] = min(best[key], got[key])
        two = None if args.no_mpi else measure(model, 2, "cpu", args)
        one = runs["cpu"]
        cells = one["cells"]
        row = {
            "model": model,
            "cells": cells,
            "tick_ms": one["tick_s"] * 1e3,
            "updates_per_s": cells / one["tick_s"],
            "bandwidth_gbs": per_cell * cells / one["tick_s"] / 1e9,
            "fraction": per_cell * cells / one["tick_s"] / 1e9 / measured_bw,
            "numpy_ms": one["numpy_s"] * 1e3,
            "speedup": one["numpy_s"] / one["tick_s"],
            "backends": {},
        }
        for b, r in runs.items():
            row["backends"][b] = {
                "tick_ms": r["tick_s"] * 1e3,
                "updates_per_s": cells / r["tick_s"],
                "kernel_ms": r["kernel_s"] * 1e3,
                "kernel_updates_per_s": cells / r["kernel_s"],
                "tick_over_kernel": r["kernel_s"] / r["tick_s"],
                "vs_cpu_tick": one["tick_s"] / r["tick_s"],
                "vs_cpu_kernel": one["kernel_s"] / r["kernel_s"],
                "peak_mb": r["peak_mb"],
                **({"device_copy_gbs": r["device_copy_gbs"]} if "device_copy_gbs" in r else {}),
            }
        if two is not None:
            row["tick_ms_2_ranks"] = two["tick_s"] * 1e3
            row["speedup_2_ranks"] = one["tick_s"] / two["tick_s"]
        rows.append(row)

    head = (
        f"{'model':<9}{'backend':<9}{'ms/tick':>9}{'updates/s':>11}{'kernel ms':>11}"
        f"{'kernel/s':>10}{'tick/kernel':>12}{'vs cpu':>8}{'peak MB':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        for b, f in r["backends"].items():
            print(
                f"{r['model']:<9}{b:<9}{f['tick_ms']:>9.1f}{f['updates_per_s']:>11.2e}"
                f"{f['kernel_ms']:>11.1f}{f['kernel_updates_per_s']:>10.2e}"
                f"{f['tick_over_kernel']:>12.0%}{f['vs_cpu_tick']:>7.2f}x{f['peak_mb']:>9.0f}"
            )
    print()
    head = f"{'model':<9}{'GB/s':>7}{'of bw':>7}{'numpy ms':>10}{'vs numpy':>10}"
    head += f"{'2-rank ms':>11}{'2-rank x':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        two_ms = f"{r['tick_ms_2_ranks']:>11.1f}" if "tick_ms_2_ranks" in r else f"{'-':>11}"
        two_x = f"{r['speedup_2_ranks']:>9.2f}x" if "speedup_2_ranks" in r else f"{'-':>10}"
        print(
            f"{r['model']:<9}{r['bandwidth_gbs']:>7.1f}{r['fraction']:>7.0%}"
            f"{r['numpy_ms']:>10.1f}{r['speedup']:>9.1f}x{two_ms}{two_x}"
        )
    heat, epi = rows[0], rows[1]
    checks = [
        (
            "heat reaches >= 50% of the measured bandwidth (whole tick, cpu)",
            heat["fraction"] >= 0.5,
        ),
        ("epidemic >= 1e8 cell-updates/s per core (cpu)", epi["updates_per_s"] >= 1e8),
        ("heat >= 3x its NumPy version", heat["speedup"] >= 3),
        ("epidemic >= 3x its NumPy version", epi["speedup"] >= 3),
    ]
    if "threads" in backends:
        for r in rows:
            x = r["backends"]["threads"]["vs_cpu_tick"]
            checks.append((f"{r['model']}: threads >= 1.7x cpu (whole tick; {x:.2f}x)", x >= 1.7))
    if "cuda" in backends:
        e, h = epi["backends"]["cuda"], heat["backends"]["cuda"]
        dev_bw = h["device_copy_gbs"]
        heat_bw = 16 * h["kernel_updates_per_s"] / 1e9
        checks += [
            ("epidemic cuda update >= 5e10 cell-updates/s", e["kernel_updates_per_s"] >= 5e10),
            (
                f"heat cuda update >= 60% of the device copy ({dev_bw:.0f} GB/s)",
                heat_bw >= 0.6 * dev_bw,
            ),
            (
                "cuda whole tick >= 50% of the kernel-only rate (heat and epidemic)",
                min(h["tick_over_kernel"], e["tick_over_kernel"]) >= 0.5,
            ),
        ]
    print("\nTargets:")
    for text, ok in checks:
        print(f"  {'met    ' if ok else 'MISSED '} {text}")
    print(
        "\nms/tick: a whole engine tick (posts, halos, kernel, aggregates, probes); kernel: the "
        "update alone;\ntick/kernel: kernel time over tick time; vs cpu: cpu ms/tick over this "
        "backend's; GB/s: 16 B (heat)\nor 2 B (epidemic) per cpu cell update; 2-rank x: 1-rank "
        "over 2-rank ms/tick (cpu backend)."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"bandwidth": bw, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
