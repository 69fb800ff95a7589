"""A generated city on disk: one HDF5 file of plain arrays and attributes, no pickle.

Layout (format version 1)::

    /            attrs: format, format_version, scale, city, seed, area_km2, side_m,
                        counts (per kind), kinds, trucks, roads, islands_repaired,
                        points_stranded_before_repair, roads_added_for_islands,
                        roads_added_for_connectivity, placement_s, generation_s
    /points      xy (n, 2) float64 metres, kind (n,) uint8 (index into attr kinds)
    /junctions   point, in_degree, out_degree (int32; wanted degrees as drawn)
    /roads       source, target (int32 point indices), length (m), capacity
                 (vehicles, int32), max_speed (km/h); sorted by (source, target)
    /trucks      start (int32 point index)
    /weather     attrs: shape (rows, columns), cell_m, origin_m

Datasets are contiguous and uncompressed, so the same seed gives the same
dataset bytes; only the timing attributes differ from one run to the next.
The file is written beside its final path and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from .generate import City
from .scales import KINDS, WEATHER_CELL_M, CitySpec

FORMAT = "pydiasca-city"
FORMAT_VERSION = 1
_STATS = (
    "islands_repaired",
    "points_stranded_before_repair",
    "roads_added_for_islands",
    "roads_added_for_connectivity",
    "placement_s",
    "generation_s",
)


class CityFileError(Exception):
    """A city file that is missing, damaged, or of another format version."""


def write_city(city: City, path: str | Path) -> Path:
    """Write ``city`` to ``path`` (through a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    spec = city.spec
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["scale"] = spec.scale
            f.attrs["city"] = spec.city
            f.attrs["seed"] = city.seed
            f.attrs["area_km2"] = spec.area_km2
            f.attrs["side_m"] = spec.side_m
            f.attrs["kinds"] = list(KINDS)
            f.attrs["counts"] = spec.counts()
            f.attrs["trucks"] = spec.trucks
            f.attrs["roads"] = len(city.road_source)
            for key in _STATS:
                f.attrs[key] = city.stats.get(key, 0)
            points = f.create_group("points")
            points.create_dataset("xy", data=city.xy.astype(np.float64))
            points.create_dataset("kind", data=city.kind.astype(np.uint8))
            points.attrs["units"] = "metres"
            junctions = f.create_group("junctions")
            junctions.create_dataset("point", data=city.junctions.astype(np.int32))
            junctions.create_dataset("in_degree", data=city.junction_in.astype(np.int32))
            junctions.create_dataset("out_degree", data=city.junction_out.astype(np.int32))
            roads = f.create_group("roads")
            roads.create_dataset("source", data=city.road_source.astype(np.int32))
            roads.create_dataset("target", data=city.road_target.astype(np.int32))
            roads.create_dataset("length", data=city.road_length.astype(np.float64))
            roads.create_dataset("capacity", data=city.road_capacity.astype(np.int32))
            roads.create_dataset("max_speed", data=city.road_max_speed.astype(np.float64))
            roads.attrs["units"] = "length: m, capacity: vehicles, max_speed: km/h"
            trucks = f.create_group("trucks")
            trucks.create_dataset("start", data=city.truck_start.astype(np.int32))
            weather = f.create_group("weather")
            weather.attrs["shape"] = np.array(spec.weather_shape, dtype=np.int64)
            weather.attrs["cell_m"] = WEATHER_CELL_M
            weather.attrs["origin_m"] = np.zeros(2)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_city(path: str | Path) -> City:
    """Read a city file back; a wrong or damaged file raises ``CityFileError`` (one line)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CityFileError(f"{path}: not a city file (no format={FORMAT!r} attribute)")
            version = int(f.attrs["format_version"])
            if version != FORMAT_VERSION:
                raise CityFileError(
                    f"{path}: city format version {version}; this pydiasca reads "
                    f"version {FORMAT_VERSION}: generate the city again"
                )
            a = f.attrs
            count = dict(zip(KINDS, (int(c) for c in a["counts"]), strict=True))
            spec = CitySpec(
                scale=str(a["scale"]),
                city=str(a["city"]),
                area_km2=float(a["area_km2"]),
                incinerators=count["incinerator"],
                landfills=count["landfill"],
                residential=count["residential"],
                industrial=count["industrial"],
                junctions=count["junction"],
                trucks=int(a["trucks"]),
            )
            return City(
                spec=spec,
                seed=int(a["seed"]),
                xy=f["points/xy"][()],
                kind=f["points/kind"][()],
                junction_in=f["junctions/in_degree"][()].astype(np.int64),
                junction_out=f["junctions/out_degree"][()].astype(np.int64),
                road_source=f["roads/source"][()].astype(np.int64),
                road_target=f["roads/target"][()].astype(np.int64),
                road_length=f["roads/length"][()],
                road_capacity=f["roads/capacity"][()].astype(np.int64),
                road_max_speed=f["roads/max_speed"][()],
                truck_start=f["trucks/start"][()].astype(np.int64),
                stats={key: a[key].item() for key in _STATS if key in a},
            )
    except (OSError, KeyError, ValueError) as exc:
        raise CityFileError(f"{path}: cannot read the city ({str(exc).splitlines()[0]})") from exc
