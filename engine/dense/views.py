"""What models see of a dense population: its local block, and an actor's view of it.

:class:`Local` is the population's own side (``initialize``, ``kernel_args``):
this rank's writable block. :class:`PopulationView` is an actor's side: the
previous tick's aggregates and watched cells, and posts that the next update
applies. :class:`Aggregate` is what ``PopulationView.aggregate`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import rng
from .partition import region_of_cells

if TYPE_CHECKING:
    from ..actor import Actor
    from .population import DensePopulation


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
        decl, lay = pop._decl, pop._layout
        y0, y1, x0, x1 = lay.tile
        hy, hx = lay.halo
        self._pop = pop
        self.ndim = decl.ndim
        self.gshape = decl.shape
        if self.ndim == 1:
            self.origin = (x0,)
            self.shape = (x1 - x0,)
        else:
            self.origin = (y0, x0)
            self.shape = (y1 - y0, x1 - x0)
        self._inner = (slice(hy, hy + y1 - y0), slice(hx, hx + x1 - x0))
        (ry, rx), (by, bx) = decl.regions, lay.block
        # Region row of every *global* row, region column of every global column:
        # kernels index them by global position, which strips and tiles never change.
        self.region_rows = region_of_cells(decl.gshape[0], by, ry)
        self.region_cols = region_of_cells(decl.gshape[1], bx, rx)

    @property
    def fields(self) -> dict[str, np.ndarray]:
        """The interior of every field in the current state (the last update's result)."""
        pop, inner = self._pop, self._inner
        views = {n: pop._cur[n][inner] for n in pop._decl.names}
        return {n: v[0] for n, v in views.items()} if self.ndim == 1 else views

    def __getattr__(self, name: str) -> np.ndarray:
        pop = self.__dict__.get("_pop")
        if pop is not None and name in pop._decl.dtypes:
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
        return rng.uniform_cells(self._pop.key, -1, idx.ravel(), draw).reshape(idx.shape)

    def region(self) -> np.ndarray:
        """Region number of every local cell, shape ``shape``."""
        rx = self._pop._decl.regions[1]
        cols = self.region_cols[self.origin[-1] : self.origin[-1] + self.shape[-1]]
        if self.ndim == 1:
            return cols.copy()
        rows = self.region_rows[self.origin[0] : self.origin[0] + self.shape[0]]
        return rows[:, None] * rx + cols[None, :]


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
        return self._pop._decl.shape

    @property
    def region_count(self) -> int:
        return self._pop.region_count

    def region_box(self, region: int) -> tuple[slice, ...]:
        return self._pop.region_box(region)

    def aggregate(self, field: str, region: int | None = None) -> Aggregate:
        """Sum, min, max and count of ``field`` as at the end of the previous tick."""
        return self._pop._aggregates.aggregate(field, region)

    def counts(self, field: str, region: int | None = None) -> np.ndarray:
        """Cells per value 0..k-1 of a categorical field, as at the end of the previous tick."""
        return self._pop._aggregates.counts(field, region)

    def value(self, field: str, where: Any) -> float | int:
        """One watched cell as at the end of the previous tick."""
        pop = self._pop
        return pop._aggregates.value(field, pop._posts.cell_key(field, where), where)

    def watch(self, field: str, where: Any) -> None:
        """Make one cell readable with ``value`` from the next tick on."""
        self._pop._posts.watch(self._actor, field, where)

    def unwatch(self, field: str, where: Any) -> None:
        """End this actor's watch of one cell (an actor that moves unwatches where it was).

        From the next tick on the cell is no longer gathered at every update,
        unless another actor still watches it.
        """
        self._pop._posts.watch(self._actor, field, where, watching=False)

    def post_set(self, name: str, where: Any, value: float) -> None:
        """Set cells (a cell, a flat index or a box of slices) or parameter entries."""
        self._pop._posts.set(self._actor, name, where, value)

    def post_add(self, name: str, where: Any, value: float) -> None:
        """Add to cells or parameter entries; applied by the next update, in canonical order."""
        self._pop._posts.add(self._actor, name, where, value)

    def param(self, name: str) -> np.ndarray:
        """A copy of a parameter array, as the last update used it."""
        return self._pop._posts.params[name].copy()


__all__ = ["Aggregate", "Local", "PopulationView"]
