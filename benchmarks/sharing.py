#!/usr/bin/env python
"""What the shared-state check costs when the initial actors are built.

After building the initial actors, the kernel looks for a mutable object held
by two of them (``engine.sharing``). This script builds N small actors on one
``engine.Kernel`` (tick 0 only: construction and ``on_first_diasca``), with the
check and without, and prints the build time of each and the difference. Two
kinds of actor: ``Plain`` (numbers only, like the wealth and PHOLD agents) and
``Listed`` (a list and a dict of its own each, the worst common case). Beyond
``engine.sharing.FULL_SCAN`` actors the kernel checks a sample; "the scan of
every actor" is what checking them all would cost.

    python benchmarks/sharing.py                 # 10^6 actors of each kind
    python benchmarks/sharing.py --actors 100000
"""

from __future__ import annotations

import argparse
import gc
import time

from engine import Actor, Kernel
from engine.sharing import shared_state


class Plain(Actor):
    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.wealth = 1


class Listed(Actor):
    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.seen: list[int] = []
        self.counts: dict[int, int] = {}


def build(cls: type, actors: int, check: bool) -> tuple[float, Kernel]:
    kernel = Kernel(stop_tick=1, check_sharing=check)
    kernel.add_actors(cls, actors)
    gc.collect()
    t0 = time.perf_counter()
    kernel.run()
    return time.perf_counter() - t0, kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for cls in (Plain, Listed):
        best = {True: float("inf"), False: float("inf")}
        scan = float("inf")
        for _ in range(args.repeat):
            for check in (False, True):
                seconds, kernel = build(cls, args.actors, check)
                best[check] = min(best[check], seconds)
                if check:
                    actors = [kernel.actor(a) for a in range(1, args.actors + 1)]
                    t0 = time.perf_counter()
                    shared_state(actors)
                    scan = min(scan, time.perf_counter() - t0)
                del kernel
        extra = best[True] - best[False]
        print(
            f"{cls.__name__:<7} {args.actors:,} actors: build {best[False]:.2f} s without the "
            f"check, {best[True]:.2f} s with it ({extra:+.2f} s, {extra / best[False]:+.1%}); "
            f"the scan of every actor {scan:.2f} s"
        )


if __name__ == "__main__":
    main()
