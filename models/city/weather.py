"""The weather: Sim-Diasca's grid of Lorenz cells, as one dense population.

Each cell holds a Lorenz state (x, y, z), read as temperature, pressure and
hygrometry (sigma 10, rho 28, beta 8/3). As in Sim-Diasca, a cell activates
every 5 ticks, first at tick ``(index mod 5) + 1`` (``index`` its row-major
number), which spreads the load; an activation runs 50 RK4 steps of 0.005.
After its activation a cell sends its state to its 4 von Neumann neighbours (no
wrap at the borders), and a cell receiving a neighbour's state adds a twelfth of
it to its own. Here the neighbour's state arrives one tick after the activation
(Sim-Diasca: one diasca), and it is the state the neighbour ended that tick with.

Rain: a cell rains while its hygrometry z is above ``RAIN_Z``. Roads watch the
cell under their middle and drive slower in the rain (``models.city.roads``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine import DensePopulation

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
STEPS, DT = 50, 0.005
PERIOD = 5  # ticks between two activations of a cell
RAIN_Z = 35.0  # hygrometry above which a cell rains


@njit(cache=True)
def _rk4_many(a, b, c, m, steps, dt, sigma, rho, beta):
    """``steps`` RK4 steps of Lorenz for cells ``0 .. m-1`` at once.

    Step by step over all the cells, so that the inner loop vectorises; each
    cell's arithmetic is the same as alone, so the results do not depend on
    which cells are batched together.
    """
    half, sixth = 0.5 * dt, dt / 6.0
    for _ in range(steps):
        for k in range(m):
            x, y, z = a[k], b[k], c[k]
            k1a, k1b, k1c = sigma * (y - x), x * (rho - z) - y, x * y - beta * z
            a2, b2, c2 = x + half * k1a, y + half * k1b, z + half * k1c
            k2a, k2b, k2c = sigma * (b2 - a2), a2 * (rho - c2) - b2, a2 * b2 - beta * c2
            a3, b3, c3 = x + half * k2a, y + half * k2b, z + half * k2c
            k3a, k3b, k3c = sigma * (b3 - a3), a3 * (rho - c3) - b3, a3 * b3 - beta * c3
            a4, b4, c4 = x + dt * k3a, y + dt * k3b, z + dt * k3c
            k4a, k4b, k4c = sigma * (b4 - a4), a4 * (rho - c4) - b4, a4 * b4 - beta * c4
            a[k] = x + sixth * (k1a + 2.0 * k2a + 2.0 * k3a + k4a)
            b[k] = y + sixth * (k1b + 2.0 * k2b + 2.0 * k3b + k4b)
            c[k] = z + sixth * (k1c + 2.0 * k2c + 2.0 * k3c + k4c)


@njit(cache=True)
def lorenz_update(src, dst, tick, key, block, steps, dt, sigma, rho, beta, period):
    """One tick of the weather: this tick's cells activate, last tick's are heard."""
    x, y, z = src
    ox, oy, oz = dst
    h, y0, x0, gny, gnx = block[0], block[1], block[2], block[3], block[4]
    ny = ox.shape[0] - 2 * h
    nx = ox.shape[1] - 2 * h
    now = tick % period
    before = (tick - 1) % period
    where = np.empty(nx, np.int64)
    ba, bb, bc = np.empty(nx), np.empty(nx), np.empty(nx)
    for i in range(h, h + ny):
        gi = y0 + i - h
        m = 0
        for j in range(h, h + nx):
            ox[i, j], oy[i, j], oz[i, j] = x[i, j], y[i, j], z[i, j]
            if tick >= 1 and ((gi * gnx + x0 + j - h) % period + 1) % period == now:
                where[m], ba[m], bb[m], bc[m] = j, x[i, j], y[i, j], z[i, j]
                m += 1
        _rk4_many(ba, bb, bc, m, steps, dt, sigma, rho, beta)
        for k in range(m):
            j = where[k]
            ox[i, j], oy[i, j], oz[i, j] = ba[k], bb[k], bc[k]
        if tick < 2:
            continue
        for j in range(h, h + nx):
            gj = x0 + j - h
            a, b, c = ox[i, j], oy[i, j], oz[i, j]
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                ni, nj = gi + di, gj + dj
                if 0 <= ni < gny and 0 <= nj < gnx:
                    if ((ni * gnx + nj) % period + 1) % period == before:
                        a += x[i + di, j + dj] / 12.0
                        b += y[i + di, j + dj] / 12.0
                        c += z[i + di, j + dj] / 12.0
            ox[i, j], oy[i, j], oz[i, j] = a, b, c


def initial_state(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cell's first state, from its (row, column) alone: near the attractor, varied."""
    x = -10.0 + 20.0 * np.modf(cols * 0.6180339887)[0]
    y = -10.0 + 20.0 * np.modf(rows * 0.4142135624)[0]
    z = 15.0 + ((rows + cols) % 20).astype(np.float64)
    return x, y, z


class Weather(DensePopulation):
    """``rows`` x ``columns`` Lorenz cells of 2,400 m (the city's weather grid)."""

    fields = {"x": np.float64, "y": np.float64, "z": np.float64}
    stencil = "von_neumann"
    kernel = staticmethod(lorenz_update)
    aggregate = ("z",)

    def __init__(self, rows: int, columns: int, cell_m: float = 2400.0) -> None:
        if rows < 1 or columns < 1:
            raise ValueError(f"the weather grid needs rows, columns >= 1; got {rows} x {columns}")
        self.shape = (rows, columns)
        self.boundary = "fixed"
        self.fill = {"x": 0.0, "y": 0.0, "z": 0.0}
        self.cell_m = float(cell_m)

    def initialize(self, local) -> None:
        rows, cols = local.coords()
        local.x[...], local.y[...], local.z[...] = initial_state(rows, cols)

    def kernel_args(self) -> tuple:
        return (STEPS, DT, SIGMA, RHO, BETA, PERIOD)
