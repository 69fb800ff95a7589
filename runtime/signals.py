"""How a run takes SIGINT and SIGTERM over: a clean stop at the end of the tick."""

from __future__ import annotations

import logging
import signal

from engine import Kernel

_log = logging.getLogger("pydiasca")


class RunSignals:
    """SIGINT and SIGTERM while a run is set up, runs, writes and draws its results.

    Every signal asks the kernel to stop at the end of the current tick (or of
    tick 0, before the run starts); results are then written in full, with
    status ``interrupted``, and plotting stops at the next figure. Nothing ever
    raises ``KeyboardInterrupt`` in the middle of writing a file, however many
    signals come.
    """

    def __init__(self, kernel: Kernel, root: bool) -> None:
        self._kernel, self._root, self._count = kernel, root, 0
        self._previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def _stop(self, signum: int, frame: object) -> None:
        self._count += 1
        if self._count == 1 and self._root:
            _log.warning("signal %d: stopping at the end of tick %d", signum, self._kernel.tick)
        self._kernel.interrupt()

    def received(self) -> bool:
        return self._count > 0

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


__all__ = ["RunSignals"]
