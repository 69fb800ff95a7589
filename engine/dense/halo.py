"""What a rank needs of its neighbours before the kernel runs: grid halos or ghost agents.

A grid tile is padded by the halo width; :class:`_GridHalo` fills the padding
from the (up to eight) neighbouring tiles. A network has no geometry:
:class:`_Ghosts` appends the remote neighbours of local agents after the local
agents and renumbers the neighbour lists to point there. Both plan once, when
the population joins a kernel, and exchange once per tick with one
``transport.halo_exchange`` of preallocated buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .partition import DIRECTIONS, Layout, direction_tag

if TYPE_CHECKING:
    from ..transport import Transport
    from .declaration import _Declaration


class _GridHalo:
    """A grid's halo strips: (peer, tag, buffer, field, slices) to send and to receive."""

    __slots__ = ("_transport", "_sends", "_recvs")
    ghosts = 0  # a grid appends no agents
    csr = None

    def __init__(self, decl: _Declaration, layout: Layout, transport: Transport) -> None:
        self._transport = transport
        self._sends: list[tuple[int, int, np.ndarray, str, tuple]] = []
        self._recvs: list[tuple[int, int, np.ndarray, str, tuple]] = []
        hy, hx = layout.halo
        if not (hy or hx):
            return
        for fi, n in enumerate(decl.names):
            if n not in decl.halo_names:
                continue
            dt = decl.dtypes[n]
            for dy, dx in DIRECTIONS:
                if (dy and not hy) or (dx and not hx):
                    continue
                peer = layout.neighbour(dy, dx)
                if peer is None:
                    continue
                out = layout.strip(dy, dx, halo=False)
                into = layout.strip(dy, dx, halo=True)
                shape = (out[0].stop - out[0].start, out[1].stop - out[1].start)
                self._sends.append(
                    (peer, 9 * fi + direction_tag(dy, dx), np.empty(shape, dt), n, out)
                )
                self._recvs.append(
                    (peer, 9 * fi + direction_tag(-dy, -dx), np.empty(shape, dt), n, into)
                )

    def exchange(self, cur: dict[str, np.ndarray]) -> None:
        """Fill the halos of the current buffers ``cur`` from the neighbouring tiles."""
        if not self._sends:
            return
        for _, _, buf, n, sl in self._sends:
            np.copyto(buf, cur[n][sl])
        self.exchange_buffers()
        for _, _, buf, n, sl in self._recvs:
            cur[n][sl] = buf

    def exchange_buffers(self) -> None:
        """Send the filled send buffers, fill the receive buffers (the cuda backend packs them)."""
        self._transport.halo_exchange(
            [(p, t, b) for p, t, b, _, _ in self._sends],
            [(p, t, b) for p, t, b, _, _ in self._recvs],
        )


class _Ghosts:
    """A network's ghost agents: the remote neighbours of local agents, fetched once per tick.

    ``ghosts`` agents follow the local ones in every buffer, sorted by global
    number (hence by owner); ``csr`` is the local neighbour lists over that
    numbering, what the kernel gets.
    """

    __slots__ = ("_transport", "_fields", "ghosts", "csr", "_send", "_recv")

    def __init__(
        self,
        decl: _Declaration,
        layout: Layout,
        transport: Transport,
        edges: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
        name: str,
    ) -> None:
        self._transport = transport
        self._fields = [(fi, n) for fi, n in enumerate(decl.names) if n in decl.halo_names]
        _, _, lo, hi = layout.tile
        indptr, indices = edges(lo, hi)
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        n = hi - lo
        if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != indices.size:
            raise ValueError(
                f"population {name!r}: edges({lo}, {hi}) must give indptr of "
                f"length {n + 1} starting at 0 and ending at len(indices)"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= decl.cells):
            raise ValueError(f"population {name!r}: neighbour index out of range")
        remote = np.unique(indices[(indices < lo) | (indices >= hi)])
        self.ghosts = remote.size
        local = np.where(
            (indices >= lo) & (indices < hi), indices - lo, n + np.searchsorted(remote, indices)
        )
        self.csr = (indptr, local.astype(np.int64))
        requests = transport.allgather_arrays(remote)
        owners = layout.owners(np.zeros_like(remote), remote)
        me = layout.rank
        # What I receive: from each owner, the run of my ghosts it holds (sorted by owner).
        self._recv = []
        for peer in np.unique(owners):
            sel = np.flatnonzero(owners == peer)
            self._recv.append((int(peer), n + int(sel[0]), n + int(sel[-1]) + 1))
        # What I send: to each rank, my agents it asked for, in its (sorted) order.
        self._send = []
        for peer, wanted in enumerate(requests):
            if peer == me or wanted.size == 0:
                continue
            mine = wanted[(wanted >= lo) & (wanted < hi)]
            if mine.size:
                self._send.append((peer, (mine - lo).astype(np.int64)))

    def exchange(self, cur: dict[str, np.ndarray]) -> None:
        """Fetch the ghosts' current values into ``cur``, after the local agents."""
        if not (self._send or self._recv):
            return
        sends, recvs = [], []
        for fi, n in self._fields:
            row = cur[n][0]
            for peer, idx in self._send:
                sends.append((peer, fi, row[idx]))
            for peer, a, b in self._recv:
                recvs.append((peer, fi, row[a:b]))
        self._transport.halo_exchange(sends, recvs)


__all__: list[str] = []  # a unit of DensePopulation, wired by population.py; nothing public
