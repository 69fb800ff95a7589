"""Dense populations: homogeneous agents as NumPy fields, updated by one Numba kernel per tick.

A model subclasses :class:`DensePopulation`, declares its fields, its size and
its neighbourhood, and gives one ``@njit`` kernel. The kernel (see
docs/populations.md) sees the local block of every field with its halo and
writes the next state into a second buffer. Per rank and per evaluated tick,
at the start of diasca 0, :meth:`DensePopulation._update` does, in order:

1. the aggregates and watched cells of the previous update become visible to
   actors (state "as at the end of the previous tick");
2. posts of actors (set/add on cells, boxes or parameters) and new watches are
   gathered from every rank and applied in canonical order;
3. halos (grids) or ghost agents (networks) are exchanged, once;
4. the kernel runs: current buffer -> next buffer;
5. block partial aggregates and watched cells of the new state are gathered
   from every rank and combined in global block order; rank 0 records them;
6. the buffers swap.

Every step is a function of global positions only, so the results are bitwise
identical whatever the number of ranks and the process grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SimulationError
from . import _numba as nb
from . import rng
from .partition import DIRECTIONS, Layout, choose_process_grid, default_block, direction_tag
from .partition import region_of_blocks as _region_of_blocks

if TYPE_CHECKING:
    from ..actor import Actor
    from ..kernel import Kernel

_STENCILS = {
    "von_neumann": [(-1, 0), (1, 0), (0, -1), (0, 1)],
    "moore": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)],
}
_BOUNDARIES = ("periodic", "fixed")
_SET, _ADD, _WATCH = 0, 1, 2
_FIELD, _PARAM = 0, 1
# One post or watch request as it travels between ranks: plain numbers, no pickles.
POST = np.dtype(
    [
        ("tick", "<i8"),
        ("diasca", "<i8"),
        ("aai", "<i8"),
        ("seq", "<i8"),
        ("op", "<i8"),
        ("kind", "<i8"),
        ("target", "<i8"),
        ("y0", "<i8"),
        ("y1", "<i8"),
        ("x0", "<i8"),
        ("x1", "<i8"),
        ("value", "<f8"),
    ]
)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A field's aggregate over the population or a region, as at the end of a tick."""

    sum: float | int
    min: float | int
    max: float | int
    count: int  # cells (agents) aggregated

    @property
    def mean(self) -> float:
        return self.sum / self.count


class Local:
    """This rank's block of a population, for ``initialize`` and ``kernel_args``.

    ``fields[name]`` (or ``local.name``) is the writable interior of the
    current buffer: shape ``shape``, without halo. ``origin`` is the global
    position of its first cell.
    """

    def __init__(self, pop: DensePopulation) -> None:
        lay = pop._layout
        y0, y1, x0, x1 = lay.tile
        hy, hx = lay.halo
        self._pop = pop
        self.ndim = pop._ndim
        self.gshape = (pop._gshape[1],) if pop._ndim == 1 else pop._gshape
        if self.ndim == 1:
            self.origin = (x0,)
            self.shape = (x1 - x0,)
        else:
            self.origin = (y0, x0)
            self.shape = (y1 - y0, x1 - x0)
        self._inner = (slice(hy, hy + y1 - y0), slice(hx, hx + x1 - x0))
        ry, rx = pop._regions
        nby, nbx = lay.nblocks
        by, bx = lay.block
        # Region row of every *global* row, region column of every global column:
        # kernels index them by global position, which strips and tiles never change.
        self.region_rows = (np.arange(pop._gshape[0]) // by) * ry // nby
        self.region_cols = (np.arange(pop._gshape[1]) // bx) * rx // nbx

    @property
    def fields(self) -> dict[str, np.ndarray]:
        """The interior of every field in the current state (the last update's result)."""
        pop, inner = self._pop, self._inner
        views = {n: pop._cur[n][inner] for n in pop._names}
        return {n: v[0] for n, v in views.items()} if self.ndim == 1 else views

    def __getattr__(self, name: str) -> np.ndarray:
        pop = self.__dict__.get("_pop")
        if pop is not None and name in pop._dtypes:
            view = pop._cur[name][self._inner]
            return view[0] if self.ndim == 1 else view
        raise AttributeError(name)

    def coords(self) -> tuple[np.ndarray, ...]:
        """Global coordinates of the local cells, broadcastable to ``shape``."""
        if self.ndim == 1:
            return (np.arange(self.origin[0], self.origin[0] + self.shape[0]),)
        y0, x0 = self.origin
        ly, lx = self.shape
        return (np.arange(y0, y0 + ly)[:, None], np.arange(x0, x0 + lx)[None, :])

    def index(self) -> np.ndarray:
        """Global flat index (row-major) of every local cell, shape ``shape``."""
        if self.ndim == 1:
            return self.coords()[0].astype(np.int64)
        ys, xs = self.coords()
        return (ys * self.gshape[1] + xs).astype(np.int64)

    def uniform(self, draw: int = 0) -> np.ndarray:
        """Draw ``draw`` of every local cell "before tick 0" (tick -1), shape ``shape``.

        It depends on the cell's global index alone: use it for random initial states.
        """
        idx = self.index()
        return rng.uniform_cells(self._pop._key, -1, idx.ravel(), draw).reshape(idx.shape)

    def region(self) -> np.ndarray:
        """Region number of every local cell, shape ``shape``."""
        rx = self._pop._regions[1]
        cols = self.region_cols[self.origin[-1] : self.origin[-1] + self.shape[-1]]
        if self.ndim == 1:
            return cols.copy()
        rows = self.region_rows[self.origin[0] : self.origin[0] + self.shape[0]]
        return rows[:, None] * rx + cols[None, :]


class DensePopulation:
    """Base class of dense populations; see docs/populations.md.

    Declare in the subclass (class attributes, or in ``__init__``):

    - ``fields``: {name: dtype}; ``shape``: an agent count (1-D) or (rows, columns);
    - ``kernel``: the ``@njit`` update function (``kernel = staticmethod(step)``);
    - ``stencil``: None, "von_neumann", "moore" or a list of offsets (the halo
      width is the largest offset); ``boundary``: "periodic" or "fixed" (or one
      per axis), ``fill``: {field: value} outside fixed boundaries;
    - or, for networks (1-D), ``csr = (indptr, indices)`` over global agent
      numbers, or an ``edges(lo, hi)`` method giving the rows of agents lo..hi-1;
    - ``static``: fields the kernel only reads (one buffer, changed by posts);
    - ``halo_fields``: fields whose halo the kernel reads (default: the others);
    - ``categories``: {integer field: k}: count values 0..k-1 instead of sum/min/max;
    - ``aggregate``: fields aggregated (and recorded) every tick (default: all);
    - ``regions``: (Ry, Rx) (or R for 1-D) regions aggregated separately;
    - ``params``: {name: small 1-D array} replicated on every rank, postable;
    - ``record``: record the aggregates as probes every tick (default True);
      ``labels``: {categorical field: a name per value}, for the probes' labels;
      ``units``: {field: unit}, for the probes and their plots.

    ``initialize(local)`` fills the local block; ``kernel_args()`` returns the
    kernel's extra arguments (default: the ``params`` arrays, in order).
    """

    fields: dict[str, Any] = {}
    shape: int | tuple[int, ...] = 0
    kernel: Any = None
    stencil: Any = None
    boundary: str | tuple[str, str] = "periodic"
    fill: dict[str, float] = {}
    static: tuple[str, ...] = ()
    halo_fields: tuple[str, ...] | None = None
    categories: dict[str, int] = {}
    aggregate: tuple[str, ...] | None = None
    regions: int | tuple[int, ...] | None = None
    block: tuple[int, ...] | None = None
    params: dict[str, Any] = {}
    csr: tuple[Any, Any] | None = None
    record: bool = True
    labels: dict[str, tuple[str, ...]] = {}
    units: dict[str, str] = {}

    def __init__(self, **kwargs: Any) -> None:
        # Populations without a constructor get their scenario arguments as attributes.
        for name, value in kwargs.items():
            setattr(self, name, value)

    __init__.takes_any_keyword = True  # the scenario loader checks no argument names

    # --- what a model overrides --------------------------------------------
    def initialize(self, local: Local) -> None:
        """Fill this rank's block (``local.fields``) with the initial state."""

    def kernel_args(self) -> tuple:
        """Extra arguments of the kernel after (src, dst, tick, key, block[, csr])."""
        return tuple(self._params.values())

    def edges(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour lists of agents lo..hi-1: (indptr, global indices), CSR."""
        indptr, indices = self.csr
        indptr = np.asarray(indptr, dtype=np.int64)
        start, stop = indptr[lo], indptr[hi]
        return indptr[lo : hi + 1] - start, np.asarray(indices[start:stop], dtype=np.int64)

    # --- read-only facts -----------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def index(self) -> int:
        """Number of this population in its run (scenario order); part of its random key."""
        return self._index

    @property
    def local(self) -> Local:
        """This rank's block (after the population joined a kernel)."""
        return self._local

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def key(self) -> np.uint64:
        """The population's random key, from (seed, population number); what kernels get."""
        return self._key

    @property
    def region_count(self) -> int:
        return self._regions[0] * self._regions[1]

    def region_box(self, region: int) -> tuple[slice, ...]:
        """Global cells of ``region``: (rows, columns) slices, or (agents,) for 1-D."""
        ry, rx = self._regions
        if not 0 <= region < ry * rx:
            raise SimulationError(
                f"population {self._name!r} has regions 0 to {ry * rx - 1}; got {region!r}"
            )
        nby, nbx = self._layout.nblocks
        by, bx = self._layout.block
        ny, nx = self._gshape
        r, c = divmod(region, rx)
        rows = slice(min(-(-r * nby // ry) * by, ny), min(-(-(r + 1) * nby // ry) * by, ny))
        cols = slice(min(-(-c * nbx // rx) * bx, nx), min(-(-(c + 1) * nbx // rx) * bx, nx))
        return (cols,) if self._ndim == 1 else (rows, cols)

    def view(self, actor: Actor) -> PopulationView:
        return PopulationView(self, actor)

    # --- joining a kernel ----------------------------------------------------
    def _attach(
        self, kernel: Kernel, index: int, name: str, process_grid: Iterable[int] | None
    ) -> None:
        self._k = kernel
        self._index = index
        self._name = name
        self._key = rng.population_key(kernel.seed, index)
        self._check_declaration()
        transport = kernel.transport
        size, rank = transport.size, transport.rank
        gshape = self._gshape
        block = self._block()
        nblocks = (-(-gshape[0] // block[0]), -(-gshape[1] // block[1]))
        if self._ndim == 1 or self._network:
            pgrid = (1, size)
            if size > nblocks[1]:
                raise ValueError(
                    f"population {name!r}: {nblocks[1]} blocks of {block[1]} agents cannot be "
                    f"shared by {size} ranks"
                )
        elif process_grid is not None:
            pgrid = tuple(int(v) for v in process_grid)
            if len(pgrid) != 2 or pgrid[0] * pgrid[1] != size:
                raise ValueError(
                    f"process grid {list(pgrid)} does not have {size} ranks; "
                    f"give [rows, columns] whose product is the number of ranks"
                )
            if pgrid[0] > nblocks[0] or pgrid[1] > nblocks[1]:
                raise ValueError(
                    f"population {name!r}: process grid {list(pgrid)} is finer than its "
                    f"{nblocks[0]} x {nblocks[1]} aggregation blocks"
                )
        else:
            pgrid = choose_process_grid(size, nblocks, gshape)
        h = self._halo_width()
        halo = (0, h) if self._ndim == 1 else (h, h)
        self._layout = lay = Layout(gshape, block, pgrid, rank, halo, self._periodic())
        lay.check()
        ry, rx = self._regions
        if ry > nblocks[0] or rx > nblocks[1]:
            raise ValueError(
                f"population {name!r}: {ry} x {rx} regions need at least as many "
                f"aggregation blocks ({nblocks[0]} x {nblocks[1]})"
            )
        self._block_region = _region_of_blocks(nblocks, self._regions)
        self._region_cells = self._cells_per_region()
        self._owned_blocks = [lay.block_ids(r) for r in range(size)]
        self._setup_network() if self._network else None
        self._allocate()
        self._local = Local(self)
        self._plan_halos()
        self._plan_aggregates()
        self._plan_strips()
        self._posts: list[tuple] = []
        self._post_seq: dict[int, int] = {}
        self._watch_keys = np.empty(0, np.int64)  # field index * cells + flat index, sorted
        self._visible: tuple | None = None  # (total, byreg, {key: value}) of the previous tick
        self._pending: tuple | None = None
        self._updates = 0
        self.initialize(self._local)

    def _check_declaration(self) -> None:
        cls = type(self).__name__
        fields = dict(self.fields)
        if not fields:
            raise ValueError(f"population {cls} declares no fields")
        self._names = list(fields)
        self._dtypes = {n: np.dtype(d) for n, d in fields.items()}
        for n, dt in self._dtypes.items():
            if dt.kind not in "biuf":
                raise ValueError(f"population {cls}: field {n!r} has dtype {dt}; use a number")
        shape = self.shape
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ValueError(f"population {cls}: shape must be a count or (rows, columns) >= 1")
        self._ndim = len(shape)
        self._gshape = (1, shape[0]) if self._ndim == 1 else shape
        self._cells = self._gshape[0] * self._gshape[1]
        self._network = self.csr is not None or type(self).edges is not DensePopulation.edges
        if self._network and (self._ndim != 1 or self.stencil is not None):
            raise ValueError(f"population {cls}: neighbour lists need a 1-D shape and no stencil")
        kern = vars(self).get("kernel", type(self).kernel)
        if not callable(kern):
            raise ValueError(f"population {cls} declares no kernel (an @njit function)")
        self._kernel = kern
        for group in ("static", "halo_fields", "aggregate"):
            for n in getattr(self, group) or ():
                if n not in fields:
                    raise ValueError(f"population {cls}: {group} names unknown field {n!r}")
        for n, k in dict(self.categories).items():
            if n not in fields or self._dtypes[n].kind not in "biu" or int(k) < 1:
                raise ValueError(
                    f"population {cls}: categories needs integer fields and counts >= 1; "
                    f"got {n!r}: {k!r}"
                )
        self._static = set(self.static)
        if self.halo_fields is None:
            self._halo_names = [n for n in self._names if n not in self._static]
        else:
            self._halo_names = list(self.halo_fields)
        regions = (1,) * self._ndim if self.regions is None else self.regions
        regions = (int(regions),) if isinstance(regions, (int, np.integer)) else tuple(regions)
        if len(regions) != self._ndim or min(regions) < 1:
            raise ValueError(f"population {cls}: regions must be {self._ndim} number(s) >= 1")
        self._regions = (1, regions[0]) if self._ndim == 1 else (regions[0], regions[1])
        self._params = {}
        for n, v in dict(self.params).items():
            arr = np.array(v, dtype=np.float64 if np.isscalar(v) else None, ndmin=1)
            if arr.ndim != 1 or arr.dtype.kind not in "biuf":
                raise ValueError(f"population {cls}: parameter {n!r} must be a 1-D number array")
            self._params[n] = arr
        self._param_names = list(self._params)

    def _block(self) -> tuple[int, int]:
        if self.block is None:
            return default_block(self._gshape)
        b = (1, int(self.block[0])) if self._ndim == 1 else tuple(map(int, self.block))
        if len(b) != 2 or min(b) < 1:
            raise ValueError(f"population {type(self).__name__}: block must be >= 1 cells")
        return b

    def _halo_width(self) -> int:
        st = self.stencil
        if st is None or self._network:
            return 0
        if isinstance(st, str):
            if st not in _STENCILS:
                raise ValueError(
                    f"population {type(self).__name__}: unknown stencil {st!r}; "
                    f"use {', '.join(_STENCILS)} or a list of offsets"
                )
            st = _STENCILS[st] if self._ndim == 2 else [-1, 1]
        h = 0
        for off in st:
            h = max(h, *(abs(int(o)) for o in np.atleast_1d(off)))
        return h

    def _periodic(self) -> tuple[bool, bool]:
        b = self.boundary
        axes = (b, b) if isinstance(b, str) else tuple(b)
        if self._ndim == 1 and len(axes) == 1:
            axes = (axes[0], axes[0])
        if len(axes) != 2 or any(a not in _BOUNDARIES for a in axes):
            raise ValueError(
                f"population {type(self).__name__}: boundary must be periodic or fixed "
                f"(or one per axis); got {b!r}"
            )
        return (axes[0] == "periodic", axes[1] == "periodic")

    def _cells_per_region(self) -> np.ndarray:
        out = np.zeros(self.region_count, np.int64)
        for r in range(self.region_count):
            box = self.region_box(r)
            n = 1
            for s in box:
                n *= s.stop - s.start
            out[r] = n
        return out

    # --- buffers ---------------------------------------------------------------
    def _allocate(self) -> None:
        lay = self._layout
        py, px = lay.padded_shape
        if self._network:
            px += self._ghosts
        self._cur: dict[str, np.ndarray] = {}
        self._nxt: dict[str, np.ndarray] = {}
        fills = dict(self.fill)
        for n in self._names:
            dt = self._dtypes[n]
            a = np.full((py, px), fills.get(n, 0), dtype=dt)
            self._cur[n] = a
            self._nxt[n] = a if n in self._static else a.copy()
        self._tuples()

    def _tuples(self) -> None:
        """The kernel's views: 1-D populations get 1-D arrays."""
        flat = self._ndim == 1
        self._src = tuple(self._cur[n][0] if flat else self._cur[n] for n in self._names)
        self._dst = tuple(self._nxt[n][0] if flat else self._nxt[n] for n in self._names)

    # --- halos and ghosts ---------------------------------------------------------
    def _plan_halos(self) -> None:
        """Preallocated (peer, tag, buffer) lists and the slices they copy."""
        self._sends: list[tuple[int, int, np.ndarray, str, tuple]] = []
        self._recvs: list[tuple[int, int, np.ndarray, str, tuple]] = []
        if self._network:
            return
        lay = self._layout
        hy, hx = lay.halo
        if not (hy or hx):
            return
        for fi, n in enumerate(self._names):
            if n not in self._halo_names:
                continue
            dt = self._dtypes[n]
            for dy, dx in DIRECTIONS:
                if (dy and not hy) or (dx and not hx):
                    continue
                peer = lay.neighbour(dy, dx)
                if peer is None:
                    continue
                out = lay.strip(dy, dx, halo=False)
                into = lay.strip(dy, dx, halo=True)
                shape = (out[0].stop - out[0].start, out[1].stop - out[1].start)
                self._sends.append(
                    (peer, 9 * fi + direction_tag(dy, dx), np.empty(shape, dt), n, out)
                )
                self._recvs.append(
                    (peer, 9 * fi + direction_tag(-dy, -dx), np.empty(shape, dt), n, into)
                )

    def _setup_network(self) -> None:
        """Ghost agents: the remote neighbours of local agents, fetched once per tick."""
        lay = self._layout
        _, _, lo, hi = lay.tile
        indptr, indices = self.edges(lo, hi)
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        n = hi - lo
        if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != indices.size:
            raise ValueError(
                f"population {self._name!r}: edges({lo}, {hi}) must give indptr of "
                f"length {n + 1} starting at 0 and ending at len(indices)"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= self._cells):
            raise ValueError(f"population {self._name!r}: neighbour index out of range")
        remote = np.unique(indices[(indices < lo) | (indices >= hi)])
        self._ghosts = remote.size
        local = np.where(
            (indices >= lo) & (indices < hi), indices - lo, n + np.searchsorted(remote, indices)
        )
        self._csr = (indptr, local.astype(np.int64))
        transport = self._k.transport
        requests = transport.allgather_arrays(remote)
        owners = lay.owners(np.zeros_like(remote), remote)
        me = lay.rank
        # What I receive: from each owner, the run of my ghosts it holds (sorted by owner).
        self._ghost_recv = []
        for peer in np.unique(owners):
            sel = np.flatnonzero(owners == peer)
            self._ghost_recv.append((int(peer), n + int(sel[0]), n + int(sel[-1]) + 1))
        # What I send: to each rank, my agents it asked for, in its (sorted) order.
        self._ghost_send = []
        for peer, wanted in enumerate(requests):
            if peer == me or wanted.size == 0:
                continue
            mine = wanted[(wanted >= lo) & (wanted < hi)]
            if mine.size:
                self._ghost_send.append((peer, (mine - lo).astype(np.int64)))

    def _exchange_halos(self) -> None:
        transport = self._k.transport
        if self._network:
            if not (self._ghost_send or self._ghost_recv):
                return
            sends, recvs = [], []
            for fi, n in enumerate(self._names):
                if n not in self._halo_names:
                    continue
                row = self._cur[n][0]
                for peer, idx in self._ghost_send:
                    sends.append((peer, fi, row[idx]))
                for peer, a, b in self._ghost_recv:
                    recvs.append((peer, fi, row[a:b]))
            transport.halo_exchange(sends, recvs)
            return
        if not self._sends:
            return
        cur = self._cur
        for _, _, buf, n, sl in self._sends:
            np.copyto(buf, cur[n][sl])
        transport.halo_exchange(
            [(p, t, b) for p, t, b, _, _ in self._sends],
            [(p, t, b) for p, t, b, _, _ in self._recvs],
        )
        for _, _, buf, n, sl in self._recvs:
            cur[n][sl] = buf

    # --- aggregates ------------------------------------------------------------
    def _plan_aggregates(self) -> None:
        names = self._names if self.aggregate is None else list(self.aggregate)
        cats = dict(self.categories)
        self._agg_cols: dict[str, tuple[int, int]] = {}  # field -> (first column, k or 0)
        kinds: list[int] = []
        for n in names:
            k = int(cats.get(n, 0))
            self._agg_cols[n] = (len(kinds), k)
            kinds += [nb.SUM] * k if k else [nb.SUM, nb.MIN, nb.MAX]
        self._kinds = np.array(kinds, dtype=np.int64)
        self._width = len(kinds)
        lay = self._layout
        self._nlocal_blocks = self._owned_blocks[lay.rank].size
        self._acc = {}
        for n in names:
            acc_dt = np.float64 if self._dtypes[n].kind == "f" else np.int64
            self._acc[n] = np.zeros(lay.block[1], acc_dt)
        if self.record and self.region_count > 1:
            for n, (_, k) in self._agg_cols.items():
                if self.region_count * max(k, 1) > 1024:
                    raise ValueError(
                        f"population {self._name!r}: {self.region_count} regions x {max(k, 1)} "
                        f"values of {n!r} do not fit a probe (at most 1024)"
                    )

    def _partials(self, bufs: dict[str, np.ndarray]) -> np.ndarray:
        lay = self._layout
        (ly, lx), (hy, hx), (by, bx) = lay.local_shape, lay.halo, lay.block
        out = np.zeros((self._nlocal_blocks, self._width), np.float64)
        for n, (col, k) in self._agg_cols.items():
            a = bufs[n]
            if k:
                nb.block_counts(a, hy, hx, ly, lx, by, bx, k, out, col)
            else:
                nb.block_stats(a, hy, hx, ly, lx, by, bx, self._acc[n], out, col)
        return out

    def _watched_values(self, keys: np.ndarray, bufs: dict[str, np.ndarray]) -> np.ndarray:
        """Values of the watched cells (``keys``) that lie in this tile, in key order."""
        lay = self._layout
        fidx, flat = np.divmod(keys, self._cells)
        ys, xs = np.divmod(flat, self._gshape[1])
        mine = lay.owners(ys, xs) == lay.rank
        out = np.empty(int(mine.sum()), np.float64)
        y0, _, x0, _ = lay.tile
        hy, hx = lay.halo
        for fi in np.unique(fidx[mine]):
            sel = mine & (fidx == fi)
            vals = np.empty(int(sel.sum()), np.float64)
            nb.gather_values(bufs[self._names[fi]], hy, hx, y0, x0, ys[sel], xs[sel], vals)
            out[np.flatnonzero(sel[mine])] = vals
        return out

    def _owners_of(self, keys: np.ndarray) -> np.ndarray:
        ys, xs = np.divmod(keys % self._cells, self._gshape[1])
        return self._layout.owners(ys, xs)

    def _gather(self, bufs, failed: bool, keys, new_keys, new_vals, parts=None) -> tuple:
        """One allgather: status, block partials, watched cells; combined identically everywhere.

        Each rank sends [failed?, its block partials, the new state of the watched
        cells ``keys`` it holds, the previous state of the newly watched ones].
        """
        lay = self._layout
        size, width = lay.size, self._width
        own_keys, own_new = self._owners_of(keys), self._owners_of(new_keys)
        n_keys = np.bincount(own_keys, minlength=size)
        n_new = np.bincount(own_new, minlength=size)
        if failed:
            parts = np.zeros((self._nlocal_blocks, width))
            latest = np.zeros(int(n_keys[lay.rank]))
            new_vals = np.zeros(int(n_new[lay.rank]))
        else:
            parts = self._partials(bufs) if parts is None else parts
            latest = self._watched_values(keys, bufs)
        msg = np.concatenate(([1.0 if failed else 0.0], parts.ravel(), latest, new_vals))
        got = self._k.transport.allgather_arrays(msg)
        bad = [r for r, m in enumerate(got) if m[0] != 0.0]
        if bad:
            return None, bad
        partials = np.empty((lay.nblocks[0] * lay.nblocks[1], width), np.float64)
        latest_vals = np.empty(keys.size)
        new_values = np.empty(new_keys.size)
        for r, m in enumerate(got):
            ids = self._owned_blocks[r]
            o = 1 + ids.size * width
            partials[ids] = m[1:o].reshape(ids.size, width)
            latest_vals[own_keys == r] = m[o : o + n_keys[r]]
            o += n_keys[r]
            new_values[own_new == r] = m[o : o + n_new[r]]
        total, byreg = nb.combine(partials, self._block_region, self.region_count, self._kinds)
        latest_map = dict(zip(keys.tolist(), latest_vals.tolist(), strict=True))
        new_map = dict(zip(new_keys.tolist(), new_values.tolist(), strict=True))
        return (total, byreg, latest_map, new_map), []

    # --- posts -----------------------------------------------------------------
    def _post(self, actor: Actor, op: int, name: str, where: Any, value: Any) -> None:
        k = self._k
        if name in self._dtypes:
            kind, target = _FIELD, self._names.index(name)
            box = self._box(where, name)
        elif name in self._params and op != _WATCH:
            kind, target = _PARAM, self._param_names.index(name)
            box = self._param_box(where, name)
        else:
            known = ", ".join(self._names + (self._param_names if op != _WATCH else []))
            raise SimulationError(
                f"actor {actor.aai} ({type(actor).__name__}): population {self._name!r} has no "
                f"{'field' if op == _WATCH else 'field or parameter'} {name!r}; it has {known}"
            )
        if op != _WATCH:
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise SimulationError(
                    f"actor {actor.aai} ({type(actor).__name__}): a post to {name!r} of "
                    f"population {self._name!r} needs a number; got {value!r}"
                )
            if not math.isfinite(float(value)):
                raise SimulationError(
                    f"actor {actor.aai} ({type(actor).__name__}): a post to {name!r} of "
                    f"population {self._name!r} needs a finite number; got {value!r}"
                )
        aai = actor.aai
        seq = self._post_seq.get(aai, 0)
        self._post_seq[aai] = seq + 1
        self._posts.append((k.tick, k.diasca, aai, seq, op, kind, target, *box, float(value)))

    def _box(self, where: Any, name: str) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of a cell, a flat index or a box of slices; refuses the rest."""
        ny, nx = self._gshape
        if self._ndim == 1:
            idx = where[0] if isinstance(where, tuple) and len(where) == 1 else where
            if isinstance(idx, tuple):
                self._bad_where(where, name)
            return (0, 1, *self._range(idx, nx, name))
        if isinstance(where, tuple):
            if len(where) != 2:
                self._bad_where(where, name)
            return (*self._range(where[0], ny, name), *self._range(where[1], nx, name))
        if isinstance(where, slice):
            self._bad_where(where, name)
        y, x = divmod(_as_index(where, self._cells, name, self._name), nx)
        return (y, y + 1, x, x + 1)

    def _bad_where(self, where: Any, name: str) -> None:
        what = "an agent number or a slice" if self._ndim == 1 else "(row, column), a flat index"
        raise SimulationError(
            f"population {self._name!r}: {where!r} does not name cells of {name!r}; "
            f"give {what} or a box of slices"
        )

    def _range(self, i: Any, n: int, name: str) -> tuple[int, int]:
        if isinstance(i, slice):
            lo, hi, step = i.indices(n)
            if step != 1 or hi <= lo:
                raise SimulationError(
                    f"population {self._name!r}: slice {i!r} of {name!r} must be a "
                    f"non-empty range with step 1"
                )
            return lo, hi
        j = _as_index(i, n, name, self._name)
        return j, j + 1

    def _param_box(self, where: Any, name: str) -> tuple[int, int, int, int]:
        n = self._params[name].size
        if isinstance(where, slice):
            lo, hi, step = where.indices(n)
            if step != 1 or hi <= lo:
                raise SimulationError(
                    f"population {self._name!r}: slice {where!r} of parameter {name!r} must "
                    f"be a non-empty range with step 1"
                )
            return (0, 1, lo, hi)
        j = _as_index(where, n, name, self._name)
        return (0, 1, j, j + 1)

    def _exchange_posts(self, tick: int) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's posts in canonical order, and the newly watched keys (sorted)."""
        mine = np.array(self._posts, dtype=POST) if self._posts else np.empty(0, POST)
        self._posts, self._post_seq = [], {}
        got = self._k.transport.allgather_arrays(mine.view(np.uint8))
        posts = np.concatenate([g.view(POST) for g in got])
        if posts.size > 1:
            posts = posts[np.lexsort((posts["seq"], posts["aai"], posts["diasca"], posts["tick"]))]
        watch = posts[posts["op"] == _WATCH]
        new = np.empty(0, np.int64)
        if watch.size:
            keys = watch["target"] * self._cells + watch["y0"] * self._gshape[1] + watch["x0"]
            new = np.setdiff1d(np.unique(keys), self._watch_keys)
        return posts[posts["op"] != _WATCH], new

    def _apply_posts(self, posts: np.ndarray) -> None:
        lay = self._layout
        ty0, ty1, tx0, tx1 = lay.tile
        hy, hx = lay.halo
        for p in posts:
            op, kind, target = int(p["op"]), int(p["kind"]), int(p["target"])
            value = float(p["value"])
            if kind == _PARAM:
                arr = self._params[self._param_names[target]]
                sl = slice(int(p["x0"]), int(p["x1"]))
                cell = arr[sl]
            else:
                y0, y1 = max(int(p["y0"]), ty0), min(int(p["y1"]), ty1)
                x0, x1 = max(int(p["x0"]), tx0), min(int(p["x1"]), tx1)
                if y0 >= y1 or x0 >= x1:
                    continue
                arr = self._cur[self._names[target]]
                cell = arr[hy + y0 - ty0 : hy + y1 - ty0, hx + x0 - tx0 : hx + x1 - tx0]
            if op == _SET:
                cell[...] = np.asarray(value).astype(arr.dtype)
            elif arr.dtype.kind == "f":
                cell += arr.dtype.type(value)
            else:
                cell += np.asarray(value).astype(arr.dtype)

    # --- the update ----------------------------------------------------------------
    def _update(self, tick: int) -> None:
        """One tick of this rank's block; every rank calls it at the same ticks."""
        none = np.empty(0, np.int64)
        if self._updates == 0:  # the initial state is what actors see during tick 0
            got, bad = self._gather(self._cur, False, none, none, np.empty(0))
            if bad:
                raise SimulationError(f"population {self._name!r}: failed on rank(s) {bad}")
            self._pending = got[:3]
        self._visible = self._pending
        failure: BaseException | None = None
        posts, new_keys = self._exchange_posts(tick)
        keys = np.union1d(self._watch_keys, new_keys) if new_keys.size else self._watch_keys
        new_vals = np.empty(0)
        try:
            new_vals = self._watched_values(new_keys, self._cur)  # before the posts: tick t-1
            self._apply_posts(posts)
        except Exception as exc:  # keep taking part in the collectives below
            failure = exc
        self._exchange_halos()
        parts = None
        if failure is None:
            try:
                parts = self._run_kernel(tick, self.kernel_args())
            except Exception as exc:
                failure = exc
        got, bad = self._gather(self._nxt, failure is not None, keys, new_keys, new_vals, parts)
        if failure is not None:
            raise failure
        if bad:
            raise SimulationError(
                f"population {self._name!r}: the update failed on rank(s) "
                f"{', '.join(map(str, bad))}"
            )
        total, byreg, latest, new = got
        self._watch_keys = keys
        if new:
            self._visible = (*self._visible[:2], {**self._visible[2], **new})
        self._pending = (total, byreg, latest)
        self._updates += 1
        if self.record and self._k.transport.rank == 0:
            self._record(tick, total, byreg)
        self._cur, self._nxt = self._nxt, self._cur
        self._src, self._dst = self._dst, self._src

    def _geometry(self, start: int = 0) -> tuple:
        """The kernel's ``block``: halo, global origin (moved by ``start`` along the strips)."""
        lay = self._layout
        y0, _, x0, _ = lay.tile
        ny, nx = self._gshape
        if self._ndim == 1:
            return (lay.halo[1], x0 + start, nx)
        return (lay.halo[0], y0 + start, x0, ny, nx)

    def _plan_strips(self) -> None:
        """Cut the tile into strips of about 256 KB (of the next state) for the kernel.

        The kernel runs strip by strip, and each strip's aggregates are taken
        right after, while it is still in cache. A kernel computes each cell
        from its neighbourhood and global position only (it must, to give the
        same result on any partitioning), so strips change nothing. 2-D strips
        are runs of rows whose column accumulators carry over to the end of each
        block row; 1-D strips are runs of whole blocks.
        """
        lay = self._layout
        (ly, lx), (by, bx) = lay.local_shape, lay.block
        cell_bytes = sum(self._dtypes[n].itemsize for n in self._names)
        self._strips: list[tuple[int, int]] = []
        if self._network:
            return
        if self._ndim == 1:
            step = bx * max(1, (1 << 18) // (bx * cell_bytes))
            extent = lx
        else:
            step = max(1, min(by, (1 << 18) // (lx * cell_bytes)))
            extent = ly
        self._strips = [(s, min(s + step, extent)) for s in range(0, extent, step)]
        self._col_acc = {}
        if self._ndim == 2:
            for n, (_, k) in self._agg_cols.items():
                dt = self._dtypes[n]
                if k:
                    self._col_acc[n] = (np.zeros((k, lx), np.int64),)
                else:
                    acc_dt = np.float64 if dt.kind == "f" else np.int64
                    self._col_acc[n] = (np.zeros(lx, acc_dt), np.empty(lx, dt), np.empty(lx, dt))

    def _strip_plan(self, cur: dict, nxt: dict) -> list[tuple]:
        """Per strip: the kernel's views and block, and the aggregation calls that follow."""
        lay = self._layout
        (ly, lx), (hy, hx), (by, bx) = lay.local_shape, lay.halo, lay.block
        nbj = -(-lx // bx)
        names, cols = self._names, self._agg_cols
        plan = []
        for start, stop in self._strips:
            steps = []
            if self._ndim == 1:
                src = tuple(cur[n][0, start : stop + 2 * hx] for n in names)
                dst = tuple(nxt[n][0, start : stop + 2 * hx] for n in names)
                blocks = (start // bx, -(-stop // bx))
                for n, (col, k) in cols.items():
                    a = nxt[n][:, start : stop + 2 * hx]
                    if k:
                        steps.append(
                            (nb.block_counts, (a, 0, hx, 1, stop - start, 1, bx, k), blocks, col)
                        )
                    else:
                        extra = (a, 0, hx, 1, stop - start, 1, bx, self._acc[n])
                        steps.append((nb.block_stats, extra, blocks, col))
            else:
                src = tuple(cur[n][start : stop + 2 * hy] for n in names)
                dst = tuple(nxt[n][start : stop + 2 * hy] for n in names)
                r = start
                while r < stop:  # the strip's rows, block row by block row
                    bi = r // by
                    end_of_row = min((bi + 1) * by, ly)
                    e = min(stop, end_of_row)
                    blocks = (bi * nbj, (bi + 1) * nbj)
                    for n, (col, k) in cols.items():
                        acc = self._col_acc[n]
                        if k:
                            steps.append(
                                (
                                    nb.rows_counts,
                                    (nxt[n], hy, hx, r, e, lx, acc[0], r == bi * by),
                                    None,
                                    col,
                                )
                            )
                            if e == end_of_row:
                                steps.append((nb.finish_counts, (acc[0], lx, bx), blocks, col))
                        else:
                            steps.append(
                                (
                                    nb.rows_stats,
                                    (nxt[n], hy, hx, r, e, lx, *acc, r == bi * by),
                                    None,
                                    col,
                                )
                            )
                            if e == end_of_row:
                                steps.append((nb.finish_stats, (*acc, lx, bx), blocks, col))
                    r = e
            plan.append((src, dst, self._geometry(start), steps))
        return plan

    def _run_kernel(self, tick: int, args: tuple) -> np.ndarray | None:
        """Run the kernel (by strips on grids); returns the block partials when it took them."""
        if self._network:
            indptr, indices = self._csr
            geometry = self._geometry()
            self._kernel(self._src, self._dst, tick, self._key, geometry, indptr, indices, *args)
            return None
        plans = self.__dict__.get("_plans")
        if plans is None:  # the two orientations of the double buffer
            plans = self._plans = {
                id(self._cur): self._strip_plan(self._cur, self._nxt),
                id(self._nxt): self._strip_plan(self._nxt, self._cur),
            }
        out = np.zeros((self._nlocal_blocks, self._width), np.float64)
        kernel, key = self._kernel, self._key
        for src, dst, geometry, steps in plans[id(self._cur)]:
            kernel(src, dst, tick, key, geometry, *args)
            for fn, fargs, blocks, col in steps:
                if blocks is None:
                    fn(*fargs)
                else:
                    fn(*fargs, out[blocks[0] : blocks[1]], col)
        return out

    def _declare_probes(self) -> None:
        """Units and labels of the aggregate probes (rank 0, once)."""
        declare = self._k._probes.declare
        regions = [f"region {r}" for r in range(self.region_count)]
        for f, (_, k) in self._agg_cols.items():
            if k:
                values = [str(v) for v in dict(self.labels).get(f, range(k))]
                if len(values) != k:
                    values = [str(v) for v in range(k)]
                declare(f"{self._name}.{f}.counts", "cells", values)
                if len(regions) > 1:
                    both = [f"{r} {v}" for r in regions for v in values]
                    declare(f"{self._name}.{f}.counts_by_region", "cells", both)
                continue
            unit = self.units.get(f, "")
            for stat in ("sum", "min", "max"):
                declare(f"{self._name}.{f}.{stat}", unit)
            if len(regions) > 1:
                declare(f"{self._name}.{f}.sum_by_region", unit, regions)

    def _record(self, tick: int, total: np.ndarray, byreg: np.ndarray) -> None:
        probes = self._k._probes
        name = self._name
        regional = self.region_count > 1
        if self._updates == 1:
            self._declare_probes()
        for f, (col, k) in self._agg_cols.items():
            if k:
                probes.record(f"{name}.{f}.counts", tick, 0, total[col : col + k])
                if regional:
                    probes.record(
                        f"{name}.{f}.counts_by_region", tick, 0, byreg[:, col : col + k].ravel()
                    )
            else:
                probes.record(f"{name}.{f}.sum", tick, 0, float(total[col]))
                probes.record(f"{name}.{f}.min", tick, 0, float(total[col + 1]))
                probes.record(f"{name}.{f}.max", tick, 0, float(total[col + 2]))
                if regional:
                    probes.record(f"{name}.{f}.sum_by_region", tick, 0, byreg[:, col].copy())

    # --- what actors read ------------------------------------------------------------
    def _snapshot(self) -> tuple:
        if self._visible is None:
            raise SimulationError(
                f"population {self._name!r} has not been evaluated yet; read it from an actor"
            )
        return self._visible

    def _aggregate(self, field: str, region: int | None) -> Aggregate:
        col, k = self._field_col(field)
        if k:
            raise SimulationError(
                f"population {self._name!r}: {field!r} is counted by category; "
                f"read counts({field!r}) instead of aggregate()"
            )
        total, byreg, _ = self._snapshot()
        row, count = self._region_row(total, byreg, region)
        vals = row[col : col + 3]
        if self._dtypes[field].kind != "f":
            return Aggregate(int(vals[0]), int(vals[1]), int(vals[2]), count)
        return Aggregate(float(vals[0]), float(vals[1]), float(vals[2]), count)

    def _counts(self, field: str, region: int | None) -> np.ndarray:
        col, k = self._field_col(field)
        if not k:
            raise SimulationError(
                f"population {self._name!r}: {field!r} is not counted by category; declare "
                f"categories = {{{field!r}: k}} or read aggregate({field!r})"
            )
        total, byreg, _ = self._snapshot()
        row, _ = self._region_row(total, byreg, region)
        return row[col : col + k].astype(np.int64)

    def _field_col(self, field: str) -> tuple[int, int]:
        found = self._agg_cols.get(field)
        if found is None:
            raise SimulationError(
                f"population {self._name!r} aggregates no field {field!r}; "
                f"it aggregates {', '.join(self._agg_cols)}"
            )
        return found

    def _region_row(self, total, byreg, region) -> tuple[np.ndarray, int]:
        if region is None:
            return total, self._cells
        if type(region) is not int or not 0 <= region < self.region_count:
            raise SimulationError(
                f"population {self._name!r} has regions 0 to {self.region_count - 1}; "
                f"got {region!r}"
            )
        return byreg[region], int(self._region_cells[region])

    def _value(self, field: str, where: Any) -> float | int:
        if field not in self._dtypes:
            raise SimulationError(f"population {self._name!r} has no field {field!r}")
        y0, _, x0, _ = self._box(where, field)
        key = self._names.index(field) * self._cells + y0 * self._gshape[1] + x0
        _, _, values = self._snapshot()
        if key not in values:
            raise SimulationError(
                f"population {self._name!r}: cell {where!r} of {field!r} is not watched; "
                f"call watch({field!r}, {where!r}) at an earlier tick (e.g. in on_first_diasca)"
            )
        v = values[key]
        return v if self._dtypes[field].kind == "f" else int(v)


def _as_index(i: Any, n: int, name: str, pop: str) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise SimulationError(f"population {pop!r}: index {i!r} of {name!r} is not a whole number")
    j = int(i)
    if not 0 <= j < n:
        raise SimulationError(f"population {pop!r}: index {j} of {name!r} is outside 0..{n - 1}")
    return j


class PopulationView:
    """A population as one actor sees it: the previous tick's state, and posts."""

    __slots__ = ("_pop", "_actor")

    def __init__(self, pop: DensePopulation, actor: Actor) -> None:
        self._pop = pop
        self._actor = actor

    @property
    def name(self) -> str:
        return self._pop.name

    @property
    def shape(self) -> tuple[int, ...]:
        p = self._pop
        return (p._gshape[1],) if p._ndim == 1 else p._gshape

    @property
    def region_count(self) -> int:
        return self._pop.region_count

    def region_box(self, region: int) -> tuple[slice, ...]:
        return self._pop.region_box(region)

    def aggregate(self, field: str, region: int | None = None) -> Aggregate:
        """Sum, min, max and count of ``field`` as at the end of the previous tick."""
        return self._pop._aggregate(field, region)

    def counts(self, field: str, region: int | None = None) -> np.ndarray:
        """Cells per value 0..k-1 of a categorical field, as at the end of the previous tick."""
        return self._pop._counts(field, region)

    def value(self, field: str, where: Any) -> float | int:
        """One watched cell as at the end of the previous tick."""
        return self._pop._value(field, where)

    def watch(self, field: str, where: Any) -> None:
        """Make one cell readable with ``value`` from the next tick on."""
        pop = self._pop
        box = pop._box(where, field) if field in pop._dtypes else None
        if box is not None and (box[1] - box[0]) * (box[3] - box[2]) != 1:
            raise SimulationError(f"population {pop.name!r}: watch one cell at a time")
        pop._post(self._actor, _WATCH, field, where, 0.0)

    def post_set(self, name: str, where: Any, value: float) -> None:
        """Set cells (a cell, a flat index or a box of slices) or parameter entries."""
        self._pop._post(self._actor, _SET, name, where, value)

    def post_add(self, name: str, where: Any, value: float) -> None:
        """Add to cells or parameter entries; applied by the next update, in canonical order."""
        self._pop._post(self._actor, _ADD, name, where, value)

    def param(self, name: str) -> np.ndarray:
        """A copy of a parameter array, as the last update used it."""
        return self._pop._params[name].copy()


__all__ = ["Aggregate", "DensePopulation", "Local", "POST", "PopulationView"]
