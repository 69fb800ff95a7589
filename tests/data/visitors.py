"""A newcomer's mistake and its fix, for ``pydiasca check`` and the shared-state warning.

Each ``Guest`` keeps the list of guests it has seen and records its length at
every tick. ``Guest`` gets that list from a mutable default argument, so every
guest of one process shares a single list: on 1 rank all guests see each
other, on 2 ranks each rank's guests see only their own, and results depend on
the layout. ``Host`` does the same the right way, with a list of its own.
"""

from __future__ import annotations

from engine import Actor


class Guest(Actor):
    def __init__(self, seen=[]) -> None:  # noqa: B006 (the mistake under test)
        self.seen = seen

    def on_first_diasca(self) -> None:
        self.add_spontaneous_tick(1)

    def act_spontaneous(self) -> None:
        self.seen.append(self.aai)
        self.record("seen", len(self.seen))
        self.add_spontaneous_tick(self.tick + 1)


class Host(Guest):
    def __init__(self, seen=None) -> None:  # the fix: a list of its own per actor
        self.seen = [] if seen is None else seen
