#!/usr/bin/env python
"""cProfile's top lines for the four actor workloads of benchmarks/README.md.

PHOLD (10^5 LPs, mean 1.0, 10 ticks, on ``engine.Kernel``), the soda scenario
(a whole ``pydiasca run``, plots off), the rumour of ``spread.py`` (10^5 nodes,
1,000 ticks, through ``run_scenario``) and Mesa's wealth model of
``wealth.py`` (10^5 agents, 20 steps, on ``engine.Kernel``), each in a fresh
process. Profiles inflate the cost of calls, so read them for where time goes,
not for rates: those come from the benchmarks themselves.

    python benchmarks/profiles.py                 # all four, top 12 lines each
    python benchmarks/profiles.py --only phold --top 20
    python benchmarks/profiles.py --quick         # 2,000 actors: seconds
    PYTHONPATH=/path/to/other/checkout python benchmarks/profiles.py   # another engine
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = ("phold", "soda", "spread", "wealth")


# Each workload prepares what is not to be profiled, and returns what is.
# ``--quick`` shrinks the actor models to 2,000 actors (the smoke test).
_SIZE = {"actors": 100_000, "spread_ticks": None}


def _phold(work: Path) -> Callable[[], object]:
    from engine import Kernel, MemorySink, ProbeStore
    from models.phold import LP

    n = _SIZE["actors"]
    kernel = Kernel(stop_tick=10, seed=1, probes=ProbeStore(MemorySink()))
    kernel.add_actors(LP, n, None, n_lps=n, remote=0.25, mean=1.0, record_every=10**9)
    return kernel.run


def _soda(work: Path) -> Callable[[], object]:
    from runtime.runner import run_scenario
    from runtime.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "soda.toml", ["results.plots=false"])
    return lambda: run_scenario(scenario, out=work / "soda")


def _spread(work: Path) -> Callable[[], object]:
    import spread

    from runtime.runner import run_scenario
    from runtime.scenario import load_scenario

    nodes = min(_SIZE["actors"], spread.NODES)
    ticks = spread.TICKS if nodes == spread.NODES else 50
    net = spread.make_network(work / "network.npz", nodes, spread.K, spread.REWIRE, 5, 1)
    path = spread.write_scenario(work / "spread.toml", net, nodes, ticks, 1)
    scenario = load_scenario(path, ["results.plots=false"])
    return lambda: run_scenario(scenario, out=work / "spread")


def _wealth(work: Path) -> Callable[[], object]:
    from wealth import MoneyAgent

    from engine import Kernel, MemorySink, ProbeStore

    n = _SIZE["actors"]
    kernel = Kernel(stop_tick=21, seed=1, probes=ProbeStore(MemorySink()))
    kernel.add_actors(MoneyAgent, n, None, n_agents=n)
    return kernel.run


def _profile(name: str, top: int) -> str:
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare = {"phold": _phold, "soda": _soda, "spread": _spread, "wealth": _wealth}[name]
        run = prepare(work)
        profiler = cProfile.Profile()
        profiler.runcall(run)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    total = next(line for line in lines if "function calls" in line).strip()
    return "\n".join([f"## {name}: {total}", *lines[start : start + top + 1]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=WORKLOADS, nargs="+", default=list(WORKLOADS))
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="2,000 actors (a smoke test)")
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        _SIZE["actors"] = 2_000
    if args.worker:
        print(_profile(args.worker, args.top))
        return 0
    failed = False
    for name in args.only:
        cmd = [sys.executable, __file__, "--worker", name, "--top", str(args.top)]
        proc = subprocess.run(cmd + ["--quick"] * args.quick, capture_output=True, text=True)
        print(proc.stdout if proc.returncode == 0 else proc.stderr, flush=True)
        failed = failed or proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
