#!/usr/bin/env python
"""Boltzmann wealth: pydiasca against Mesa 3 on Mesa's own tutorial model.

N agents start with wealth 1. At each step every agent that has wealth gives
one unit to an agent drawn uniformly from all N (itself included). The Mesa side
(``_mesa_wealth.py``) is Mesa's introductory tutorial model, no space, run in
its own virtual environment; Mesa is never a dependency of pydiasca. It draws
the receiver from a list of the agents made once, because the tutorial's
``self.random.choice(self.model.agents)`` copies every agent at each draw
(O(N), see ``_mesa_wealth.py``); ``--tutorial-draw`` runs the tutorial's form.

The pydiasca side is written as a user would write it, with the public Actor
API, and runs on ``engine.Kernel`` on one core. One step is one tick, steps
1 .. S are ticks 1 .. S. Agents are actors, not a vectorised rewrite: an agent
cannot change another agent's wealth, it sends it a ``give`` message, which
arrives at the next diasca of the same tick. So money received during a step
can only be given at the next step, whereas in Mesa an agent paid earlier in a
step may pass the unit on in the same step. The two runs therefore draw
different numbers and end with different wealths: their Gini coefficients
should be close, they cannot be equal. The messages are also what makes a
pydiasca run give the same result on any number of ranks, since no agent ever
reads or writes another's state.

Following the tutorial's advice on planning (docs/tutorial.md, "no polling"),
a pydiasca agent with no wealth plans nothing: the ``give`` that makes it
solvent again plans its next step. Mesa's ``shuffle_do`` calls every agent at
every step, broke or not. ``--every-step`` runs the pydiasca agents that way
too (each plans every tick and checks its wealth, as Mesa's do) to show what
the planning saves.

Every measurement runs in a fresh subprocess (this script with ``--worker``
for pydiasca, ``_mesa_wealth.py`` with the Mesa venv's python for Mesa), so
memory figures and garbage-collector state do not leak between them.

    python benchmarks/wealth.py --setup            # once: make benchmarks/.venv-mesa
    python benchmarks/wealth.py --setup python3.12 # the same with another Python (newer Mesa)
    python benchmarks/wealth.py                    # 10^5 agents, 100 steps
    python benchmarks/wealth.py --agents 10000 --steps 50 --json out.json
    python benchmarks/wealth.py --quick --no-peer  # tiny, pydiasca only (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from engine import Actor, Kernel

HERE = Path(__file__).resolve().parent
MESA_VENV = HERE / ".venv-mesa"
MESA_PYTHON = MESA_VENV / "bin" / "python"
# Mesa 3.5 imports networkx without declaring it as a dependency.
MESA_REQUIREMENTS = ("mesa>=3,<4", "networkx")


# --- the pydiasca model -----------------------------------------------------------------------
class MoneyAgent(Actor):
    """An agent of AAI 1 .. n_agents with wealth; it plans a step only while it has some."""

    def __init__(self, n_agents: int) -> None:
        self.n_agents = n_agents
        self.wealth = 1

    def on_first_diasca(self) -> None:
        self.schedule_in(1)  # step 1 is tick 1

    def act_spontaneous(self) -> None:
        self.wealth -= 1
        self.send(self.random.integers(1, self.n_agents + 1), "give")
        if self.wealth > 0:
            self.schedule_in(1)

    def give(self, sender: int) -> None:
        self.wealth += 1
        if self.wealth == 1:  # it was broke, so nothing is planned: act at the next step
            self.schedule_in(1)


class EveryStepAgent(MoneyAgent):
    """Acts at every step, broke or not, as Mesa's activation does (``--every-step``)."""

    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        if self.wealth > 0:
            self.wealth -= 1
            self.send(self.random.integers(1, self.n_agents + 1), "give")

    def give(self, sender: int) -> None:
        self.wealth += 1


# --- measuring (in the worker process) ---------------------------------------------------
def _peak_rss() -> int:
    """ru_maxrss of this process so far, in bytes (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_pydiasca(spec: dict) -> dict:
    """Build and run the pydiasca model as ``spec`` says; time both, check the total wealth.

    The kernel builds its initial actors at tick 0, inside ``Kernel.run``: build
    time is declaring them plus tick 0 (``RunStats.setup_s``), run time the rest.
    """
    cls = EveryStepAgent if spec["every_step"] else MoneyAgent
    n, steps = spec["agents"], spec["steps"]
    base = _peak_rss()
    t0 = time.perf_counter()
    kernel = Kernel(tick_duration=1.0, stop_tick=steps + 1, seed=spec["seed"])
    aais = kernel.add_actors(cls, n, n_agents=n)
    declared = time.perf_counter() - t0
    stats = kernel.run()
    total_s = time.perf_counter() - t0
    if stats.status != "completed":
        raise RuntimeError(f"pydiasca run {stats.status}: {stats.failures}")
    assert aais == range(1, n + 1), aais  # the agents draw their peers from 1 .. n
    wealth = Counter(kernel.actor(aai).wealth for aai in aais)
    total = sum(value * count for value, count in wealth.items())
    assert total == n, f"pydiasca: total wealth {total} != {n} agents"
    build_s = declared + stats.setup_s
    return {
        **spec,
        "side": "pydiasca",
        "build_s": build_s,
        "run_s": total_s - build_s,
        "total_s": total_s,
        "base_peak_rss": base,
        "peak_rss": _peak_rss(),
        "wealth": {str(value): count for value, count in sorted(wealth.items())},
        "python": platform.python_version(),
        "ticks": stats.ticks,
        "messages": stats.messages,
        "actions": stats.spontaneous,
    }


# --- the parent: spawn, gather, print -------------------------------------------------------
def gini(wealth: dict[str, int]) -> float:
    """The Gini coefficient of a wealth histogram {wealth: number of agents}.

    With the agents sorted by wealth x_1 <= .. <= x_n:
    G = 2 * sum(i * x_i) / (n * sum(x_i)) - (n + 1) / n.
    """
    n = total = weighted = 0
    for value, count in sorted((int(v), c) for v, c in wealth.items()):
        # Agents n+1 .. n+count all have this value: sum of their ranks times it.
        weighted += value * (count * n + count * (count + 1) // 2)
        n += count
        total += value * count
    return 2 * weighted / (n * total) - (n + 1) / n


def _spawn(python: Path | str, args: list[str]) -> dict:
    proc = subprocess.run(
        [str(python), *args], cwd=HERE.parent, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({' '.join(args[:2])}):\n{proc.stdout}{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["gini"] = gini(result["wealth"])
    return result


def _measure(args: argparse.Namespace, peer: bool) -> list[dict]:
    spec = {"agents": args.agents, "steps": args.steps, "seed": args.seed}
    rows = [
        _spawn(
            sys.executable,
            [__file__, "--worker", json.dumps({**spec, "every_step": args.every_step})],
        )
    ]
    if peer:
        choice = "tutorial" if args.tutorial_draw else "list"
        mesa_spec = json.dumps({**spec, "choice": choice})
        rows.append(_spawn(MESA_PYTHON, [str(HERE / "_mesa_wealth.py"), mesa_spec]))
    for row in rows:
        row["agent_steps_per_s"] = row["agents"] * row["steps"] / row["total_s"]
        row["run_agent_steps_per_s"] = row["agents"] * row["steps"] / row["run_s"]
    return rows


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f}"


def _print(rows: list[dict]) -> None:
    head = (
        f"{'engine':<16}{'build s':>8} {'run s':>8} {'total s':>8} {'agent-steps/s':>14} "
        f"{'run only':>11} {'imports MB':>11} {'peak MB':>8} {'Gini':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        name = r["side"] + (f" {r['version']}" if "version" in r else "")
        print(
            f"{name:<16}{r['build_s']:>8.2f} {r['run_s']:>8.2f} {r['total_s']:>8.2f} "
            f"{r['agent_steps_per_s']:>14,.0f} {r['run_agent_steps_per_s']:>11,.0f} "
            f"{_mb(r['base_peak_rss']):>11} {_mb(r['peak_rss']):>8} {r['gini']:>7.4f}"
        )
    print()
    mine = rows[0]
    sides = " and ".join(r["side"] for r in rows)
    print(f"total wealth conserved: {mine['agents']:,} units at the end ({sides})")
    print(
        f"pydiasca: {mine['actions']:,} spontaneous actions, {mine['messages']:,} give "
        f"messages over {mine['ticks']} ticks (tick 0 builds the agents)"
    )
    if len(rows) == 2:
        mesa = rows[1]
        draw = (
            "with the tutorial's self.random.choice(self.model.agents)"
            if mesa["choice"] == "tutorial"
            else "from a list of the agents made once"
        )
        print(f"Mesa {mesa['version']} on Python {mesa['python']}; it draws {draw}")
        print(
            f"pydiasca/Mesa speed (> 1: pydiasca faster): total "
            f"{mine['agent_steps_per_s'] / mesa['agent_steps_per_s']:.2f}, run only "
            f"{mine['run_agent_steps_per_s'] / mesa['run_agent_steps_per_s']:.2f}"
        )


def _setup(python: str) -> None:
    """Make benchmarks/.venv-mesa with ``python`` and the newest Mesa 3 that it can take."""
    subprocess.run([python, "-m", "venv", "--clear", str(MESA_VENV)], check=True)
    pip = [str(MESA_PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *MESA_REQUIREMENTS], check=True)
    show = "import mesa, platform; print(mesa.__version__, platform.python_version())"
    mesa, version = subprocess.run(
        [str(MESA_PYTHON), "-c", show], capture_output=True, text=True, check=True
    ).stdout.split()
    print(f"{MESA_VENV}: Mesa {mesa} on Python {version}")


def _revision() -> str:
    """The checkout's commit, marked when engine/ or runtime/ have local changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "runtime"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (rev or "unknown") + (" (engine/runtime modified)" if dirty else "")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Boltzmann wealth on pydiasca against Mesa 3: times, memory and Gini."
    )
    p.add_argument("--agents", type=int, default=100_000, help="number of agents (10^5)")
    p.add_argument("--steps", type=int, default=100, help="number of steps (100)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2,000 agents, 20 steps (the smoke test)")
    p.add_argument("--no-peer", action="store_true", help="run the pydiasca side only")
    p.add_argument(
        "--every-step", action="store_true", help="pydiasca agents act every step, broke or not"
    )
    p.add_argument(
        "--tutorial-draw",
        action="store_true",
        help="Mesa draws as its tutorial does, O(N) per draw: small runs only",
    )
    p.add_argument(
        "--setup",
        nargs="?",
        const=sys.executable,
        metavar="PYTHON",
        help="make benchmarks/.venv-mesa with PYTHON (default: this one) and exit",
    )
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        print(json.dumps(run_pydiasca(json.loads(args.worker))))
        return 0
    if args.setup:
        _setup(args.setup)
        return 0
    if args.quick:
        args.agents, args.steps = 2_000, 20
    if args.agents < 1 or args.steps < 1:
        raise SystemExit("--agents and --steps must be >= 1")
    peer = not args.no_peer
    if peer and not MESA_PYTHON.exists():
        print(f"no Mesa venv at {MESA_VENV}: make it with `python benchmarks/wealth.py --setup`")
        peer = False
    print(
        f"pydiasca Boltzmann wealth benchmark, {time.strftime('%Y-%m-%d %H:%M')}: "
        f"{args.agents:,} agents, {args.steps} steps, seed {args.seed}"
    )
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs (one used), "
        f"{platform.platform()}; pydiasca revision {_revision()}"
    )
    form = "every agent every step" if args.every_step else "an agent acts while it has wealth"
    print(f"pydiasca form: {form}; build + run = total; each side in a fresh process")
    print("agent-steps/s = agents * steps / total s (run only: / run s); MB: ru_maxrss of the")
    print("process after its imports, and at the end")
    print()
    rows = _measure(args, peer)
    _print(rows)
    if args.json:
        out = {"cpus": os.cpu_count(), "revision": _revision(), "results": rows}
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
