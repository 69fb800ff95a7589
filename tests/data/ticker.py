"""Actors that record every tick, for the recovery tests: a run long enough to kill.

``Ticker`` records ``value`` = AAI * 1000 + tick at every tick, so every row can
be checked; ``pause_s`` slows each tick down so that a test can act mid-run.
"""

from __future__ import annotations

import time

from engine import Actor


class Ticker(Actor):
    def __init__(self, pause_s: float = 0.0) -> None:
        self.pause_s = pause_s

    def on_first_diasca(self) -> None:
        self.add_spontaneous_tick(1)

    def act_spontaneous(self) -> None:
        self.record("value", self.aai * 1000.0 + self.tick)
        if self.pause_s:
            time.sleep(self.pause_s)
        self.add_spontaneous_tick(self.tick + 1)


class Quiet(Actor):
    """Acts for a few ticks and records nothing: a run without probes."""

    def on_first_diasca(self) -> None:
        self.add_spontaneous_tick(1)

    def act_spontaneous(self) -> None:
        if self.tick < 5:
            self.add_spontaneous_tick(self.tick + 1)
