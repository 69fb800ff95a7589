"""PHOLD over 1, 2, ... N MPI ranks: events/s, efficiency, exchange and consensus costs.

    python benchmarks/scaling.py                  # 1..cores ranks, 100,000 LPs
    python benchmarks/scaling.py --ranks 1 2 4 8 --lps 1000000 --ticks 20

Each point is a real ``mpiexec`` job running the PHOLD model through the same
runner as ``pydiasca run``; rank 0 reports the figures as one JSON line. Rates
exclude tick 0, where the ranks build their actors. Both
routings are measured at every rank count above 1 (with groups of
``--group-size`` ranks, default half the ranks, so that s_group routing has
more than one group). The analytical table at the end gives the peers and
connections per rank that each routing needs at 10^3 to 10^5 ranks.
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

SCENARIO = """
[simulation]
name = "phold-scaling"
stop_tick = {ticks}
seed = 1

[[actors]]
id = "lp"
class = "models.phold:LP"
count = {lps}
args = {{ n_lps = {lps}, remote = {remote}, mean = {mean}, record_every = {never} }}
"""


def worker(args: argparse.Namespace) -> None:
    """One point, run inside mpiexec: every rank runs, rank 0 prints a JSON line."""
    import resource

    from runtime.launch import world
    from runtime.runner import run_scenario
    from runtime.scenario import load_scenario

    overrides = [f"deployment.routing={args.routing}"]
    if args.group_size is not None:
        overrides.append(f"deployment.group_size={args.group_size}")
    scenario = load_scenario(args.scenario, overrides)
    outcome = run_scenario(scenario, out=args.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peaks = world().gather(peak)
    if world().rank != 0:
        return
    per_rank = outcome.report.get("per_rank", [])
    s = outcome.stats
    print(
        json.dumps(
            {
                "ranks": outcome.ranks,
                "routing": args.routing,
                "group_size": args.group_size,
                "events": s.messages,
                "wall_s": s.wall_s - s.setup_s,  # tick 0 builds the actors: not PHOLD work
                "diascas": s.diascas,
                "messages_per_rank": [p["messages"] for p in per_rank],
                "sent_per_rank": [p["messages_out"] for p in per_rank],
                "bytes_per_rank": [p["bytes_out"] for p in per_rank],
                "peers_per_rank": [p["peers"] for p in per_rank],
                "consensus_s": max((p["consensus_s"] for p in per_rank), default=0.0),
                "exchange_s": max((p["exchange_s"] for p in per_rank), default=0.0),
                "peak_rss": max(peaks),
                "digest": outcome.digest,
            }
        ),
        flush=True,
    )


def _point(
    mpiexec: str | None, ranks: int, scen: Path, out: Path, routing: str, group_size: int
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--scenario",
        str(scen),
        "--out",
        str(out),
        "--routing",
        routing,
        "--group-size",
        str(group_size),
    ]
    if ranks > 1:
        if mpiexec is None:
            sys.exit("mpiexec not found: python -m pip install mpich")
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{ranks} ranks failed:\n{proc.stdout}\n{proc.stderr}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def analytical_table() -> str:
    """Peers and connections per rank, direct versus s_group routing, at large scale.

    Direct routing with uniform remote traffic may reach every other rank: up to
    P - 1 peers. s_group routing reaches the G - 1 members of its group and, for
    a gateway, the other P/G - 1 gateways. G = sqrt(P) minimises the worst case.
    """
    rows = [
        "ranks      | direct peers/rank | s_group G | member peers | gateway peers | "
        "direct links total | s_group links total"
    ]
    for p in (10**3, 10**4, 10**5):
        g = round(math.sqrt(p))
        groups = math.ceil(p / g)
        member = g - 1
        gateway = (g - 1) + (groups - 1)
        direct_links = p * (p - 1) // 2
        s_links = groups * g * (g - 1) // 2 + groups * (groups - 1) // 2
        rows.append(
            f"{p:>10,} | {p - 1:>17,} | {g:>9,} | {member:>12,} | {gateway:>13,} | "
            f"{direct_links:>18,} | {s_links:>19,}"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", help="rank counts (1..cores)")
    parser.add_argument("--lps", type=int, default=100_000)
    parser.add_argument("--remote", type=float, default=0.25)
    parser.add_argument("--mean", type=float, default=1.0)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--group-size", type=int, help="s_group size (default ranks // 2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--routing", default="direct", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.lps, args.ticks, args.ranks = 2000, 5, args.ranks or [1, 2]
    ranks = args.ranks or list(range(1, (os.cpu_count() or 1) + 1))

    from runtime.launch import find_mpiexec

    mpiexec = find_mpiexec()
    print(
        f"PHOLD scaling: {args.lps:,} LPs, remote {args.remote}, mean {args.mean}, "
        f"{args.ticks} ticks, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        scen = Path(tmp) / "phold.toml"
        scen.write_text(
            SCENARIO.format(
                lps=args.lps, ticks=args.ticks, remote=args.remote, mean=args.mean, never=10**9
            )
        )
        header = (
            f"{'ranks':>5} {'routing':>8} {'G':>3} {'events/s':>12} {'speedup':>8} {'eff':>6} "
            f"{'msgs/rank':>10} {'sent/rank':>10} {'MB sent/rank':>12} {'peers max':>9} "
            f"{'consensus/diasca':>16} {'exch/diasca':>12} {'peak RSS MB':>11}"
        )
        print(header)
        base = None
        digests = set()
        for n in ranks:
            routings = ["direct"] if n == 1 else ["direct", "s_group"]
            for routing in routings:
                g = args.group_size or max(1, n // 2)
                out = Path(tmp) / f"r{n}-{routing}"
                r = _point(mpiexec, n, scen, out, routing, g)
                digests.add(r["digest"])
                rate = r["events"] / r["wall_s"]
                if base is None:
                    base = rate
                speedup = rate / base
                per = lambda xs: sum(xs) / len(xs) if xs else 0  # noqa: E731
                print(
                    f"{n:>5} {routing:>8} {g:>3} {rate:>12,.0f} {speedup:>8.2f} "
                    f"{speedup / n:>6.2f} {per(r['messages_per_rank']):>10,.0f} "
                    f"{per(r['sent_per_rank']):>10,.0f} {per(r['bytes_per_rank']) / 1e6:>12.2f} "
                    f"{max(r['peers_per_rank'] or [0]):>9} "
                    f"{1e3 * r['consensus_s'] / r['diascas']:>13.3f} ms "
                    f"{1e3 * r['exchange_s'] / r['diascas']:>9.3f} ms "
                    f"{r['peak_rss'] / 1e6:>11.0f}",
                    flush=True,
                )
        print(
            "results digest identical across all points: "
            + ("yes" if len(digests) == 1 else f"NO ({len(digests)} digests)")
        )
    print()
    print("Analytical peers and connections per rank (uniform remote traffic, G = sqrt(P)):")
    print(analytical_table())


if __name__ == "__main__":
    main()
