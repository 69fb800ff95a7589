"""The collectives the runtime uses around a run, with or without MPI.

``Comm`` wraps an mpi4py communicator, or nothing: a plain process is a world
of one rank, where every collective returns at once and mpi4py is never
imported. Set-up, results and plots all go through it, so a single-process run
and a multi-rank run take the same code path. (The per-diasca traffic of a run
is the transport's: see ``runtime.mpi_transport``.)

Every collective here is called by every rank, in the same order; the root is
rank 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_OPS = ("sum", "max", "min")


class Comm:
    """Rank, size and collectives over ``mpi_comm`` (None: this process alone)."""

    def __init__(self, mpi_comm: Any = None) -> None:
        self.mpi = mpi_comm
        self.rank = mpi_comm.Get_rank() if mpi_comm is not None else 0
        self.size = mpi_comm.Get_size() if mpi_comm is not None else 1

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
        return obj if self.mpi is None else self.mpi.bcast(obj, 0)

    def gather(self, obj: Any) -> list | None:
        """Every rank's ``obj`` in rank order at the root; None elsewhere."""
        return [obj] if self.mpi is None else self.mpi.gather(obj, 0)

    def allgather(self, obj: Any) -> list:
        """Every rank's ``obj`` in rank order, on every rank."""
        return [obj] if self.mpi is None else self.mpi.allgather(obj)

    # --- NumPy buffers (no pickles) ---------------------------------------------------
    def allreduce(self, arr: np.ndarray, op: str) -> np.ndarray:
        """Element-wise ``op`` ("sum", "max" or "min") of every rank's ``arr``, everywhere."""
        if self.mpi is None:
            return arr
        out = np.empty_like(arr)
        self.mpi.Allreduce(arr, out, op=_mpi_op(op))
        return out

    def reduce(self, arr: np.ndarray, op: str) -> np.ndarray | None:
        """Like ``allreduce``, at the root only (None elsewhere)."""
        if self.mpi is None:
            return arr
        out = np.empty_like(arr) if self.rank == 0 else None
        self.mpi.Reduce(arr, out, op=_mpi_op(op), root=0)
        return out

    def alltoallv(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Send ``parts[r]`` (1-D, int64 or float64) to rank r; return what each rank sent here."""
        if self.mpi is None:
            return parts
        from mpi4py import MPI

        dtype = parts[0].dtype
        mpi_type = MPI.INT64_T if dtype == np.int64 else MPI.DOUBLE
        counts = np.array([p.shape[0] for p in parts], dtype=np.int64)
        rcounts = np.array(self.mpi.alltoall(counts.tolist()), dtype=np.int64)
        sdispl = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rdispl = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
        send = np.concatenate(parts) if parts else np.empty(0, dtype)
        recv = np.empty(int(rcounts.sum()), dtype=dtype)
        self.mpi.Alltoallv(
            [send, (counts.tolist(), sdispl.tolist()), mpi_type],
            [recv, (rcounts.tolist(), rdispl.tolist()), mpi_type],
        )
        return [recv[d : d + c] for d, c in zip(rdispl, rcounts, strict=True)]

    # --- control ------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.mpi is not None:
            self.mpi.Barrier()

    def abort(self, code: int) -> None:
        """End every rank now: a rank that cannot go on must not leave the others waiting."""
        if self.mpi is not None:
            self.mpi.Abort(code)


def _mpi_op(op: str) -> Any:
    from mpi4py import MPI

    if op not in _OPS:
        raise ValueError(f"unknown reduction {op!r}; use one of {', '.join(_OPS)}")
    return {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


__all__ = ["Comm"]
