"""The collectives the runtime uses around a run, with or without MPI.

``Comm`` wraps an mpi4py communicator, or nothing: a plain process is a world
of one rank, where every collective returns at once and mpi4py is never
imported. Set-up, results and plots all go through it, so a single-process run
and a multi-rank run take the same code path. (The per-diasca traffic of a run
is the transport's: see ``runtime.mpi_transport``.)

Every collective here is called by every rank, in the same order; the root is
rank 0. None blocks in MPI: each starts a non-blocking collective and polls it
(``runtime.polling``) until ``timeout_s`` has passed, then raises ``Silence``,
so that a rank that went silent ends the job instead of hanging it. Python
objects travel as pickles in two rounds, their sizes then their bytes (which
is what mpi4py's own object collectives do); ``bcast_object`` also serves the
transport's consensus.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from typing import Any

import numpy as np

from .polling import wait_until

_OPS = ("sum", "max", "min")
# How long a rank waits for the others in a collective around the run, until the
# runner sets it from the scenario (10 x [deployment] watchdog_s, at least this).
DEFAULT_TIMEOUT_S = 600.0


class Comm:
    """Rank, size and collectives over ``mpi_comm`` (None: this process alone)."""

    def __init__(self, mpi_comm: Any = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.mpi = mpi_comm
        self.rank = mpi_comm.Get_rank() if mpi_comm is not None else 0
        self.size = mpi_comm.Get_size() if mpi_comm is not None else 1
        self.timeout_s = timeout_s

    def _complete(self, request: Any, what: str) -> None:
        """Wait for ``request`` of collective ``what``, at most ``timeout_s``."""
        wait_until(request.Test, time.monotonic() + self.timeout_s, self._silence(what))

    def _silence(self, what: str) -> str:
        return (
            f"watchdog: rank {self.rank} waited {self.timeout_s:g} s for the other ranks in "
            f"{what}; a rank went silent (stopped, hung, or its node failed); stopping the job"
        )

    @property
    def library(self) -> str:
        """The MPI library's name and version, as results metadata records it."""
        if self.mpi is None:
            return "none (single process)"
        from mpi4py import MPI

        return MPI.Get_library_version().replace("\x00", "").splitlines()[0].strip()

    # --- Python objects (pickled) ---------------------------------------------------
    def bcast(self, obj: Any) -> Any:
        """The root's ``obj``, on every rank."""
        if self.mpi is None:
            return obj
        deadline = time.monotonic() + self.timeout_s
        return bcast_object(self.mpi, obj, deadline, self._silence("a broadcast from rank 0"))

    def gather(self, obj: Any) -> list | None:
        """Every rank's ``obj`` in rank order at the root; None elsewhere."""
        if self.mpi is None:
            return [obj]
        from mpi4py import MPI

        data, root = bytearray(_dumps(obj)), self.rank == 0
        sizes = np.zeros(self.size, dtype=np.int64)
        mine = np.array([len(data)], dtype=np.int64)
        what = "a gather to rank 0"
        self._complete(self.mpi.Igather([mine, MPI.INT64_T], [sizes, MPI.INT64_T], 0), what)
        out, displs = _receive_buffer(sizes)
        recv = [out, (sizes.tolist(), displs.tolist()), MPI.BYTE] if root else None
        self._complete(self.mpi.Igatherv([data, MPI.BYTE], recv, 0), what)
        return _unpickle(out, sizes, displs) if root else None

    def allgather(self, obj: Any) -> list:
        """Every rank's ``obj`` in rank order, on every rank."""
        if self.mpi is None:
            return [obj]
        from mpi4py import MPI

        data = bytearray(_dumps(obj))
        sizes = np.zeros(self.size, dtype=np.int64)
        mine = np.array([len(data)], dtype=np.int64)
        what = "an allgather"
        self._complete(self.mpi.Iallgather([mine, MPI.INT64_T], [sizes, MPI.INT64_T]), what)
        out, displs = _receive_buffer(sizes)
        recv = [out, (sizes.tolist(), displs.tolist()), MPI.BYTE]
        self._complete(self.mpi.Iallgatherv([data, MPI.BYTE], recv), what)
        return _unpickle(out, sizes, displs)

    # --- NumPy buffers (no pickles) ---------------------------------------------------
    def allreduce(self, arr: np.ndarray, op: str) -> np.ndarray:
        """Element-wise ``op`` ("sum", "max" or "min") of every rank's ``arr``, everywhere."""
        if self.mpi is None:
            return arr
        out = np.empty_like(arr)
        self._complete(self.mpi.Iallreduce(arr, out, op=_mpi_op(op)), f"an allreduce ({op})")
        return out

    def reduce(self, arr: np.ndarray, op: str) -> np.ndarray | None:
        """Like ``allreduce``, at the root only (None elsewhere)."""
        if self.mpi is None:
            return arr
        out = np.empty_like(arr) if self.rank == 0 else None
        self._complete(self.mpi.Ireduce(arr, out, op=_mpi_op(op), root=0), f"a reduce ({op})")
        return out

    def alltoallv(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Send ``parts[r]`` (1-D, int64 or float64) to rank r; return what each rank sent here."""
        if self.mpi is None:
            return parts
        from mpi4py import MPI

        dtype = parts[0].dtype
        mpi_type = MPI.INT64_T if dtype == np.int64 else MPI.DOUBLE
        counts = np.array([p.shape[0] for p in parts], dtype=np.int64)
        rcounts = np.zeros_like(counts)
        what = "an all-to-all exchange"
        self._complete(self.mpi.Ialltoall([counts, MPI.INT64_T], [rcounts, MPI.INT64_T]), what)
        sdispl = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rdispl = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
        send = np.concatenate(parts) if parts else np.empty(0, dtype)
        recv = np.empty(int(rcounts.sum()), dtype=dtype)
        request = self.mpi.Ialltoallv(
            [send, (counts.tolist(), sdispl.tolist()), mpi_type],
            [recv, (rcounts.tolist(), rdispl.tolist()), mpi_type],
        )
        self._complete(request, what)
        return [recv[d : d + c] for d, c in zip(rdispl, rcounts, strict=True)]

    # --- control ------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.mpi is not None:
            self._complete(self.mpi.Ibarrier(), "a barrier")

    def abort(self, code: int) -> None:
        """End every rank now: a rank that cannot go on must not leave the others waiting.

        The reason is printed before; the MPI library's own line after it is not shown.
        """
        if self.mpi is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            # mpiexec forwards a rank's output from a pipe, and an abort may kill it before it
            # has read the reason: give it a moment (less than the 0.25 s by which the ranks'
            # watchdogs are staggered, so that one rank only names a silent parent).
            time.sleep(0.1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            self.mpi.Abort(code)


def bcast_object(mpi_comm: Any, obj: Any, deadline: float, silence: str) -> Any:
    """Rank 0's ``obj`` on every rank of ``mpi_comm``; ``Silence(silence)`` past ``deadline``."""
    from mpi4py import MPI

    root = mpi_comm.Get_rank() == 0
    data = bytearray(_dumps(obj)) if root else bytearray()
    size = np.array([len(data)], dtype=np.int64)
    wait_until(mpi_comm.Ibcast([size, MPI.INT64_T], 0).Test, deadline, silence)
    if not root:
        data = bytearray(int(size[0]))
    wait_until(mpi_comm.Ibcast([data, MPI.BYTE], 0).Test, deadline, silence)
    return obj if root else pickle.loads(data)


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _receive_buffer(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    displs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return np.empty(int(sizes.sum()), dtype=np.uint8), displs


def _unpickle(out: np.ndarray, sizes: np.ndarray, displs: np.ndarray) -> list:
    return [pickle.loads(out[d : d + n]) for d, n in zip(displs, sizes, strict=True)]


def _mpi_op(op: str) -> Any:
    from mpi4py import MPI

    if op not in _OPS:
        raise ValueError(f"unknown reduction {op!r}; use one of {', '.join(_OPS)}")
    return {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


__all__ = ["Comm", "bcast_object"]
