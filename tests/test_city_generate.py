"""The City generator: Sim-Diasca's counts and rules, a connected road network, same seed same file.

Only tiny and small are generated here; benchmarks/city_generate.py times every scale.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import deque
from dataclasses import replace

import h5py
import numpy as np
import pytest
from conftest import ROOT
from scipy.spatial import cKDTree
from scipy.stats import norm

from models.city import (
    SCALES,
    CityFileError,
    GenerationError,
    generate_city,
    read_city,
    write_city,
)
from models.city._roads import gauss_pos_int
from models.city.scales import (
    INCINERATOR,
    INDUSTRIAL,
    JUNCTION,
    KINDS,
    LANDFILL,
    RESIDENTIAL,
    required_distances,
)

SCALES_TESTED = ("tiny", "small")
TIMING = {"generation_s", "placement_s"}  # attributes that may differ between two runs


@pytest.fixture(scope="module")
def cities():
    return {scale: generate_city(scale, 7) for scale in SCALES_TESTED}


def _datasets(path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def _attrs(path) -> dict[str, str]:
    out = {}
    with h5py.File(path) as f:
        for group in [f, *(f[name] for name in f)]:
            for key, value in group.attrs.items():
                if key not in TIMING:
                    out[f"{group.name}:{key}"] = repr(np.asarray(value).tolist())
    return out


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_same_seed_gives_the_same_dataset_bytes(tmp_path, scale):
    a = write_city(generate_city(scale, 11), tmp_path / "a.h5")
    b = write_city(generate_city(scale, 11), tmp_path / "b.h5")
    first, second = _datasets(a), _datasets(b)
    assert len(first) == 11
    assert first == second
    assert _attrs(a) == _attrs(b)
    other = _datasets(write_city(generate_city(scale, 12), tmp_path / "c.h5"))
    assert other["points/xy"] != first["points/xy"]


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_counts_per_kind_match_the_scale(cities, scale):
    city, spec = cities[scale], SCALES[scale]
    wanted = {
        INCINERATOR: spec.incinerators,
        LANDFILL: spec.landfills,
        INDUSTRIAL: spec.industrial,
        RESIDENTIAL: spec.residential,
        JUNCTION: spec.junctions,
    }
    found = np.bincount(city.kind, minlength=len(KINDS))
    assert {k: int(found[k]) for k in wanted} == wanted
    assert len(city.junction_in) == len(city.junctions) == spec.junctions
    assert len(city.truck_start) == spec.trucks
    assert np.all((city.xy >= 0) & (city.xy < spec.side_m))


def test_the_scales_are_sim_diascas():
    assert SCALES["tiny"].counts().tolist() == [1, 2, 4, 5, 15]
    assert SCALES["huge"].counts().sum() == 672 + 495 + 4_000 + 20_000 + 80_000
    assert SCALES["huge"].trucks == 95_100
    assert SCALES["tiny"].weather_shape == (16, 16)  # 256 cells
    assert SCALES["small"].weather_shape == (182, 182)  # about 33 k
    rows, cols = SCALES["huge"].weather_shape
    assert 37.9e6 < rows * cols < 38.1e6
    assert math.isclose(SCALES["small"].area_km2, 23_643.24 * 8)


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_minimum_distances_hold(cities, scale):
    city = cities[scale]
    required = required_distances()
    assert required[LANDFILL, LANDFILL] == 300 and required[JUNCTION, JUNCTION] == 25
    assert required[JUNCTION, RESIDENTIAL] == 30 and required[INDUSTRIAL, INCINERATOR] == 50
    pairs = cKDTree(city.xy).query_pairs(required.max(), output_type="ndarray")
    gap = np.hypot(*(city.xy[pairs[:, 0]] - city.xy[pairs[:, 1]]).T)
    need = required[city.kind[pairs[:, 0]], city.kind[pairs[:, 1]]]
    assert np.all(gap >= need)


def test_minimum_distances_hold_in_a_crowded_city():
    """Tiny's square is nearly empty; this one makes the rejection sampling work."""
    spec = replace(SCALES["tiny"], area_km2=4.0, residential=1_000, junctions=1_000)
    city = generate_city(spec, 3)
    pairs = cKDTree(city.xy).query_pairs(300.0, output_type="ndarray")
    assert len(pairs) > 1_000  # many points near their minimum distance
    gap = np.hypot(*(city.xy[pairs[:, 0]] - city.xy[pairs[:, 1]]).T)
    assert np.all(gap >= required_distances()[city.kind[pairs[:, 0]], city.kind[pairs[:, 1]]])


def test_a_point_that_cannot_be_placed_in_1000_tries_stops_generation():
    spec = replace(SCALES["tiny"], area_km2=0.5, landfills=50)  # 300 m apart in a 707 m square
    with pytest.raises(GenerationError, match=r"cannot place landfill \d+ of 50 after 1,000 tries"):
        generate_city(spec, 1)


def _reached(n: int, start: list[int], edges: dict[int, list[int]]) -> set[int]:
    seen, todo = set(start), deque(start)
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_every_point_reaches_and_is_reached_from_a_sink(cities, scale):
    city = cities[scale]
    n = len(city.xy)
    ahead: dict[int, list[int]] = {}
    back: dict[int, list[int]] = {}
    for s, t in zip(city.road_source.tolist(), city.road_target.tolist(), strict=True):
        ahead.setdefault(s, []).append(t)
        back.setdefault(t, []).append(s)
    sinks = np.flatnonzero((city.kind == INCINERATOR) | (city.kind == LANDFILL)).tolist()
    assert len(_reached(n, sinks, ahead)) == n
    assert len(_reached(n, sinks, back)) == n
    # Stronger: one strongly connected network, so every sink reaches every other.
    assert len(_reached(n, [sinks[0]], ahead)) == len(_reached(n, [sinks[0]], back)) == n


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_road_attributes_follow_the_rules(cities, scale):
    city = cities[scale]
    src, dst, length = city.road_source, city.road_target, city.road_length
    assert np.all(src != dst)
    assert len(np.unique(src * len(city.xy) + dst)) == len(src)
    np.testing.assert_allclose(length, np.hypot(*(city.xy[dst] - city.xy[src]).T))
    assert np.all(city.road_capacity >= 1)
    # 1 + gaussPosInt(length / 4 m, sigma 2): within 10 sigma of the mean (or of 1).
    assert np.all(np.abs(city.road_capacity - 1 - np.maximum(length / 4, 0)) <= 20)
    speed = city.road_max_speed
    np.testing.assert_allclose(speed, np.minimum(110.0, 30.0 + 80.0 * length / 1000 / 10))
    assert np.all((speed >= 30) & (speed <= 110))


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_junctions_link_to_their_nearest_points(cities, scale):
    city = cities[scale]
    assert np.all((city.junction_in >= 1) & (city.junction_in <= 5))
    assert np.all(city.junction_out == 1)
    roads = set(zip(city.road_source.tolist(), city.road_target.tolist(), strict=True))
    _, near = cKDTree(city.xy).query(city.xy[city.junctions], k=6)
    for j, wanted, nearest in zip(city.junctions, city.junction_in, near[:, 1:], strict=True):
        assert all((int(p), int(j)) in roads for p in nearest[:wanted])
        assert (int(j), int(nearest[0])) in roads


@pytest.mark.parametrize("scale", SCALES_TESTED)
def test_every_point_has_a_road_in_and_out_and_trucks_start_at_containers(cities, scale):
    city = cities[scale]
    n = len(city.xy)
    assert np.all(np.bincount(city.road_source, minlength=n) >= 1)
    assert np.all(np.bincount(city.road_target, minlength=n) >= 1)
    homes = np.isin(city.kind[city.truck_start], [INCINERATOR, INDUSTRIAL, RESIDENTIAL])
    assert homes.all()


def test_gauss_pos_int_is_a_rounded_gaussian_drawn_again_below_zero():
    rng = np.random.Generator(np.random.PCG64(5))
    draws = gauss_pos_int(rng, 2.0, 2.0, 100_000)
    assert draws.min() == 0 and draws.dtype == np.int64
    # round(N(2, 2)) drawn again below 0: P(k) is proportional to the normal mass
    # on [k - 0.5, k + 0.5) for k >= 0.
    k = np.arange(40)
    mass = norm.cdf(k + 0.5, 2, 2) - norm.cdf(k - 0.5, 2, 2)
    expected = (k * mass).sum() / mass.sum()
    assert abs(draws.mean() - expected) < 0.03  # about 6 standard errors
    assert np.all(gauss_pos_int(rng, np.array([1000.0, 0.0]), 2.0, 2) >= 0)


def test_the_file_reads_back_and_says_what_it_holds(tmp_path, cities):
    city = cities["tiny"]
    path = write_city(city, tmp_path / "tiny.h5")
    back = read_city(path)
    for name in ("xy", "kind", "road_source", "road_target", "road_capacity", "truck_start"):
        np.testing.assert_array_equal(getattr(back, name), getattr(city, name))
    assert back.spec == city.spec and back.seed == 7
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 1 and f.attrs["scale"] == "tiny"
        assert f.attrs["islands_repaired"] == city.stats["islands_repaired"]
        assert f.attrs["generation_s"] > 0
        assert tuple(f["weather"].attrs["shape"]) == (16, 16)
        assert f["weather"].attrs["cell_m"] == 2400
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CityFileError, match="format version 99"):
        read_city(path)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", "generate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_cli_writes_the_city_and_reports_islands(tmp_path):
    done = _cli("city", "--scale", "tiny", "--seed", "7", "--out", "t.h5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "islands repaired: " in done.stdout and done.stderr == ""
    with h5py.File(tmp_path / "t.h5") as f:
        assert f.attrs["seed"] == 7
        assert "islands repaired: {:,}".format(f.attrs["islands_repaired"]) in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]  # no temporary left


BAD_CLI = {
    "bad scale": (["city", "--scale", "enormous"], "invalid choice: 'enormous'"),
    "no such folder": (["city", "--scale", "tiny", "--out", "nope/c.h5"], "no folder"),
    "output is a folder": (["city", "--scale", "tiny", "--out", "."], "is a folder"),
    "negative seed": (["city", "--scale", "tiny", "--seed", "-3"], "whole number >= 0"),
    "unknown model": (["town"], "unknown model 'town'"),
}


@pytest.mark.parametrize(("args", "says"), BAD_CLI.values(), ids=BAD_CLI.keys())
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: ")
    assert says in done.stderr
    assert list(tmp_path.iterdir()) == []
