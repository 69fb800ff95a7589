"""Heat diffusion: a dense plate updated by an explicit 5-point stencil, and heat sources.

The plate's temperature ``T`` evolves as

    T'[i, j] = T[i, j] + alpha * (T[i-1, j] + T[i+1, j] + T[i, j-1] + T[i, j+1] - 4 T[i, j])

(stable for alpha <= 1/4), with fixed walls (``wall`` degrees outside the plate)
or periodic edges. Sources are actors: each adds ``power`` degrees per tick to
a square of cells, or, with a ``target``, acts as a thermostat that heats only
while the watched cell under it is colder than the target.
"""

from __future__ import annotations

import numpy as np

from engine import Actor, DensePopulation
from engine.dense.backends import cell_kernel


@cell_kernel
def diffuse(src, dst, i, j, y, x, tick, tk, alpha):
    """One explicit step of the heat equation at cell (i, j) of the local block (halo 1)."""
    (t,) = src
    c = t[i, j]
    dst[0][i, j] = c + alpha * (t[i - 1, j] + t[i + 1, j] + t[i, j - 1] + t[i, j + 1] - 4.0 * c)


def diffuse_numpy(t: np.ndarray, alpha: float) -> np.ndarray:
    """The same step in plain vectorised NumPy, on a padded array: the interior's next state."""
    c = t[1:-1, 1:-1]
    return c + alpha * (t[:-2, 1:-1] + t[2:, 1:-1] + t[1:-1, :-2] + t[1:-1, 2:] - 4.0 * c)


class HeatPlate(DensePopulation):
    """A rows x columns plate of temperatures, diffusing every tick."""

    fields = {"T": np.float64}
    units = {"T": "°C"}
    stencil = "von_neumann"
    kernel = diffuse

    def __init__(
        self,
        rows: int,
        columns: int,
        alpha: float = 0.2,
        boundary: str = "fixed",
        wall: float = 0.0,
        initial: float = 0.0,
        regions: list | tuple = (1, 1),
        block: list | tuple | None = None,
    ) -> None:
        if not 0 < alpha <= 0.25:
            raise ValueError(f"alpha must be in (0, 0.25] for a stable explicit step; got {alpha}")
        self.shape = (rows, columns)
        self.alpha = float(alpha)
        self.boundary = boundary
        self.fill = {"T": float(wall)}
        self.initial = float(initial)
        self.regions = tuple(regions)
        self.block = None if block is None else tuple(block)

    def initialize(self, local) -> None:
        local.T[...] = self.initial

    def kernel_args(self) -> tuple:
        return (self.alpha,)


class HeatSource(Actor):
    """Adds ``power`` degrees per tick to a ``size`` x ``size`` square at (row, column).

    With ``target``, it is a thermostat: it watches the cell (row, column) and
    heats only while that cell was colder than ``target`` at the end of the
    previous tick. ``period`` spaces its actions; ``start``/``stop`` bound them.
    """

    def __init__(
        self,
        row: int,
        column: int,
        power: float = 1.0,
        size: int = 1,
        plate: str = "plate",
        period: int = 1,
        start: int = 0,
        stop: int | None = None,
        target: float | None = None,
    ) -> None:
        if size < 1 or period < 1:
            raise ValueError("size and period must be >= 1")
        self.plate = plate
        self.row, self.column, self.size = row, column, size
        self.power = float(power)
        self.period, self.start, self.stop = period, start, stop
        self.target = target
        self.watching_since: int | None = None
        self.injected = 0.0

    def on_first_diasca(self) -> None:
        if self.target is not None:
            self.population(self.plate).watch("T", (self.row, self.column))
            self.watching_since = self.tick
        if self.start <= 0:
            self.act_spontaneous()
        else:
            self.add_spontaneous_tick(self.start)

    def act_spontaneous(self) -> None:
        plate = self.population(self.plate)
        heat = True
        if self.target is not None and self.tick > self.watching_since:
            heat = plate.value("T", (self.row, self.column)) < self.target
        if heat:
            box = (
                slice(self.row, self.row + self.size),
                slice(self.column, self.column + self.size),
            )
            plate.post_add("T", box, self.power)
            self.injected += self.power * self.size * self.size
        self.record("heating", self.power if heat else 0.0)
        nxt = self.tick + self.period
        if self.stop is None or nxt < self.stop:
            self.add_spontaneous_tick(nxt)
