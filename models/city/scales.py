"""The five City scales and the generation rules, as Sim-Diasca's City example sets them.

Figures come from Sim-Diasca's ``city_descriptions.erl`` and location generator
(summarised in ../shared/CITY.md); they are data here so that tests and later
models read them from one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Kinds of point of interest, in Sim-Diasca's generation order; a point's kind is
# its index in this tuple, and points are stored grouped by kind in this order.
KINDS = ("incinerator", "landfill", "industrial", "residential", "junction")
INCINERATOR, LANDFILL, INDUSTRIAL, RESIDENTIAL, JUNCTION = range(len(KINDS))
SINKS = (INCINERATOR, LANDFILL)  # where waste ends: every point must reach one and be reached
TRUCK_HOMES = (INCINERATOR, INDUSTRIAL, RESIDENTIAL)  # "containers" where trucks start

# Minimum distances in metres: (to points of other kinds, to points of the same kind).
MIN_DISTANCES = {
    "incinerator": (40.0, 200.0),
    "landfill": (40.0, 300.0),
    "industrial": (50.0, 200.0),
    "residential": (30.0, 30.0),
    "junction": (15.0, 25.0),
}

WEATHER_CELL_M = 2400.0  # side of a square weather cell
MAX_TRIES = 1000  # tries to place one point before generation fails
MAX_SPEED_KMH = 110.0


@dataclass(frozen=True)
class CitySpec:
    """What to generate: a square city of ``area_km2`` and a count per kind."""

    scale: str
    city: str
    area_km2: float
    incinerators: int
    landfills: int
    residential: int
    industrial: int
    junctions: int
    trucks: int

    @property
    def side_m(self) -> float:
        """Side of the square city in metres (Sim-Diasca: sqrt(area x 10^6))."""
        return math.sqrt(self.area_km2 * 1e6)

    @property
    def weather_shape(self) -> tuple[int, int]:
        """Weather cells per edge, squared: ceil(side / 2,400 m) cells each way."""
        n = math.ceil(self.side_m / WEATHER_CELL_M)
        return (n, n)

    def counts(self) -> np.ndarray:
        """Points per kind, in ``KINDS`` order."""
        return np.array(
            [self.incinerators, self.landfills, self.industrial, self.residential, self.junctions],
            dtype=np.int64,
        )


SCALES: dict[str, CitySpec] = {
    s.scale: s
    for s in (
        CitySpec("tiny", "Yzeure", 1_364.24, 1, 2, 5, 4, 15, 5),
        CitySpec("small", "Orleans", 23_643.24 * 8, 144, 112, 3_600, 1_040, 4_000, 1_440),
        CitySpec("medium", "Rennes", 9_782_643.24, 124, 59, 1_700, 430, 1_950, 1_007),
        CitySpec("large", "Paris", 56_172_643.24, 248, 218, 6_500, 980, 8_500, 4_912),
        CitySpec("huge", "Beijing", 218_921_485.0, 672, 495, 20_000, 4_000, 80_000, 95_100),
    )
}


def required_distances() -> np.ndarray:
    """Matrix of minimum distances between kinds: ``[a, b]`` in metres.

    Same kind: that kind's own distance. Two kinds: the larger of their
    "to other kinds" distances, so the rule does not depend on which kind was
    placed first (Sim-Diasca checks only the newcomer's distance).
    """
    other = np.array([MIN_DISTANCES[k][0] for k in KINDS])
    out = np.maximum.outer(other, other)
    np.fill_diagonal(out, [MIN_DISTANCES[k][1] for k in KINDS])
    return out
