"""An SEIR (or SIR) epidemic on a 2-D grid, coupled to health authorities and hospitals.

Each cell holds one person in state S, E, I or R. Every tick, with one random
draw per cell (draw 0 of the counter-based stream, so the partitioning cannot
change it):

- S -> E (or straight to I when ``latent`` is false) with probability
  ``1 - (1 - beta * contact[region]) ** k``, k = infected among the 8 neighbours;
- E -> I with probability ``sigma``; I -> R with probability ``gamma``;
- R -> S with probability ``omega`` (waning immunity; 0 by default).

The grid is cut into ``regions``; ``contact`` (one factor per region, a
population parameter) is what authorities lower to impose measures.

Actors, one of each per region:

- ``HealthAuthority`` reads its region's infected count (end of the previous
  tick) every tick; above ``impose_above`` (a fraction of its cells) or when a
  hospital reports pressure, it sets its region's contact factor to
  ``contact``; below ``lift_below`` and after ``min_ticks`` it lifts it again.
- ``Hospital`` estimates new cases from the rise of I + R in its region, admits
  a ``severity`` fraction of them up to ``capacity`` beds for ``stay`` ticks,
  turns the rest away, and warns its authority when ``alarm`` of its beds are full.
"""

from __future__ import annotations

import numpy as np

from engine import Actor, DensePopulation
from engine.dense import rng
from engine.dense.backends import cell_kernel

SUSCEPTIBLE, EXPOSED, INFECTED, RECOVERED = 0, 1, 2, 3
STATES = ("S", "E", "I", "R")


@cell_kernel
def seir_step(
    src, dst, i, j, y, x, tick, tk, p_infect, sigma, gamma, omega, onset, rrow, rcol, rx, nx
):
    """One tick of the epidemic at cell (i, j) (halo 1, Moore neighbourhood).

    ``p_infect[region, k]`` is the infection probability with k infected
    neighbours; ``onset`` is the state a new infection enters (E, or I for SIR);
    ``rrow``/``rcol`` give the region row and column of each global row and
    column; ``nx`` is the grid's width (the cell's random stream is its global index).
    """
    (state,) = src
    s = state[i, j]
    nxt = s
    if s == SUSCEPTIBLE:
        k = (  # int(): NumPy adds bools as bools (the CUDA simulator runs this in Python)
            int(state[i - 1, j - 1] == INFECTED)
            + (state[i - 1, j] == INFECTED)
            + (state[i - 1, j + 1] == INFECTED)
            + (state[i, j - 1] == INFECTED)
            + (state[i, j + 1] == INFECTED)
            + (state[i + 1, j - 1] == INFECTED)
            + (state[i + 1, j] == INFECTED)
            + (state[i + 1, j + 1] == INFECTED)
        )
        if k:
            u = rng.uniform(rng.cell_key(tk, y * nx + x), 0)
            if u < p_infect[rrow[y] * rx + rcol[x], k]:
                nxt = onset
    elif s == EXPOSED:
        if rng.uniform(rng.cell_key(tk, y * nx + x), 0) < sigma:
            nxt = INFECTED
    elif s == INFECTED:
        if rng.uniform(rng.cell_key(tk, y * nx + x), 0) < gamma:
            nxt = RECOVERED
    elif omega > 0.0:
        if rng.uniform(rng.cell_key(tk, y * nx + x), 0) < omega:
            nxt = SUSCEPTIBLE
    dst[0][i, j] = nxt


def infection_table(beta: float, contact: np.ndarray) -> np.ndarray:
    """p[region, k] = 1 - (1 - beta * contact[region]) ** k for k = 0..8."""
    q = 1.0 - beta * np.clip(contact, 0.0, None)
    return 1.0 - np.clip(q, 0.0, 1.0)[:, None] ** np.arange(9)[None, :]


class EpidemicGrid(DensePopulation):
    """rows x columns people, one per cell, in states S, E, I, R."""

    fields = {"state": np.uint8}
    categories = {"state": 4}
    labels = {"state": STATES}
    stencil = "moore"
    kernel = seir_step

    def __init__(
        self,
        rows: int,
        columns: int,
        beta: float = 0.1,
        sigma: float = 0.25,
        gamma: float = 0.1,
        omega: float = 0.0,
        latent: bool = True,
        initial_infected: float = 1e-3,
        regions: list | tuple = (1, 1),
        boundary: str = "periodic",
        block: list | tuple | None = None,
    ) -> None:
        for name, p in (("beta", beta), ("sigma", sigma), ("gamma", gamma), ("omega", omega)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability per tick; got {p}")
        self.shape = (rows, columns)
        self.beta, self.sigma, self.gamma, self.omega = beta, sigma, gamma, omega
        self.onset = EXPOSED if latent else INFECTED
        self.initial_infected = initial_infected
        self.regions = tuple(regions)
        self.boundary = boundary
        self.block = None if block is None else tuple(block)
        self.params = {"contact": np.ones(self.regions[0] * self.regions[1])}

    def initialize(self, local) -> None:
        infected = local.uniform(0) < self.initial_infected
        local.state[...] = np.where(infected, INFECTED, SUSCEPTIBLE)

    def kernel_args(self) -> tuple:
        p = infection_table(self.beta, self.param("contact"))
        local = self.local
        return (
            p,
            self.sigma,
            self.gamma,
            self.omega,
            np.uint8(self.onset),
            local.region_rows,
            local.region_cols,
            self.regions[1],
            self.shape[1],
        )


class HealthAuthority(Actor):
    """Imposes and lifts contact measures in one region of the grid.

    ``first``: the AAI of the first authority of its [[actors]] entry (write
    "@authority-0"): authority n governs region n.
    """

    def __init__(
        self,
        first: int,
        grid: str = "epidemic",
        impose_above: float = 0.01,
        lift_below: float = 0.002,
        contact: float = 0.3,
        min_ticks: int = 7,
    ) -> None:
        self.grid = grid
        self.region = self.aai - first
        self.impose_above, self.lift_below = impose_above, lift_below
        self.contact = contact
        self.min_ticks = min_ticks
        self.active = False
        self.since = 0
        self.pressure = False

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        pop = self.population(self.grid)
        counts = pop.counts("state", region=self.region)
        share = counts[INFECTED] / counts.sum()
        self.record("infected_seen", int(counts[INFECTED]))
        if not self.active and (share > self.impose_above or self.pressure):
            pop.post_set("contact", self.region, self.contact)
            self.active, self.since = True, self.tick
        elif (
            self.active
            and share < self.lift_below
            and not self.pressure
            and self.tick - self.since >= self.min_ticks
        ):
            pop.post_set("contact", self.region, 1.0)
            self.active = False
        self.record("measures", 1 if self.active else 0)
        self.pressure = False
        self.schedule_in(1)

    def hospital_pressure(self, sender: int, occupancy: int) -> None:
        self.pressure = True


class Hospital(Actor):
    """Admits the severe new cases of one region while it has beds.

    ``first``: the AAI of the first hospital of its entry ("@hospital-0");
    ``authorities``: that of the first authority ("@authority-0"), or 0 for none.
    """

    def __init__(
        self,
        first: int,
        authorities: int = 0,
        grid: str = "epidemic",
        capacity: int = 100,
        severity: float = 0.05,
        stay: int = 10,
        alarm: float = 0.9,
    ) -> None:
        self.grid = grid
        self.region = self.aai - first
        self.authority = authorities + self.region if authorities else 0
        self.capacity, self.severity, self.stay, self.alarm = capacity, severity, stay, alarm
        self.occupancy = 0
        self.discharges: list[list[int]] = []  # [tick, patients], in tick order
        self.ever = -1  # I + R of the region at the last look

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        counts = self.population(self.grid).counts("state", region=self.region)
        ever = int(counts[INFECTED] + counts[RECOVERED])
        new = max(0, ever - self.ever) if self.ever >= 0 else 0
        self.ever = ever
        while self.discharges and self.discharges[0][0] <= self.tick:
            self.occupancy -= self.discharges.pop(0)[1]
        severe = int(new * self.severity + self.random.random())  # stochastic rounding
        admitted = min(severe, self.capacity - self.occupancy)
        if admitted:
            self.occupancy += admitted
            self.discharges.append([self.tick + self.stay, admitted])
        self.record("admitted", admitted)
        self.record("turned_away", severe - admitted)
        self.record("occupancy", self.occupancy)
        if self.authority and self.occupancy >= self.alarm * self.capacity:
            self.send(self.authority, "hospital_pressure", self.occupancy)
        self.schedule_in(1)
