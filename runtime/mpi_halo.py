"""Dense-population traffic over MPI: halo exchange and allgather of NumPy buffers.

``MpiTransport.halo_exchange`` and ``allgather_arrays`` delegate here. Both move
raw bytes of contiguous NumPy arrays (``MPI.BYTE``): no pickles. The halo
exchange is one non-blocking round (``Irecv``/``Isend``); its tags sit above
``TAG_BASE``, clear of the message exchange and the consensus, which probe only
for their own tags. The allgather is ``Iallgather`` + ``Iallgatherv``.

Waiting polls (``runtime.polling``) instead of blocking in MPI: a blocked MPI
rank spins, and where ranks share cores (or hyperthreads) the spinning rank
slows down the one it waits for. A wait that passes its deadline raises
``Silence``: a neighbour went silent.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from .polling import wait_until

TAG_BASE = 1000


def wait(requests: list, deadline: float, what: str) -> None:
    """Complete ``requests`` by ``deadline``, polling at the pace of ``runtime.polling``."""
    silence = f"watchdog: {what} did not complete in time: a rank went silent; stopping the run"
    wait_until(lambda: MPI.Request.Testall(requests), deadline, silence)


def _bytes(buf: np.ndarray) -> list:
    if not buf.flags.c_contiguous:
        raise ValueError("halo buffers must be C-contiguous")
    return [buf, MPI.BYTE]


def halo_exchange(
    comm: MPI.Comm,
    sends: list[tuple[int, int, np.ndarray]],
    recvs: list[tuple[int, int, np.ndarray]],
    deadline: float,
) -> None:
    """Fill every (rank, tag, buffer) of ``recvs`` from the matching send of that rank.

    Sends to this rank itself (a periodic wrap onto the same tile) are copied
    directly; the rest travel in one round of non-blocking point-to-point calls.
    """
    me = comm.Get_rank()
    requests = []
    own = {}
    for peer, tag, buf in recvs:
        if peer != me:
            requests.append(comm.Irecv(_bytes(buf), peer, TAG_BASE + tag))
    for peer, tag, buf in sends:
        if peer == me:
            own[tag] = buf
        else:
            requests.append(comm.Isend(_bytes(buf), peer, TAG_BASE + tag))
    for peer, tag, buf in recvs:
        if peer == me:
            np.copyto(buf.reshape(-1), own[tag].reshape(-1))
    wait(requests, deadline, f"a halo exchange of rank {me}")


def allgather_arrays(comm: MPI.Comm, array: np.ndarray, deadline: float) -> list[np.ndarray]:
    """Every rank's 1-D ``array`` (any length, the same dtype on every rank), in rank order."""
    a = np.ascontiguousarray(array).reshape(-1)
    size = comm.Get_size()
    counts = np.empty(size, dtype=np.int64)
    mine = np.array([a.nbytes], dtype=np.int64)
    what = f"an allgather of rank {comm.Get_rank()}"
    wait([comm.Iallgather([mine, MPI.INT64_T], [counts, MPI.INT64_T])], deadline, what)
    displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.empty(int(counts.sum()), dtype=np.uint8)
    send = [a.view(np.uint8), MPI.BYTE]
    wait(
        [comm.Iallgatherv(send, [out, counts.tolist(), displs.tolist(), MPI.BYTE])], deadline, what
    )
    return [out[d : d + c].view(a.dtype) for d, c in zip(displs, counts, strict=True)]
