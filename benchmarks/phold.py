#!/usr/bin/env python
"""PHOLD throughput and memory: pydiasca's engine against SimPy, in one run.

Throughput: for each LP count and mean, the engine's PHOLD model
(``models.phold.LP``, run directly on ``engine.Kernel``) and the same PHOLD on
SimPy in two forms ("simpy-process": one SimPy process per event, the idiomatic
form; "simpy-callbacks": bare Timeouts with a callback, the cheapest form; see
``_simpy_phold.py``). All three run the same LPs, remote fraction, mean, start
events and number of ticks. An event is one message processed by its
destination; events/s = events / wall seconds, where the wall time covers
building the model and running it (the engine builds its actors at tick 0,
inside ``Kernel.run``). With mean 1.0 every increment is one tick, and the
three forms must process exactly the same number of events.

Memory: in a fresh process each, peak RSS and bytes per actor for 10^6 idle
engine actors, 10^6 engine PHOLD LPs after a few ticks, and SimPy PHOLD at 10^6
LPs. See benchmarks/README.md.

Every measurement runs in a fresh subprocess (this script with ``--worker``),
so that memory figures and garbage-collector state do not leak between runs.

    python benchmarks/phold.py                    # 10^4 and 10^5 LPs, mean 1.0, then memory
    python benchmarks/phold.py --mean 1.0 2.0 --no-memory
    python benchmarks/phold.py --lps 1000 --ticks 200
    python benchmarks/phold.py --memory           # the memory part only
    python benchmarks/phold.py --quick --no-memory  # tiny sizes (the smoke test)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMS = ("engine", "simpy-process", "simpy-callbacks")
RECORD_EVERY = 10**9  # the LPs' probe period: far beyond any run, so probes stay idle
MAX_TICKS = 10**9  # stop_tick of an auto-length engine run (it is interrupted long before)


# --- measuring (in the worker process) ---------------------------------------------------
def _rss_now() -> int:
    """Resident set size of this process now, in bytes (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _rss_peak()


def _rss_peak() -> int:
    """Peak resident set size of this process so far (ru_maxrss), in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _settle() -> int:
    gc.collect()
    return _rss_now()


def _work_rate(spec: dict) -> dict:
    """One throughput measurement: build and run one form of PHOLD."""
    form, n, ticks = spec["form"], spec["lps"], spec["ticks"]
    knobs = {
        "start_events": spec["start_events"],
        "remote": spec["remote"],
        "mean": spec["mean"],
    }
    if form == "engine":
        from engine import Kernel
        from models.phold import LP

        base = _settle()
        c0, t0 = time.process_time(), time.perf_counter()
        k = Kernel(tick_duration=1.0, stop_tick=ticks or MAX_TICKS, seed=spec["seed"])
        k.add_actors(LP, n, n_lps=n, record_every=RECORD_EVERY, **knobs)
        if not ticks:  # auto length: stop at the end of the tick running at the deadline
            deadline = t0 + spec["target_s"]

            def on_tick(kernel: Kernel) -> None:
                if time.perf_counter() >= deadline:
                    kernel.interrupt()

            k.on_tick = on_tick
        stats = k.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if stats.status not in ("completed", "interrupted"):
            raise RuntimeError(f"engine run {stats.status}: {stats.failures}")
        events = stats.messages
        ticks = stats.last_tick + 1  # ticks 0 .. last_tick were evaluated
        counted = sum(k.actor(aai).processed for aai in range(1, n + 1))
        if counted != events:
            raise RuntimeError(f"engine: stats.messages {events} != sum of LP counts {counted}")
        run_s = stats.wall_s
    else:
        from _simpy_phold import FORMS as SIMPY_FORMS

        base = _settle()
        c0, t0 = time.process_time(), time.perf_counter()
        env, counts = SIMPY_FORMS[form](n, seed=spec["seed"], **knobs)
        t1 = time.perf_counter()
        env.run(until=ticks)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        run_s = time.perf_counter() - t1
        events = sum(counts)
    return {
        **spec,
        "ticks": ticks,
        "events": events,
        "wall_s": wall,
        "run_s": run_s,
        "cpu_s": cpu,
        "events_per_s": events / wall if wall > 0 else float("nan"),
        "events_per_cpu_s": events / cpu if cpu > 0 else float("nan"),
        "base_rss": base,
        "peak_rss": _rss_peak(),
    }


def _work_memory(spec: dict) -> dict:
    """One memory measurement; the baseline is this process after its imports."""
    import tracemalloc

    case, n, ticks = spec["case"], spec["actors"], spec["ticks"]
    if case in ("idle", "engine-phold"):
        from engine import Actor, Kernel
        from models.phold import LP

        class Idle(Actor):
            """A trivial actor: no state of its own, does nothing."""

    else:
        from _simpy_phold import FORMS as SIMPY_FORMS
    base = _settle()
    base_peak = _rss_peak()
    if spec["trace"]:
        tracemalloc.start()
    t0 = time.perf_counter()
    if case == "idle":
        ticks = 1
        keep = Kernel(tick_duration=1.0, stop_tick=1, seed=1)
        keep.add_actors(Idle, n)
        keep.run()
        if keep.actor_count != n:
            raise RuntimeError(f"{keep.actor_count} idle actors built, expected {n}")
    elif case == "engine-phold":
        keep = Kernel(tick_duration=1.0, stop_tick=ticks, seed=1)
        keep.add_actors(LP, n, n_lps=n, remote=0.25, mean=1.0, record_every=RECORD_EVERY)
        keep.run()
    else:
        keep, counts = SIMPY_FORMS[case](n, 1, 0.25, 1.0, 1)
        keep.run(until=ticks)
    wall = time.perf_counter() - t0
    traced = traced_peak = None
    if spec["trace"]:
        traced, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    now, peak = _rss_now(), _rss_peak()
    del keep
    return {
        **spec,
        "ticks": ticks,
        "base_rss": base,
        "base_peak_rss": base_peak,
        "rss_after": now,
        "peak_rss": peak,
        "traced": traced,
        "traced_peak": traced_peak,
        "wall_s": wall,
    }


def _worker(spec_json: str) -> None:
    sys.path.insert(0, str(HERE))  # for _simpy_phold
    spec = json.loads(spec_json)
    result = _work_memory(spec) if "case" in spec else _work_rate(spec)
    print("RESULT " + json.dumps(result))


# --- driving (in the parent process) -----------------------------------------------------
def _spawn(spec: dict) -> dict:
    """Run one measurement in a fresh interpreter and return its result."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    sys.stderr.write(proc.stdout + proc.stderr)
    raise SystemExit(f"benchmark worker failed (exit {proc.returncode}) for {spec}")


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:8.1f}"


def _rates(args: argparse.Namespace) -> list[dict]:
    print(
        f"PHOLD throughput: remote {args.remote}, start_events {args.start_events}, "
        f"seed {args.seed}; engine LPs record a probe every {RECORD_EVERY:.0e} ticks "
        f"(probes stay idle)"
    )
    if args.ticks:
        print(f"ticks: {args.ticks} for every form (events at ticks 1 .. {args.ticks - 1})")
    else:
        print(
            f"ticks: auto, the engine runs whole ticks for ~{args.target:g} s, then the SimPy "
            f"forms run that many ticks"
        )
    print("wall s = build + run; events/s = events / wall s; peak RSS of the fresh process")
    print()
    head = (
        f"{'LPs':>8} {'mean':>5} {'ticks':>6}  {'form':<16}{'events':>12} {'wall s':>8} "
        f"{'events/s':>11} {'peak RSS MB':>12}"
    )
    print(head)
    print("-" * len(head))
    rows: list[dict] = []
    for mean in args.mean:
        for n in args.lps:
            spec = {
                "lps": n,
                "mean": mean,
                "remote": args.remote,
                "start_events": args.start_events,
                "seed": args.seed,
                "ticks": args.ticks,
                "target_s": args.target,
            }
            ticks = args.ticks
            for form in FORMS:
                r = _spawn({**spec, "form": form, "ticks": ticks})
                ticks = r["ticks"]  # the engine's auto length, for the SimPy forms
                rows.append(r)
                print(
                    f"{n:>8} {mean:>5.2f} {ticks:>6}  {form:<16}{r['events']:>12} "
                    f"{r['wall_s']:>8.2f} {r['events_per_s']:>11,.0f} "
                    f"{_mb(r['peak_rss']):>12}",
                    flush=True,
                )
    print()
    head = f"{'LPs':>8} {'mean':>5}  {'engine/simpy-process':>21} {'engine/simpy-callbacks':>23}"
    # On a shared machine a process waits for a core: its CPU time moves less than its
    # wall time with the load, so the second table is the steadier of the two.
    tables = [
        ("events_per_s", "ratios of events/s (> 1: the engine is faster)"),
        (
            "events_per_cpu_s",
            "the same ratios over CPU seconds (this process's; steadier on a busy machine)",
        ),
    ]
    for key, title in tables:
        print(title)
        print(head)
        print("-" * len(head))
        for i in range(0, len(rows), len(FORMS)):
            eng, proc, cb = rows[i : i + len(FORMS)]
            print(
                f"{eng['lps']:>8} {eng['mean']:>5.2f}  "
                f"{eng[key] / proc[key]:>21.2f} {eng[key] / cb[key]:>23.2f}"
            )
            if key == "events_per_s" and eng["mean"] == 1.0:
                if not eng["events"] == proc["events"] == cb["events"]:
                    print("  WARNING: with mean 1.0 the event counts should be identical")
        print()
    return rows


MEMORY_CASES = (
    ("idle", False, "engine: idle actors (RSS)"),
    ("idle", True, "engine: idle actors (tracemalloc)"),
    ("engine-phold", False, "engine: PHOLD LPs"),
    ("simpy-process", False, "simpy-process: PHOLD"),
    ("simpy-callbacks", False, "simpy-callbacks: PHOLD"),
)


def _memory(args: argparse.Namespace) -> list[dict]:
    n, ticks = args.memory_actors, args.memory_ticks
    print(f"Memory at {n:,} actors, one fresh process per line:")
    print("  base = RSS after the imports (engine + numpy, or simpy), before building anything")
    print("  peak = ru_maxrss; retained = RSS after the run - base")
    print("  bytes/actor = (peak - base) / actors; idle actors: stop_tick=1 (built at tick 0)")
    print(f"  PHOLD: remote 0.25, mean 1.0, stop tick {ticks} (ticks 0 .. {ticks - 1})")
    print("  tracemalloc: Python allocations made after the imports (actors, generators, the")
    print("  kernel's tables), peak and retained; it slows the run several times")
    print()
    head = (
        f"{'case':<36}{'base MB':>8} {'peak MB':>8} {'retained MB':>11} "
        f"{'bytes/actor':>11} {'wall s':>7}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for case, trace, label in MEMORY_CASES:
        r = _spawn({"case": case, "actors": n, "ticks": ticks, "trace": trace})
        r["label"] = label
        rows.append(r)
        if trace:
            r["bytes_per_actor"] = r["traced_peak"] / n
            print(
                f"{label:<36}{'':>8} {_mb(r['traced_peak']):>8} {_mb(r['traced']):>11} "
                f"{r['bytes_per_actor']:>11.0f} {r['wall_s']:>7.1f}   (traced bytes)",
                flush=True,
            )
        else:
            r["bytes_per_actor"] = (r["peak_rss"] - r["base_rss"]) / n
            print(
                f"{label:<36}{_mb(r['base_rss']):>8} {_mb(r['peak_rss']):>8} "
                f"{_mb(r['rss_after'] - r['base_rss']):>11} {r['bytes_per_actor']:>11.0f} "
                f"{r['wall_s']:>7.1f}",
                flush=True,
            )
    idle = rows[0]["bytes_per_actor"]
    verdict = "met" if idle <= 1024 else "NOT met"
    print()
    print(f"target <= 1024 bytes per idle actor at {n:,} actors: {verdict} ({idle:.0f} bytes, RSS)")
    print()
    return rows


def _revision() -> str:
    """The checkout's commit, marked dirty when engine/ or models/ have local changes."""
    root = HERE.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "models"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (rev or "unknown") + (" (engine/models modified)" if dirty else "")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="PHOLD on pydiasca's engine against SimPy: events/s and memory.",
    )
    p.add_argument("--lps", type=int, nargs="+", default=[10_000, 100_000], help="LP counts")
    p.add_argument("--remote", type=float, default=0.25, help="remote fraction (0.25)")
    p.add_argument(
        "--mean", type=float, nargs="+", default=[1.0], help="mean increment(s) in ticks (1.0)"
    )
    p.add_argument("--start-events", type=int, default=1, help="events per LP at start (1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--ticks", type=int, default=None, help="stop tick for every form (default: auto)"
    )
    p.add_argument(
        "--target", type=float, default=3.0, help="auto ticks: engine seconds per run (3)"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--memory", action="store_true", help="run the memory part only")
    mem.add_argument("--no-memory", action="store_true", help="skip the memory part")
    p.add_argument("--memory-actors", type=int, default=1_000_000, help="actors (10^6)")
    p.add_argument("--memory-ticks", type=int, default=3, help="PHOLD stop tick (3)")
    p.add_argument("--json", type=Path, help="also write every result to this JSON file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    if args.quick:
        args.lps, args.mean = [200, 2_000], [1.0, 2.0]
        args.ticks = args.ticks or 20
        args.memory_actors = 10_000
    if args.ticks is not None and args.ticks < 2:
        raise SystemExit("--ticks must be >= 2 (events are processed from tick 1 on)")
    if args.memory_ticks < 2:
        raise SystemExit("--memory-ticks must be >= 2")
    print(
        f"pydiasca PHOLD benchmark, {time.strftime('%Y-%m-%d %H:%M')}: Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"(one used), {platform.platform()}"
    )
    print(f"pydiasca revision {_revision()}")
    print()
    out: dict = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "revision": _revision(),
    }
    if not args.memory:
        out["rates"] = _rates(args)
    if not args.no_memory:
        out["memory"] = _memory(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
