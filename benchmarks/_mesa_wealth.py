"""The Mesa side of benchmarks/wealth.py: Mesa 3's tutorial Boltzmann wealth model.

It runs in Mesa's own virtual environment (``python benchmarks/wealth.py
--setup`` makes ``benchmarks/.venv-mesa``), where pydiasca is not installed, so
this file imports nothing from pydiasca nor from wealth.py. wealth.py runs it as

    benchmarks/.venv-mesa/bin/python benchmarks/_mesa_wealth.py '{"agents": N, ...}'

and reads the one JSON line it prints: build and run times, the peak RSS of
this process, and the final wealth as a histogram.

The model is the one of Mesa's introductory tutorial ("Creating your first
model"), no space: N agents start with wealth 1; at each step
``self.agents.shuffle_do("exchange")`` calls every agent in a fresh random
order, and an agent with wealth > 0 gives one unit to an agent drawn uniformly
from all of them (itself included, as in the tutorial). An agent mutates its
peer directly, so money received earlier in a step can be given again in the
same step.

The draw. The tutorial writes ``self.random.choice(self.model.agents)``, but
indexing an AgentSet copies all its agents into a new list (Mesa 3.3 and 3.5
alike), so each draw costs O(N) and a step O(N^2): about 28 s per step at 10^4
agents with Mesa 3.3. Nobody would run 10^5 agents that way, so the benchmark's
form (``list``) draws from a list of the agents made once when the model is
built; no agent is ever added or removed, so the list stays right. The
tutorial's own form stays available as ``"choice": "tutorial"`` to show that
cost at small sizes.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
import warnings
from collections import Counter

import mesa


class MoneyAgent(mesa.Agent):
    """An agent with wealth; ``exchange`` gives one unit to a random agent."""

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.wealth = 1

    def exchange(self) -> None:
        if self.wealth > 0:
            other = self.random.choice(self.model.everyone)
            other.wealth += 1
            self.wealth -= 1


class TutorialMoneyAgent(MoneyAgent):
    """The tutorial's draw, word for word: O(N) per draw (see the module docstring)."""

    def exchange(self) -> None:
        if self.wealth > 0:
            other = self.random.choice(self.model.agents)
            other.wealth += 1
            self.wealth -= 1


class MoneyModel(mesa.Model):
    """N agents with wealth 1; each step activates them all in random order."""

    def __init__(self, n: int, seed: int, agent_class: type[MoneyAgent] = MoneyAgent) -> None:
        super().__init__(rng=seed)
        agent_class.create_agents(model=self, n=n)
        self.everyone = list(self.agents)  # for O(1) draws; the population never changes

    def step(self) -> None:
        self.agents.shuffle_do("exchange")


def _peak_rss() -> int:
    """ru_maxrss of this process so far, in bytes (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run(spec: dict) -> dict:
    """Build and run the model as ``spec`` says; time both, check the total wealth."""
    n, steps = spec["agents"], spec["steps"]
    agent_class = TutorialMoneyAgent if spec.get("choice") == "tutorial" else MoneyAgent
    base = _peak_rss()
    t0 = time.perf_counter()
    model = MoneyModel(n, spec["seed"], agent_class)
    t1 = time.perf_counter()
    for _ in range(steps):
        model.step()
    t2 = time.perf_counter()
    wealth = Counter(agent.wealth for agent in model.agents)
    total = sum(value * count for value, count in wealth.items())
    assert total == n, f"Mesa: total wealth {total} != {n} agents"
    return {
        **spec,
        "side": "mesa",
        "build_s": t1 - t0,
        "run_s": t2 - t1,
        "total_s": t2 - t0,
        "base_peak_rss": base,
        "peak_rss": _peak_rss(),
        "wealth": {str(value): count for value, count in sorted(wealth.items())},
        "python": platform.python_version(),
        "version": mesa.__version__,
    }


if __name__ == "__main__":
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # Mesa 3.5 on the tutorial form
    print(json.dumps(run(json.loads(sys.argv[1]))))
