#!/usr/bin/env python
"""What one operation costs inside a run: a plan, a message, a draw, a record, a build.

Each figure is the difference between two minimal models run on
``engine.Kernel`` (10,000 actors, 300 ticks, the best of three runs, tick 0
excluded): actors that only act and plan the next tick, and actors that also
do the one operation once per action. docs/tutorial.md ("Writing fast models")
quotes these figures; they vary with the machine and its load, so compare
operations with each other rather than across machines.

    python benchmarks/costs.py
    python benchmarks/costs.py --actors 100000 --ticks 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Actor, Kernel, MemorySink, ProbeStore  # noqa: E402


class Plans(Actor):
    """Acts at every tick and plans the next one: the baseline."""

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        self.schedule_in(1)


class Sends(Plans):
    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        self.send(self.aai, "ping")

    def ping(self, sender: int) -> None:
        pass


class SendsOne(Plans):
    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        self.send(self.aai, "ping", 7)

    def ping(self, sender: int, value: int) -> None:
        pass


class SendsThree(Plans):
    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        self.send(self.aai, "ping", 7, 8, 9)

    def ping(self, sender: int, a: int, b: int, c: int) -> None:
        pass


class Draws(Plans):
    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        self.random.random()


class DrawsIntegers(Plans):
    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        self.random.integers(0, 1000)


class Records(Plans):
    def act_spontaneous(self) -> None:
        self.schedule_in(1)
        self.record("x", 1.0)


class Two(Actor):
    def __init__(self, a: int, b: float) -> None:
        self.a = a
        self.b = b


OPERATIONS = [
    ("a message (send and delivery), no argument", Sends),
    ("a message with one argument", SendsOne),
    ("a message with three arguments", SendsThree),
    ("self.random.random()", Draws),
    ("self.random.integers(0, 1000)", DrawsIntegers),
    ('self.record("x", 1.0)', Records),
]


def per_action(cls: type[Actor], actors: int, ticks: int) -> float:
    """Seconds per spontaneous action, tick 0 excluded, the best of three runs."""
    best = float("inf")
    for _ in range(3):
        kernel = Kernel(stop_tick=ticks, probes=ProbeStore(MemorySink()))
        kernel.add_actors(cls, actors)
        stats = kernel.run()
        best = min(best, (stats.wall_s - stats.setup_s) / (actors * (ticks - 1)))
    return best


def build_cost(actors: int) -> float:
    kernel = Kernel(stop_tick=1, probes=ProbeStore(MemorySink()))
    kernel.add_actors(Two, actors, None, a=1, b=2.0)
    start = time.perf_counter()
    kernel.run()
    return (time.perf_counter() - start) / actors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    base = per_action(Plans, args.actors, args.ticks)
    print(f"{args.actors:,} actors, {args.ticks} ticks; ns per operation")
    print(f"{'a spontaneous action that plans the next tick':<48} {base * 1e9:>7,.0f}")
    for name, cls in OPERATIONS:
        extra = per_action(cls, args.actors, args.ticks) - base
        print(f"{name:<48} {extra * 1e9:>7,.0f}")
    build = build_cost(20 * args.actors) * 1e9
    print(f"{'building an actor with two attributes':<48} {build:>7,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
