"""Actors that misbehave on cue, for the fault tests (tests/test_faults.py).

Every actor acts at every tick, records it, and messages the next actor, which
round-robin placement puts on another rank. At tick ``at``, actor ``culprit``
does ``what``:

- ``"exit"`` / ``"interrupt"``: calls ``sys.exit()`` / raises ``KeyboardInterrupt``
  in its message handler;
- ``"lambda"`` / ``"generator"`` / ``"deep"``: sends an argument that cannot be
  pickled (a 100,000-deep list exceeds the recursion limit);
- ``"pid"``: writes its process id to ``pid_dir/<aai>`` so that a test can
  signal its rank, then naps ``nap`` seconds every tick so that the run lasts.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from engine import Actor


def _deep(levels: int) -> list:
    nested: list = []
    for _ in range(levels):
        nested = [nested]
    return nested


class Faulty(Actor):
    def __init__(self, what: str, culprit: int = 3, at: int = 3, pid_dir: str = "") -> None:
        self.what, self.culprit, self.at, self.pid_dir = what, culprit, at, pid_dir

    def on_first_diasca(self) -> None:
        self.add_spontaneous_tick(1)

    def act_spontaneous(self) -> None:
        self.record("alive", self.tick)
        after = self.aai % 4 + 1
        if self.tick >= self.at and self.what == "pid":
            if self.tick == self.at:
                Path(self.pid_dir, str(self.aai)).write_text(str(os.getpid()))
            time.sleep(0.01)
        if self.aai == self.culprit and self.tick == self.at:
            if self.what == "lambda":
                self.send(after, "hello", lambda: 1)
            elif self.what == "generator":
                self.send(after, "hello", (i for i in range(3)))
            elif self.what == "deep":
                self.send(after, "hello", _deep(100_000))
        self.send(after, "hello", self.tick)
        self.add_spontaneous_tick(self.tick + 1)

    def hello(self, sender: int, value: object) -> None:
        if self.aai == self.culprit and self.tick == self.at:
            if self.what == "exit":
                sys.exit()
            if self.what == "interrupt":
                raise KeyboardInterrupt
