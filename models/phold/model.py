"""PHOLD with ROSS's rules, on ticks.

Each logical process (LP) starts with ``start_events`` events. Processing an
event sends exactly one new event, so the event population stays constant.
With probability ``remote`` the new event goes to an LP drawn uniformly over
all of them (this one included); otherwise it comes back to this LP. It is due
``1 + floor(Exp(mean - 1))`` ticks later: a lookahead of one tick.

An event is a message. Because a message sent at (t, d) arrives at (t, d+1),
an event due at a later tick waits in its sender's ``pending`` table until the
sender's spontaneous action at that tick, which sends it. The destination
processes it at diasca 1.
"""

from __future__ import annotations

from math import floor

from engine import Actor


class LP(Actor):
    """One PHOLD logical process; LPs hold AAIs ``first .. first + n_lps - 1``."""

    def __init__(
        self,
        n_lps: int,
        start_events: int = 1,
        remote: float = 0.25,
        mean: float = 1.0,
        first: int = 1,
        record_every: int = 100,
    ) -> None:
        if not 0.0 <= remote <= 1.0:
            raise ValueError(f"remote must be within [0, 1]; got {remote}")
        if mean < 1.0:
            raise ValueError(f"mean must be >= 1 tick (the lookahead); got {mean}")
        self.n_lps = n_lps
        self.start_events = start_events
        self.remote = remote
        self.extra_mean = mean - 1.0
        self.first = first
        self.record_every = record_every
        self.processed = 0
        self.next_record = record_every
        self.pending: dict[int, list[int]] = {}  # due tick -> destination AAIs

    def on_first_diasca(self) -> None:
        for _ in range(self.start_events):
            self._emit()

    def event(self, sender: int) -> None:
        """Process one event: count it and emit its successor."""
        self.processed += 1
        self._emit()

    def act_spontaneous(self) -> None:
        tick = self.tick
        for dest in self.pending.pop(tick):
            self.send(dest, "event")
        if tick >= self.next_record:
            self.record("events", self.processed)
            self.next_record = (tick // self.record_every + 1) * self.record_every

    def _emit(self) -> None:
        rng = self.random
        if rng.random() < self.remote:
            dest = self.first + rng.integers(0, self.n_lps)
        else:
            dest = self.aai
        due = self.tick + 1
        if self.extra_mean > 0.0:
            due += floor(rng.exponential(self.extra_mean))
        batch = self.pending.get(due)
        if batch is None:
            self.pending[due] = [dest]
            self.add_spontaneous_tick(due)
        else:
            batch.append(dest)
