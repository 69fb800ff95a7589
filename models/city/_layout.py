"""A city as every rank sees it: the generated arrays, the road graph and the AAI layout.

Every rank loads (or generates) the same city and computes the same layout from
it, then builds only the actors placed on it: no rank builds everything. The
layout orders actors by district (a ``districts x districts`` grid over the
square), and, inside a district, by class in ``CLASSES`` order, point or road or
truck indices ascending. So one district's points, roads and trucks have
consecutive AAIs: the ``graph`` policy (consecutive slices when no entry
references another) keeps roads with their junctions, and the ``hint`` policy
puts a district on one rank.

The data is cached per process, read-only. Actors keep only plain values (the
city's source string and their own numbers) and look the rest up here, so
their state stays plain data.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cityfile import read_city
from .generate import City, generate_city
from .scales import INCINERATOR, KINDS, LANDFILL, SCALES

# Actor classes, in layout order inside a district; the first five are the kinds of KINDS.
CLASSES = (
    "Incinerator",
    "Landfill",
    "IndustrialWasteSource",
    "ResidentialWasteSource",
    "RoadJunction",
    "Road",
    "WasteTruck",
)
ROAD, TRUCK = 5, 6


class CityMismatch(ValueError):
    """The scenario's actor entries do not match the city they name."""


@dataclass
class _Layout:
    city: City
    districts: int
    out_start: np.ndarray  # roads of point p: out_start[p] .. out_start[p + 1] (sorted by source)
    point_aai: np.ndarray  # point index -> AAI offset (AAI - first)
    road_aai: np.ndarray
    truck_aai: np.ndarray
    owner: np.ndarray  # (actors, 2): class code, index, by AAI offset
    entries: list[tuple[int, int, int]]  # (district, class code, count) in AAI order
    masks: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)

    def neighbours(self, p: int) -> range:
        """Indices of the roads leaving point ``p``."""
        return range(int(self.out_start[p]), int(self.out_start[p + 1]))


_CACHE: dict[tuple[str, int], _Layout] = {}


def load_city(source: str) -> City:
    """``source`` is an HDF5 file written by ``pydiasca generate city``, or "scale:seed"."""
    scale, sep, seed = source.partition(":")
    if sep and scale in SCALES and seed.isdigit():
        return generate_city(scale, int(seed))
    if not Path(source).is_file():
        raise CityMismatch(
            f"city {source!r}: no such file, and not 'scale:seed' (scales: {', '.join(SCALES)})"
        )
    return read_city(source)


def layout(source: str, districts: int) -> _Layout:
    """The (cached) layout of city ``source`` cut into ``districts`` x ``districts``."""
    key = (source, districts)
    found = _CACHE.get(key)
    if found is None:
        found = _CACHE[key] = _build(load_city(source), districts)
    return found


def district_of(city: City, xy: np.ndarray, districts: int) -> np.ndarray:
    """District number of each position: row-major over a districts x districts grid."""
    side = city.spec.side_m
    cell = np.clip((xy / side * districts).astype(np.int64), 0, districts - 1)
    return cell[:, 1] * districts + cell[:, 0]


def _build(city: City, districts: int) -> _Layout:
    if districts < 1:
        raise CityMismatch(f"districts must be >= 1; got {districts}")
    n = len(city.xy)
    point_d = district_of(city, city.xy, districts)
    road_d = point_d[city.road_source]
    truck_d = point_d[city.truck_start] if len(city.truck_start) else np.empty(0, np.int64)
    groups = [(point_d, city.kind == k) for k in range(len(KINDS))]
    groups += [(road_d, None), (truck_d, None)]
    point_aai = np.full(n, -1, np.int64)
    road_aai = np.full(len(city.road_source), -1, np.int64)
    truck_aai = np.full(len(city.truck_start), -1, np.int64)
    targets = [point_aai] * len(KINDS) + [road_aai, truck_aai]
    owner_parts: list[np.ndarray] = []
    entries: list[tuple[int, int, int]] = []
    at = 0
    for d in range(districts * districts):
        for code, (dist, mask) in enumerate(groups):
            sel = dist == d if mask is None else (dist == d) & mask
            idx = np.flatnonzero(sel)
            targets[code][idx] = np.arange(at, at + len(idx))
            owner_parts.append(np.stack([np.full(len(idx), code), idx], axis=1))
            entries.append((d, code, len(idx)))
            at += len(idx)
    out_start = np.searchsorted(city.road_source, np.arange(n + 1))
    owner = np.concatenate(owner_parts) if owner_parts else np.empty((0, 2), np.int64)
    return _Layout(city, districts, out_start, point_aai, road_aai, truck_aai, owner, entries)


def whoami(source: str, districts: int, offset: int, code: int) -> tuple[_Layout, int]:
    """(layout, index) of the actor at AAI offset ``offset``, which must be of class ``code``."""
    lay = layout(source, districts)
    if not 0 <= offset < len(lay.owner) or lay.owner[offset, 0] != code:
        got = CLASSES[lay.owner[offset, 0]] if 0 <= offset < len(lay.owner) else "no actor"
        raise CityMismatch(
            f"AAI offset {offset} is {got} in city {source!r} cut into {districts}x{districts} "
            f"districts, not {CLASSES[code]}: the scenario does not match this city; "
            f"write it again with python -m models.city.scenario"
        )
    return lay, int(lay.owner[offset, 1])


def nearest(
    lay: _Layout, start: int, wanted: np.ndarray, avoid: frozenset[int] | set[int]
) -> tuple[int, list[int]] | None:
    """Breadth-first search from point ``start`` over the roads: (point, road path) or None.

    ``wanted[p]`` marks the compatible points; points of ``avoid`` are passed
    through but never chosen. Ties between points at the same hop count go to
    the first one reached, roads being visited in (source, target) order.
    """
    if wanted[start] and start not in avoid:
        return start, []
    dst, out = lay.city.road_target, lay.out_start
    came = {start: -1}
    queue = deque([start])
    while queue:
        p = queue.popleft()
        for r in range(int(out[p]), int(out[p + 1])):
            q = int(dst[r])
            if q in came:
                continue
            came[q] = r
            if wanted[q] and q not in avoid:
                path = []
                while q != start:
                    road = came[q]
                    path.append(road)
                    q = int(lay.city.road_source[road])
                path.reverse()
                return int(dst[path[-1]]), path
            queue.append(q)
    return None


def is_kind(lay: _Layout, kinds: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the points of these kinds (cached)."""
    found = lay.masks.get(kinds)
    if found is None:
        found = lay.masks[kinds] = np.isin(lay.city.kind, kinds)
    return found


SINK_KINDS = (INCINERATOR, LANDFILL)
