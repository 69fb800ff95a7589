"""How a rank waits for its peers: spin, then yield its core, then nap.

A rank waiting on MPI requests polls them. Polling flat out answers fastest
when every rank has a core of its own, but where ranks share cores it steals
the time of the very rank it waits for; sleeping between polls gives way, but
a sleep lasts at least tens of microseconds, and a run waits twice per diasca.
So a wait spins a few polls, then yields the core between polls (a rank that
shares it runs at once; an idle core comes straight back), and only a wait
that lasts milliseconds (a slow peer, a stalled job) naps between polls.
"""

from __future__ import annotations

import os
import time

_SPINS = 64  # polls before giving way
_YIELD_S = 0.002  # then yield the core between polls for this long
_NAP_S = 1e-4  # then sleep this long between polls
_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))


class Backoff:
    """One wait's pacing: call ``pause`` after every poll that found nothing."""

    __slots__ = ("_polls", "_since")

    def __init__(self) -> None:
        self._polls = 0
        self._since = 0.0

    def reset(self) -> None:
        """Progress was made: wait afresh."""
        self._polls = 0
        self._since = 0.0

    def pause(self) -> None:
        self._polls += 1
        if self._polls <= _SPINS:
            return
        now = time.perf_counter()
        if not self._since:
            self._since = now
        if now - self._since < _YIELD_S:
            _yield()
        else:
            time.sleep(_NAP_S)


__all__ = ["Backoff"]
