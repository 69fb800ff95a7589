#!/usr/bin/env python
"""A rumour spreading over a network: pydiasca against Repast4Py, on 1 and 2 ranks.

The network is a connected Watts-Strogatz graph (100,000 nodes, k = 2: a ring
whose edges are each rewired with probability 0.25), generated once from the
seed with NumPy and saved as an .npz that feeds both engines. Five nodes, drawn
from the same seed, know the rumour at tick 0. At every tick after that, each
node that knows it tells each neighbour that does not, with probability 0.1.

- pydiasca: ``Node`` and ``Gossip`` below, written with the public Actor API
  only, run through ``runtime.runner.run_scenario`` with a generated scenario
  file (one process, or ``mpiexec -n 2`` running this script with
  ``--worker``). Each node records 1 in the probe ``informed`` at the tick it
  hears the rumour, so the informed count per tick comes from results.h5, and
  the results digest must not depend on the number of ranks.
- Repast4Py: ``_repast_spread.py``, run with the Python of its own virtual
  environment (``--setup`` creates it; Repast4Py is never a pydiasca
  dependency), and that environment's ``mpiexec`` for 2 ranks.

Placement on several ranks: pydiasca keeps its default round-robin placement
(node i on rank i mod R, so nearly every edge of the ring crosses ranks).
Repast4Py gets the better layout a user would pick for a ring: R runs of
consecutive nodes, so only rewired edges cross (``--peer-partition block``,
the default). With ``--peer-partition round-robin`` it gets pydiasca's
assignment instead; its ghost synchronisation then makes the 2-rank run last
many minutes.
Every measurement runs in a fresh process. See benchmarks/README.md.

    python benchmarks/spread.py --setup       # create benchmarks/.venv-repast4py (once)
    python benchmarks/spread.py               # 100,000 nodes, 1,000 ticks, 1 and 2 ranks
    python benchmarks/spread.py --quick       # 2,000 nodes, 50 ticks: a few seconds
    python benchmarks/spread.py --no-peer     # the pydiasca side only
    python benchmarks/spread.py --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine import Actor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_VENV = HERE / ".venv-repast4py"
PEER_SCRIPT = HERE / "_repast_spread.py"
SETUP_HINT = f"Repast4Py not set up ({PEER_VENV} missing): python benchmarks/spread.py --setup"

# Watts-Strogatz: K is the lattice degree (K // 2 neighbours on each side). With
# K = 2 the lattice is a ring, and rewiring keeps it connected only when the
# arcs it leaves happen to chain together: about 1 seed in 125 at 10^5 nodes
# (the probability that a random mapping of the 25,000 arcs is connected).
NODES, K, REWIRE = 100_000, 2, 0.25
SEEDS, PROBABILITY, TICKS = 5, 0.1, 1000
CONNECT_TRIES = 2000
REPORT_TICKS = (10, 25, 50, 100, 200, 500)  # informed counts shown at these ticks too


# --- the network (NumPy only) ------------------------------------------------------------
def watts_strogatz(n: int, k: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Edges (m, 2) of a ring lattice whose edges are each rewired with probability ``p``.

    Node u links to u+1 .. u+k/2 (mod n). A rewired edge keeps u and gets a
    new end drawn uniformly, redrawn while it would be a self-loop or a
    duplicate, as in Watts and Strogatz's paper.
    """
    half = k // 2
    u = np.tile(np.arange(n, dtype=np.int64), half)
    v = (u + np.repeat(np.arange(1, half + 1), n)) % n
    present = set((np.minimum(u, v) * n + np.maximum(u, v)).tolist())
    for e in np.flatnonzero(rng.random(len(u)) < p):
        a, b = int(u[e]), int(v[e])
        while True:
            w = int(rng.integers(n))
            key = min(a, w) * n + max(a, w)
            if w != a and key not in present:
                break
        present.remove(min(a, b) * n + max(a, b))
        present.add(key)
        v[e] = w
    return np.stack([u, v], axis=1)


def adjacency(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR form (indptr, indices) of an undirected edge list; neighbours in ascending order."""
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.lexsort((dst, src))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst[order]


def is_connected(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Breadth-first search from node 0, one whole frontier per NumPy step."""
    n = len(indptr) - 1
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    frontier = np.array([0])
    while frontier.size:
        starts, counts = indptr[frontier], indptr[frontier + 1] - indptr[frontier]
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
        reached = indices[offsets + np.arange(counts.sum())]
        frontier = np.unique(reached[~seen[reached]])
        seen[frontier] = True
    return bool(seen.all())


def make_network(path: Path, n: int, k: int, p: float, seeds: int, seed: int) -> dict:
    """Generate the network (the first connected one from ``seed`` on) and save it as .npz.

    The .npz holds ``edges`` (m, 2), the CSR ``indptr`` and ``indices``, and
    the ``seeds``: the nodes that know the rumour at tick 0.
    """
    for attempt in range(seed, seed + CONNECT_TRIES):
        rng = np.random.default_rng(attempt)
        edges = watts_strogatz(n, k, p, rng)
        indptr, indices = adjacency(n, edges)
        if is_connected(indptr, indices):
            break
    else:
        raise SystemExit(
            f"spread: no connected Watts-Strogatz graph (n={n}, k={k}, p={p}) from seeds "
            f"{seed}..{seed + CONNECT_TRIES - 1}; try another --seed or a larger --k"
        )
    first = np.sort(rng.choice(n, size=seeds, replace=False))
    np.savez(path, edges=edges, indptr=indptr, indices=indices, seeds=first)
    return {"path": str(path), "edges": len(edges), "graph_seed": attempt, "seeds": first.tolist()}


@functools.cache
def _network(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The network's CSR arrays, read once per process (every node of a rank shares them)."""
    with np.load(path) as data:
        return data["indptr"], data["indices"]


# --- the pydiasca model --------------------------------------------------------------------
class Node(Actor):
    """A person on the network, who passes the rumour on once heard.

    A node keeps the AAIs of the neighbours it believes have not heard the
    rumour yet. When it hears it, it says so to all its neighbours (each holds
    it in that list), so that nobody keeps telling it. Once informed, a node
    acts at every tick, telling each neighbour still in its list with
    probability ``probability``, and stops planning when none is left.

    Scenario arguments: ``network`` (the .npz of ``make_network``), ``first``
    (the AAI of node 0: node i is AAI ``first + i``) and ``probability``.
    Probe: ``informed``, 1 at the tick the node hears the rumour.
    """

    def __init__(self, network: str, first: int, probability: float) -> None:
        indptr, indices = _network(network)
        i = self.aai - first
        self.neighbours = (indices[indptr[i] : indptr[i + 1]] + first).tolist()
        self.unaware = list(self.neighbours)
        self.probability = probability
        self.informed = False

    def act_spontaneous(self) -> None:
        for neighbour in self.unaware:
            if self.random.random() < self.probability:
                self.send(neighbour, "inform")
        if self.unaware:
            self.schedule_in(1)

    def inform(self, sender: int) -> None:
        if self.informed:
            return  # heard it before, from another neighbour
        self.informed = True
        self.record("informed", 1)
        for neighbour in self.neighbours:
            self.send(neighbour, "heard")
        self.schedule_in(1)

    def heard(self, sender: int) -> None:
        self.unaware.remove(sender)


class Gossip(Actor):
    """Starts the rumour: tells the ``people`` (AAIs) at tick 0."""

    def __init__(self, people: list[int]) -> None:
        self.people = people

    def on_first_diasca(self) -> None:
        for person in self.people:
            self.send(person, "inform")


SCENARIO = """\
[simulation]
name = "spread"
stop_tick = {stop_tick}
seed = {seed}

[[actors]]
id = "node"
class = {model}
count = {nodes}
args = {{ network = {network}, first = "@node-0", probability = {probability} }}

[[actors]]
class = {gossip}
args = {{ people = {people} }}

[results]
plots = false
"""


def write_scenario(path: Path, net: dict, nodes: int, ticks: int, seed: int) -> Path:
    """The pydiasca scenario: ticks 0 .. ``ticks`` (spreading at 1 .. ``ticks``)."""
    model = Path(__file__).resolve()
    path.write_text(
        SCENARIO.format(
            stop_tick=ticks + 1,
            seed=seed,
            model=json.dumps(f"{model}:Node"),
            gossip=json.dumps(f"{model}:Gossip"),
            nodes=nodes,
            network=json.dumps(net["path"]),
            probability=PROBABILITY,
            people=json.dumps([f"@node-{i}" for i in net["seeds"]]),
        )
    )
    return path


# --- measuring (in the worker processes) --------------------------------------------------
def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _worker(args: argparse.Namespace) -> None:
    """One pydiasca run on every rank of this job; rank 0 prints one JSON line."""
    import h5py

    from runtime.launch import world
    from runtime.runner import run_scenario
    from runtime.scenario import load_scenario

    comm = world()
    base = _rss_now()
    t0 = time.perf_counter()
    scenario = load_scenario(args.scenario)
    outcome = run_scenario(scenario, out=args.out)
    total = time.perf_counter() - t0
    peaks, bases = comm.gather(_rss_peak()), comm.gather(base)
    if comm.rank != 0:
        return
    s = outcome.stats
    with h5py.File(Path(outcome.run_dir) / "results.h5") as f:
        ticks = f["probes/informed/tick"][()]
    print(
        "RESULT "
        + json.dumps(
            {
                "engine": "pydiasca",
                "ranks": outcome.ranks,
                "status": s.status,
                "build_s": s.setup_s,  # tick 0: the nodes are built, the seeds told
                "run_s": s.wall_s - s.setup_s,
                "active_s": s.wall_s - s.setup_s,  # the run ends when nobody plans a tick
                "last_active_tick": s.last_tick,
                "total_s": total,  # scenario loading, the run and results.h5
                "events": s.messages + s.spontaneous,
                "last_tick": s.last_tick,
                "new_per_tick": np.bincount(ticks, minlength=args.ticks + 1).tolist(),
                "digest": outcome.digest,
                "base_rss": bases,
                "peak_rss": peaks,
            }
        ),
        flush=True,
    )


# --- driving (in the parent process) --------------------------------------------------------
def _result(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    sys.stderr.write(proc.stdout + proc.stderr)
    raise SystemExit(f"spread: benchmark process failed (exit {proc.returncode}): {' '.join(cmd)}")


def _mpiexec(python: str, ranks: int) -> list[str]:
    if ranks == 1:
        return []
    mpiexec = Path(python).parent / "mpiexec"
    if not mpiexec.exists():
        raise SystemExit(f"spread: {ranks} ranks need {mpiexec}: python -m pip install mpich")
    return [str(mpiexec), "-n", str(ranks)]


def run_pydiasca(ranks: int, scenario: Path, work: Path, ticks: int) -> dict:
    out = work / f"pydiasca-{ranks}"
    cmd = [*_mpiexec(sys.executable, ranks), sys.executable, str(Path(__file__).resolve())]
    cmd += ["--worker", "--scenario", str(scenario), "--out", str(out), "--ticks", str(ticks)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _result(cmd, env)


def run_repast(ranks: int, net: dict, work: Path, ticks: int, seed: int, partition: str) -> dict:
    python = str(PEER_VENV / "bin" / "python")
    cmd = [*_mpiexec(python, ranks), python, str(PEER_SCRIPT), "--network", net["path"]]
    cmd += ["--work", str(work), "--ticks", str(ticks), "--seed", str(seed)]
    cmd += ["--probability", str(PROBABILITY), "--partition", partition]
    return _result(cmd)


def setup_peer() -> None:
    """Create benchmarks/.venv-repast4py: MPICH's wheel, NumPy, then Repast4Py built against it."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install"]
    subprocess.run([*pip, "mpich", "numpy"], check=True)
    bin_dir = PEER_VENV / "bin"
    env = {**os.environ, "CC": str(bin_dir / "mpicc"), "CXX": str(bin_dir / "mpicxx")}
    subprocess.run([*pip, "repast4py"], check=True, env=env)
    check = "import repast4py, repast4py.network; print('repast4py', repast4py.__version__)"
    subprocess.run([str(python), "-c", check], check=True)


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f}"


def _informed(r: dict) -> np.ndarray:
    """Informed count at the end of each tick."""
    return np.cumsum(r["new_per_tick"])


def _print_runs(runs: list[dict], ticks: int) -> None:
    head = (
        f"{'engine':<10}{'ranks':>6}{'build s':>9}{'run s':>9}{'active s':>9}{'to tick':>8}"
        f"{'total s':>9}{'events/s':>10}{'peak RSS MB/rank':>18}{'base MB':>8}{'informed':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        rate = f"{r['events'] / r['run_s']:,.0f}" if r.get("events") else "-"
        peaks = "/".join(_mb(p) for p in r["peak_rss"])
        print(
            f"{r['engine']:<10}{r['ranks']:>6}{r['build_s']:>9.2f}{r['run_s']:>9.2f}"
            f"{r['active_s']:>9.2f}{r['last_active_tick']:>8}{r['total_s']:>9.2f}{rate:>10}"
            f"{peaks:>18}{_mb(max(r['base_rss'])):>8}{int(_informed(r)[-1]):>10,}",
            flush=True,
        )
    print()
    shown = [t for t in REPORT_TICKS if t < ticks] + [ticks]
    print("informed at the end of tick " + ", ".join(str(t) for t in shown))
    for r in runs:
        counts = _informed(r)
        print(
            f"  {r['engine']:<10}{r['ranks']} rank(s): "
            + ", ".join(f"{int(counts[t]):,}" for t in shown)
        )
    print()


def _print_ratios(runs: list[dict]) -> None:
    by = {(r["engine"], r["ranks"]): r for r in runs}
    pairs = [
        (by.get(("pydiasca", n)), by.get(("repast4py", n)))
        for n in sorted({r["ranks"] for r in runs})
    ]
    pairs = [(ours, peer) for ours, peer in pairs if ours and peer]
    if not pairs:
        return
    print("speed ratio pydiasca / Repast4Py: Repast4Py's seconds over pydiasca's")
    print("(> 1: pydiasca faster)")
    print(f"{'ranks':>7}{'run':>8}{'active':>8}{'build + run':>13}")
    for ours, peer in pairs:
        whole = (peer["build_s"] + peer["run_s"]) / (ours["build_s"] + ours["run_s"])
        print(
            f"{ours['ranks']:>7}{peer['run_s'] / ours['run_s']:>8.2f}"
            f"{peer['active_s'] / ours['active_s']:>8.2f}{whole:>13.2f}"
        )
    print()


def _check_ranks(runs: list[dict]) -> bool:
    ours = [r for r in runs if r["engine"] == "pydiasca"]
    same = all(
        r["new_per_tick"] == ours[0]["new_per_tick"] and r["digest"] == ours[0]["digest"]
        for r in ours
    )
    ranks = ", ".join(str(r["ranks"]) for r in ours)
    if same:
        print(f"pydiasca on {ranks} ranks: identical informed counts and results digest")
        print(f"  digest {ours[0]['digest']}")
    else:
        print(f"pydiasca on {ranks} ranks: informed counts or digests DIFFER")
        for r in ours:
            print(f"  {r['ranks']} rank(s): digest {r['digest']}")
    return same


def _revision() -> str:
    """The checkout's commit, marked when engine/, runtime/ or models/ have local changes."""
    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "engine", "runtime", "models"],
        capture_output=True,
        text=True,
    )
    mark = " (engine/runtime/models modified)" if dirty.stdout.strip() else ""
    return (rev.stdout.strip() or "unknown") + mark


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=NODES, help=f"network size ({NODES:,})")
    p.add_argument("--k", type=int, default=K, help=f"lattice degree, even ({K})")
    p.add_argument("--ticks", type=int, default=TICKS, help=f"spreading ticks ({TICKS})")
    p.add_argument("--seed", type=int, default=1, help="network, initial nodes and draws (1)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts (1 2)")
    p.add_argument("--quick", action="store_true", help="2,000 nodes, 50 ticks (the smoke test)")
    p.add_argument("--no-peer", action="store_true", help="run the pydiasca side only")
    p.add_argument("--setup", action="store_true", help=f"create {PEER_VENV.name} and exit")
    p.add_argument(
        "--peer-partition",
        choices=("block", "round-robin"),
        default="block",
        help="Repast4Py's node-to-rank assignment (block)",
    )
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.setup:
        setup_peer()
        return 0
    if args.quick:
        args.nodes, args.ticks = 2_000, 50
    peer = not args.no_peer and (PEER_VENV / "bin" / "python").exists()
    print(
        f"rumour spreading, {time.strftime('%Y-%m-%d %H:%M')}: {args.nodes:,} nodes, "
        f"Watts-Strogatz k={args.k} p={REWIRE}, {SEEDS} initial nodes, probability "
        f"{PROBABILITY}, {args.ticks:,} ticks, seed {args.seed}"
    )
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; pydiasca revision "
        f"{_revision()}"
    )
    print(
        "placement on several ranks: pydiasca round robin; Repast4Py "
        + ("runs of consecutive nodes" if args.peer_partition == "block" else "round robin")
    )
    if not peer and not args.no_peer:
        print(SETUP_HINT)
    print()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spread-") as tmp:
        work = Path(tmp)
        net = make_network(work / "network.npz", args.nodes, args.k, REWIRE, SEEDS, args.seed)
        print(
            f"network: {net['edges']:,} edges (graph seed {net['graph_seed']}); initial "
            f"nodes {net['seeds']}"
        )
        scenario = write_scenario(work / "spread.toml", net, args.nodes, args.ticks, args.seed)
        runs = []
        for ranks in args.ranks:
            runs.append(run_pydiasca(ranks, scenario, work, args.ticks))
            if peer:
                runs.append(
                    run_repast(ranks, net, work, args.ticks, args.seed, args.peer_partition)
                )
    print("build s: pydiasca's tick 0 (nodes built, seeds told); Repast4Py's read_network")
    print("run s: the ticks after that, as far as the engine goes (pydiasca stops when no")
    print("node plans a tick); active s: up to the last tick with a node still spreading")
    print("('to tick'); total s: the whole job (pydiasca: also loading the scenario and")
    print("writing results.h5); events: messages + spontaneous actions")
    print()
    _print_runs(runs, args.ticks)
    _print_ratios(runs)
    same = _check_ranks(runs)
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        out = {
            "revision": _revision(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "nodes": args.nodes,
            "k": args.k,
            "rewire": REWIRE,
            "probability": PROBABILITY,
            "ticks": args.ticks,
            "seed": args.seed,
            "network": net,
            "peer_partition": args.peer_partition,
            "pydiasca_ranks_agree": same,
            "runs": runs,
        }
        args.json.write_text(json.dumps(out, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
