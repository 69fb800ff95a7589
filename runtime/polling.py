"""How a rank waits for its peers: spin, then yield its core, then nap.

A rank waiting on MPI requests polls them. Polling flat out answers fastest
when every rank has a core of its own, but where ranks share cores it steals
the time of the very rank it waits for; sleeping between polls gives way, but
a sleep lasts at least tens of microseconds, and a run waits twice per diasca.
So a wait spins a few polls, then yields the core between polls (a rank that
shares it runs at once; an idle core comes straight back), and only a wait
that lasts milliseconds (a slow peer, a stalled job) naps between polls.

Every wait has a deadline (``time.monotonic()`` seconds): a peer that went
silent (stopped, hung in native code, on a dead node) must end the job with a
message naming it, never leave the others waiting forever. ``Backoff`` takes
the deadline, so no wait can be written without one; a wait that runs out
raises ``Silence``, whose text is the message for the user.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

_SPINS = 64  # polls before giving way
_YIELD_S = 0.002  # then yield the core between polls for this long
_NAP_S = 1e-4  # then sleep this long between polls
_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))


class Silence(Exception):
    """A wait ran past its deadline: a peer went silent. str() is the user's message."""


class Backoff:
    """One wait's pacing: call ``pause`` after every poll that found nothing."""

    __slots__ = ("_polls", "_since", "deadline")

    def __init__(self, deadline: float) -> None:
        self._polls = 0
        self._since = 0.0
        self.deadline = deadline  # time.monotonic() past which the wait gives up

    def reset(self) -> None:
        """Progress was made: wait afresh."""
        self._polls = 0
        self._since = 0.0

    def pause(self) -> bool:
        """Give way for a moment; False once the deadline has passed (stop waiting)."""
        self._polls += 1
        if self._polls <= _SPINS:
            return True
        now = time.perf_counter()
        if not self._since:
            self._since = now
        if now - self._since < _YIELD_S:
            _yield()
        else:
            time.sleep(_NAP_S)
        return time.monotonic() <= self.deadline


def wait_until(ready: Callable[[], bool], deadline: float, silence: str) -> None:
    """Poll ``ready`` until it holds; raise ``Silence(silence)`` once ``deadline`` passes."""
    backoff = Backoff(deadline)
    while not ready():
        if not backoff.pause():
            if ready():
                return
            raise Silence(silence)


__all__ = ["Backoff", "Silence", "wait_until"]
