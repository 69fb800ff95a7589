"""Generate a City: points of interest, roads, truck starts and the weather grid's shape.

Same seed, same city: every random draw comes from ``numpy.random.PCG64``
streams spawned from the seed, one per stage (places, junctions, roads,
trucks), so one stage's draws never shift another's, and nothing iterates over
a set or a dict whose order could vary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ._places import GenerationError, place_points
from ._roads import (
    force_connectivity,
    junction_degrees,
    junction_roads,
    repair_islands,
    road_attributes,
    unique_roads,
    unreached,
)
from .scales import JUNCTION, KINDS, SCALES, SINKS, TRUCK_HOMES, CitySpec, required_distances


@dataclass
class City:
    """A generated city, as plain arrays (point indices index ``xy`` and ``kind``)."""

    spec: CitySpec
    seed: int
    xy: np.ndarray  # (points, 2) float64, metres
    kind: np.ndarray  # (points,) uint8, index into KINDS
    junction_in: np.ndarray  # (junctions,) wanted in-degree of each junction
    junction_out: np.ndarray  # (junctions,) wanted out-degree (always 1)
    road_source: np.ndarray  # (roads,) point index
    road_target: np.ndarray
    road_length: np.ndarray  # metres
    road_capacity: np.ndarray  # vehicles
    road_max_speed: np.ndarray  # km/h
    truck_start: np.ndarray  # (trucks,) point index
    stats: dict[str, float | int] = field(default_factory=dict)

    @property
    def junctions(self) -> np.ndarray:
        """Point indices of the junctions, in the order of ``junction_in``."""
        return np.flatnonzero(self.kind == JUNCTION)


def _streams(seed: int, count: int) -> list[np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(count)
    return [np.random.Generator(np.random.PCG64(c)) for c in children]


def generate_city(scale: str | CitySpec, seed: int) -> City:
    """Generate the city of ``scale`` (a name in ``SCALES``, or a ``CitySpec``).

    Raises ``GenerationError`` when a point cannot be placed in 1,000 tries.
    """
    spec = SCALES[scale] if isinstance(scale, str) else scale
    start = time.perf_counter()
    r_places, r_junctions, r_roads, r_trucks = _streams(seed, 4)
    counts = spec.counts()
    xy = place_points(r_places, counts, spec.side_m, required_distances())
    kind = np.repeat(np.arange(len(KINDS), dtype=np.uint8), counts)
    placed = time.perf_counter()

    tree = cKDTree(xy)
    junctions = np.flatnonzero(kind == JUNCTION)
    inbound, outbound = junction_degrees(r_junctions, len(junctions))
    src, dst = junction_roads(tree, xy, junctions, inbound, outbound)
    add_src, add_dst = force_connectivity(tree, xy, kind, src, dst)
    n = len(xy)
    src, dst = unique_roads(np.concatenate([src, add_src]), np.concatenate([dst, add_dst]), n)
    before = len(src)
    sinks = np.flatnonzero(np.isin(kind, SINKS))
    stranded = len(unreached(n, src, dst, sinks))
    src, dst, islands = repair_islands(xy, src, dst)
    if len(unreached(n, src, dst, sinks)):  # cannot happen after the repair
        raise GenerationError("a point cannot reach a sink after island repair; this is a bug")
    length, capacity, speed = road_attributes(r_roads, xy, src, dst)
    homes = np.flatnonzero(np.isin(kind, TRUCK_HOMES))
    trucks = (
        homes[r_trucks.integers(0, len(homes), size=spec.trucks)]
        if len(homes)
        else np.full(spec.trucks, -1, dtype=np.int64)
    )
    done = time.perf_counter()
    stats = {
        "islands_repaired": islands,
        "points_stranded_before_repair": stranded,
        "roads_added_for_islands": len(src) - before,
        "roads_added_for_connectivity": len(add_src),
        "placement_s": placed - start,
        "generation_s": done - start,
    }
    return City(
        spec=spec,
        seed=seed,
        xy=xy,
        kind=kind,
        junction_in=inbound,
        junction_out=outbound,
        road_source=src,
        road_target=dst,
        road_length=length,
        road_capacity=capacity,
        road_max_speed=speed,
        truck_start=trucks,
        stats=stats,
    )
