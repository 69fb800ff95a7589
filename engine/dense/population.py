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

Each mechanism is a unit with its own state, wired together by ``_attach``:
``declaration`` (the checked class attributes), ``halo`` (halos or ghosts),
``posts`` (step 2), ``strips`` (step 4 on grids), ``aggregates`` (steps 1 and
5, and what actors read), ``views`` (``Local`` and an actor's
``PopulationView``). The population itself owns the double buffer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SimulationError
from . import backends, rng
from .aggregates import _Aggregates
from .declaration import _Declaration
from .halo import _Ghosts, _GridHalo
from .partition import Layout, choose_process_grid
from .posts import POST, _Posts
from .strips import _Strips
from .views import Aggregate, Local, PopulationView

if TYPE_CHECKING:
    from ..actor import Actor
    from ..kernel import Kernel


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
    - ``params``: {name: small 1-D array} replicated on every rank, postable; once
      the population joins a run, ``self.params`` (and ``self.param(name)``) are
      the live arrays that actors' posts change;
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
        # Populations without a constructor get their scenario arguments as attributes
        # (so the scenario loader checks argument names only against a constructor
        # of the class's own, as for actors).
        for name, value in kwargs.items():
            setattr(self, name, value)

    # --- what a model overrides --------------------------------------------
    def initialize(self, local: Local) -> None:
        """Fill this rank's block (``local.fields``) with the initial state."""

    def kernel_args(self) -> tuple:
        """Extra arguments of the kernel after (src, dst, tick, key, block[, csr])."""
        return tuple(self.params.values())

    def param(self, name: str) -> np.ndarray:
        """A parameter array as actors' posts have left it (the live array, not a copy).

        ``self.params`` is the same live mapping once the population has joined
        a run; before that it is the declaration.
        """
        live = self._posts.params
        if name not in live:
            known = ", ".join(live) or "none"
            raise SimulationError(
                f"population {self._name!r} has no parameter {name!r}; its parameters: {known}"
            )
        return live[name]

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
    def backend(self) -> str:
        """Where this rank's block runs: "cpu", "threads" or "cuda" (the default resolved)."""
        return self._backend

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
        return self._decl.region_count

    def region_box(self, region: int) -> tuple[slice, ...]:
        """Global cells of ``region``: (rows, columns) slices, or (agents,) for 1-D."""
        return self._aggregates.region_box(region)

    def view(self, actor: Actor) -> PopulationView:
        return PopulationView(self, actor)

    # --- joining a kernel ----------------------------------------------------
    def _attach(
        self,
        kernel: Kernel,
        index: int,
        name: str,
        process_grid: Iterable[int] | None,
        backend: str | None = None,
    ) -> None:
        """Check the declaration, lay the population out over the ranks, wire its units."""
        self._k = kernel
        self._index = index
        self._name = name
        self._key = rng.population_key(kernel.seed, index)
        self._decl = decl = _Declaration(self, type(self).edges is not DensePopulation.edges)
        self._backend = _choose_backend(decl, backend)
        self._device: Any = None  # the cuda backend's fields, from the first update on
        transport = kernel.transport
        self._layout = lay = _layout(decl, name, transport.size, transport.rank, process_grid)
        if decl.network:  # a collective: every rank fetches its ghosts' owners
            self._halo = _Ghosts(decl, lay, transport, self.edges, name)
        else:
            self._halo = _GridHalo(decl, lay, transport)
        self._allocate()
        self._local = Local(self)
        self._aggregates = _Aggregates(decl, lay, name, transport)
        self._strips = _Strips(decl, lay, self._aggregates)
        if decl.cell:
            self._cell_plan = backends._aggregation_plan(
                decl.names, decl.dtypes, self._aggregates.cols
            )
            (ly, lx), (hy, hx), (by, bx) = lay.local_shape, lay.halo, lay.block
            y0, _, x0, _ = lay.tile
            self._cell_geo = np.array([y0, x0, ly, lx], np.int64)
            self._cell_shape = (hy, hx, by, bx)
        self._posts = _Posts(decl, lay, name, kernel)
        self.params = self._posts.params  # from now on, the live arrays that posts change
        self.initialize(self._local)

    def _allocate(self) -> None:
        """The double buffer: padded by the halo (grids) or followed by the ghosts (networks)."""
        decl = self._decl
        py, px = self._layout.padded_shape
        px += self._halo.ghosts
        self._cur: dict[str, np.ndarray] = {}
        self._nxt: dict[str, np.ndarray] = {}
        for n in decl.names:
            a = np.full((py, px), decl.fill.get(n, 0), dtype=decl.dtypes[n])
            self._cur[n] = a
            self._nxt[n] = a if n in decl.static else a.copy()
        # The kernel's views: 1-D populations get 1-D arrays.
        flat = decl.ndim == 1
        self._src = tuple(self._cur[n][0] if flat else self._cur[n] for n in decl.names)
        self._dst = tuple(self._nxt[n][0] if flat else self._nxt[n] for n in decl.names)

    # --- the update ----------------------------------------------------------------
    def _update(self, tick: int) -> None:
        """One tick of this rank's block; every rank calls it at the same ticks.

        Every rank takes part in every collective, even after a failure of its
        own, so that a failing rank reports instead of leaving the others waiting.
        """
        aggs = self._aggregates
        if aggs.pending is None:  # the initial state is what actors see during tick 0
            aggs.gather_initial(self._cur)
        if self._backend == "cuda" and self._device is None:
            from ._cuda import DeviceFields

            self._device = DeviceFields(self)  # the fields move to the GPU for good
        dev = self._device
        aggs.publish()  # 1
        failure: BaseException | None = None
        posts, watched = self._posts.exchange()  # 2
        keys, new_keys = aggs.watch(watched)
        self._watched_now = keys
        new_vals = np.empty(0)
        try:  # the newly watched cells before the posts: tick t-1
            if dev is None:
                new_vals = aggs.watched_values(new_keys, self._cur)
            elif new_keys.size:
                new_vals = dev.values(aggs.watched_plan(new_keys))
            self._posts.apply(posts, self._cur, dev)
        except Exception as exc:  # keep taking part in the collectives below
            failure = exc
        if dev is None:  # 3
            self._halo.exchange(self._cur)
        else:
            dev.exchange(self._halo)
        parts = latest = None
        if failure is None:
            try:
                parts = self._run_kernel(tick, self.kernel_args())  # 4
                if dev is not None:
                    parts, latest = parts
            except Exception as exc:
                failure = exc
        got, bad = aggs.gather(
            self._nxt, failure is not None, keys, new_keys, new_vals, parts, latest
        )
        if failure is not None:  # 5
            raise failure
        if bad:
            raise SimulationError(
                f"population {self._name!r}: the update failed on rank(s) "
                f"{', '.join(map(str, bad))}"
            )
        total, byreg = aggs.settle(got, keys)
        if self._decl.record and self._k.transport.rank == 0:
            aggs.record(self._k.probes, tick, total, byreg)
        self._cur, self._nxt = self._nxt, self._cur  # 6
        self._src, self._dst = self._dst, self._src
        if dev is not None:
            dev.swap()

    def _run_kernel(self, tick: int, args: tuple) -> np.ndarray | None:
        """Run the kernel (by strips on grids); returns the block partials when it took them."""
        if self._decl.network:
            indptr, indices = self._halo.csr
            geometry = self._strips.geometry()
            self._kernel(self._src, self._dst, tick, self._key, geometry, indptr, indices, *args)
            return None
        if self._device is not None:
            tk = np.uint64(rng.tick_key(self._key, tick))
            self._device.update(self._decl.kernel, tick, tk, args, self._cell_shape)
            aggs = self._aggregates
            plan = aggs.watched_plan(self._watched_now)
            return self._device.reduce(aggs.cols, aggs.width, aggs.nlocal_blocks, plan)
        if self._decl.cell:
            loop = self._decl.kernel.loop(
                self._backend, self._cell_plan, len(args), self._cell_shape
            )
            parts = self._aggregates.new_partials()
            tk = np.uint64(rng.tick_key(self._key, tick))
            loop(self._src, self._dst, np.int64(tick), tk, self._cell_geo, parts, args)
            return parts
        return self._strips.run(self._cur, self._nxt, tick, self._key, args)

    # --- for benchmarks and tests: the declaration as the kernel sees it -------------
    @property
    def _names(self) -> list[str]:
        return self._decl.names

    @property
    def _dtypes(self) -> dict[str, np.dtype]:
        return self._decl.dtypes

    @property
    def _kernel(self) -> Any:
        return self._decl.kernel

    def _geometry(self, start: int = 0) -> tuple:
        return self._strips.geometry(start)


def _choose_backend(decl: _Declaration, backend: str | None) -> str:
    """The backend asked for, or the default; only cell kernels run on threads or cuda."""
    if backend is None:
        return backends.default_backend(backends._ranks_per_node()) if decl.cell else "cpu"
    backends._check_backend(backend)
    if backend == "cuda":
        problem = backends._cuda_problem()
        if problem:
            raise ValueError(problem)
    if backend != "cpu" and not decl.cell:
        raise ValueError(
            f"population {decl.cls}: backend {backend!r} needs a cell kernel "
            f"(engine.dense.backends.cell_kernel); this kernel runs on cpu only"
        )
    return backend


def _layout(
    decl: _Declaration, name: str, size: int, rank: int, process_grid: Iterable[int] | None
) -> Layout:
    """This rank's tile: 1-D populations and networks are cut along their agents only."""
    gshape, block = decl.gshape, decl.block
    nblocks = (-(-gshape[0] // block[0]), -(-gshape[1] // block[1]))
    if decl.ndim == 1 or decl.network:
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
    h = decl.halo_width
    halo = (0, h) if decl.ndim == 1 else (h, h)
    lay = Layout(gshape, block, pgrid, rank, halo, decl.periodic)
    lay.check()
    ry, rx = decl.regions
    if ry > nblocks[0] or rx > nblocks[1]:
        raise ValueError(
            f"population {name!r}: {ry} x {rx} regions need at least as many "
            f"aggregation blocks ({nblocks[0]} x {nblocks[1]})"
        )
    return lay


__all__ = ["Aggregate", "DensePopulation", "Local", "POST", "PopulationView"]
