"""Before a run: do the scenario's City actors match the city they name?

The runtime calls ``check_scenario`` with every ``[[actors]]`` entry while it
loads the scenario. A city that cannot be loaded, or whose actors the entries
do not count and order exactly (a file generated again, another scale, counts
edited by hand), raises a one-line ``ValueError`` naming the city and the fix,
so the run stops before it starts instead of at tick 0 with a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._layout import CLASSES, CityMismatch, layout
from ._places import GenerationError
from .cityfile import CityFileError
from .scales import SCALES

DEFAULT_CITY, DEFAULT_DISTRICTS, DEFAULT_FIRST = "tiny:1", 1, 1  # the constructors' defaults


def _fix(source: str, districts: int, scale: str | None = None) -> str:
    name, sep, seed = source.partition(":")
    if sep and name in SCALES and seed.isdigit():
        return f"python -m models.city.scenario {name} --seed {seed} --districts {districts}"
    scale = scale or "SCALE"
    return f"python -m models.city.scenario {scale} --city {source} --districts {districts}"


def check_scenario(entries: Sequence[Any]) -> None:
    """Raise ``ValueError`` unless the City entries count and order each city's actors exactly."""
    groups: dict[tuple[str, int, int], list[Any]] = {}
    for entry in entries:
        if getattr(entry.cls, "check_scenario", None) is not check_scenario:
            continue
        args = entry.args
        key = (
            args.get("city", DEFAULT_CITY),
            args.get("districts", DEFAULT_DISTRICTS),
            args.get("first", DEFAULT_FIRST),
        )
        groups.setdefault(key, []).append(entry)
    for (source, districts, first), mine in groups.items():
        _check_city(source, districts, first, mine)


def _check_city(source: str, districts: int, first: int, entries: list[Any]) -> None:
    try:
        lay = layout(source, districts)
    except (CityFileError, CityMismatch, GenerationError) as exc:
        raise ValueError(
            f"{exc}; generate the city with pydiasca generate city --scale SCALE --out FILE "
            f"and write the scenario again with {_fix(source, districts)}"
        ) from None
    fix = f"write the scenario again with {_fix(source, districts, lay.city.spec.scale)}"
    what = (
        f"city {source!r} ({lay.city.spec.scale}, seed {lay.city.seed}) "
        f"cut into {districts}x{districts} districts"
    )
    want = lay.owner[:, 0]
    got = np.full(len(want), -1, np.int64)
    for entry in entries:
        code = entry.cls._code
        start = entry.first_aai - first
        if start < 0 or start + entry.count > len(want):
            raise ValueError(_count_problem(entries, want, what, fix))
        got[start : start + entry.count] = code
    if not np.array_equal(got, want):
        if (_bincount(got[got >= 0]) != _bincount(want)).any():
            raise ValueError(_count_problem(entries, want, what, fix))
        at = int(np.flatnonzero(got != want)[0])
        raise ValueError(
            f"AAI {at + first} is a {CLASSES[want[at]]} in {what}, but the entries make it a "
            f"{CLASSES[got[at]]}: they are out of order; {fix}"
        )


def _count_problem(entries: list[Any], want: np.ndarray, what: str, fix: str) -> str:
    given = [0] * len(CLASSES)
    for entry in entries:
        given[entry.cls._code] += entry.count
    has = _bincount(want)
    differ = [c for c in range(len(CLASSES)) if given[c] != has[c]]
    ours = ", ".join(f"{given[c]} {CLASSES[c]}" for c in differ)
    theirs = ", ".join(f"{int(has[c])} {CLASSES[c]}" for c in differ)
    return f"the entries give {ours} actors, but {what} has {theirs}; {fix}"


def _bincount(codes: np.ndarray) -> np.ndarray:
    return np.bincount(codes, minlength=len(CLASSES))
