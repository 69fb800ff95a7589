"""City models on a bare kernel: waste mass is conserved, the weather stays on its attractor."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, kernel_digest, series

import models.city as city_pkg
from engine import Kernel, MemorySink, ProbeStore
from models.city import Weather, scenario
from models.city._layout import CLASSES, layout
from models.city.roads import Road
from models.city.truck import WasteTruck
from models.city.waste import Incinerator, Landfill, _WasteSource
from models.city.weather import initial_state, lorenz_update


def _run(source: str, districts: int, stop: int, seed: int = 3) -> Kernel:
    lay = layout(source, districts)
    kernel = Kernel(tick_duration=5.0, stop_tick=stop, seed=seed, probes=ProbeStore(MemorySink()))
    rows, cols = lay.city.spec.weather_shape
    kernel.add_population(Weather, "weather", None, {"rows": rows, "columns": cols})
    for district, code, count in lay.entries:
        if count:
            cls = getattr(city_pkg, CLASSES[code])
            kernel.add_actors(
                cls, count, f"district-{district}", None, city=source, districts=districts
            )
    kernel.run()
    return kernel


def _ledger(kernel: Kernel) -> dict[str, int]:
    """Where every kilogram is at the end of the run."""
    out = dict.fromkeys(
        ("produced", "initial", "sources", "trucks", "incinerators", "burnt", "ash", "landfilled"),
        0,
    )
    for aai in range(1, kernel._next_aai):
        a = kernel.actor(aai)
        if isinstance(a, _WasteSource):
            out["produced"] += a.produced
            out["sources"] += a.level
        elif isinstance(a, WasteTruck):
            out["trucks"] += a.cargo
        elif isinstance(a, Incinerator):
            out["initial"] += a.initial
            out["incinerators"] += a.stock
            out["burnt"] += a.burnt
            out["ash"] += a.ash
        elif isinstance(a, Landfill):
            out["landfilled"] += sum(a.stored)
    return out


@pytest.mark.parametrize(
    ("source", "districts", "stop"), [("tiny:1", 2, 5760), ("tiny:4", 1, 3 * 17280)]
)
def test_waste_mass_is_conserved(source: str, districts: int, stop: int) -> None:
    kernel = _run(source, districts, stop)
    led = _ledger(kernel)
    held = sum(led[k] for k in ("sources", "trucks", "incinerators", "burnt", "ash", "landfilled"))
    assert led["produced"] + led["initial"] == held, led
    # Something happened along the whole chain.
    assert led["produced"] > 0 and led["burnt"] > 0 and led["landfilled"] > 0, led
    assert series(kernel, "waste.collected"), "no truck ever loaded"
    roads = [kernel.actor(a) for a in range(1, kernel._next_aai)]
    roads = [r for r in roads if isinstance(r, Road)]
    entries = sum(r.passed + r.vehicles for r in roads)
    assert 0 < sum(r.rainy_entries for r in roads) < entries  # it rains, sometimes


def test_probes_add_up_to_the_ledger() -> None:
    kernel = _run("tiny:1", 2, 5760)
    led = _ledger(kernel)
    produced = sum(sum(v) for _, _, v in series(kernel, "waste.produced"))
    landfilled = sum(sum(v) for _, _, v in series(kernel, "waste.landfilled"))
    assert produced == led["produced"]
    assert landfilled == led["landfilled"]


def test_same_seed_same_digest() -> None:
    assert kernel_digest(_run("tiny:1", 2, 800)) == kernel_digest(_run("tiny:1", 2, 800))


def test_roads_are_fifo() -> None:
    kernel = _run("tiny:1", 2, 5760)
    for aai in range(1, kernel._next_aai):
        road = kernel.actor(aai)
        if isinstance(road, Road):
            exits = [leave for leave, _ in road.queue]
            assert exits == sorted(set(exits))
            assert road.vehicles == sum(len(t) for _, t in road.queue)


def _numpy_weather(x, y, z, tick):
    """The weather kernel again, vectorised, on a whole grid without halo."""
    ny, nx = x.shape
    g = np.arange(ny * nx).reshape(ny, nx)
    act = (tick >= 1) & ((g % 5 + 1) % 5 == tick % 5)
    a, b, c = x.copy(), y.copy(), z.copy()
    for _ in range(50):

        def f(a, b, c):
            return 10.0 * (b - a), a * (28.0 - c) - b, a * b - 8.0 / 3.0 * c

        k1 = f(a, b, c)
        k2 = f(*(v + 0.0025 * k for v, k in zip((a, b, c), k1, strict=True)))
        k3 = f(*(v + 0.0025 * k for v, k in zip((a, b, c), k2, strict=True)))
        k4 = f(*(v + 0.005 * k for v, k in zip((a, b, c), k3, strict=True)))
        a, b, c = (
            v + 0.005 / 6.0 * (p + 2.0 * q + 2.0 * r + s)
            for v, p, q, r, s in zip((a, b, c), k1, k2, k3, k4, strict=True)
        )
    new = [np.where(act, n, o) for n, o in zip((a, b, c), (x, y, z), strict=True)]
    if tick >= 2:
        heard = (g % 5 + 1) % 5 == (tick - 1) % 5
        for field, src in zip(new, (x, y, z), strict=True):
            pad = np.pad(np.where(heard, src, 0.0), 1)
            field += (pad[:-2, 1:-1] + pad[2:, 1:-1] + pad[1:-1, :-2] + pad[1:-1, 2:]) / 12.0
    return new


def test_weather_kernel_matches_numpy_and_stays_bounded() -> None:
    ny, nx = 7, 9
    rows, cols = np.arange(ny)[:, None], np.arange(nx)[None, :]
    state = [np.broadcast_to(v, (ny, nx)).astype(np.float64) for v in initial_state(rows, cols)]
    ref = [s.copy() for s in state]
    for tick in range(40):
        src = tuple(np.pad(s, 1) for s in state)
        dst = tuple(np.zeros_like(s) for s in src)
        block = np.array([1, 0, 0, ny, nx], dtype=np.int64)
        lorenz_update(src, dst, tick, np.uint64(0), block, 50, 0.005, 10.0, 28.0, 8.0 / 3.0, 5)
        state = [d[1:-1, 1:-1].copy() for d in dst]
        ref = _numpy_weather(*ref, tick)
        for s, r in zip(state, ref, strict=True):
            np.testing.assert_allclose(s, r, rtol=1e-9, atol=1e-9)
    assert all(np.isfinite(s).all() and np.abs(s).max() < 200 for s in state)


def test_scenario_text_counts_every_actor() -> None:
    text = scenario.scenario_text("tiny")
    lay = layout("tiny:1", 2)
    counts = [int(line.split("=")[1]) for line in text.splitlines() if line.startswith("count =")]
    assert sum(counts) == len(lay.owner)


def test_a_scenario_that_does_not_match_its_city_is_refused() -> None:
    kernel = Kernel(tick_duration=5.0, stop_tick=3, probes=ProbeStore(MemorySink()))
    kernel.add_actors(Road, 1, None, None, city="tiny:1", districts=2)  # AAI 1 is no road
    stats = kernel.run()
    assert stats.failures
    assert "does not match this city" in str(stats.failures[0])


def test_tiny_scenario_runs_and_its_figure_is_drawn(tmp_path) -> None:
    from models.city.plots import city_figure
    from runtime.runner import run_scenario

    outcome = run_scenario(
        ROOT / "scenarios" / "city-tiny.toml",
        {"simulation.stop_tick": 720, "results.plots": False},
        out=tmp_path / "run",
    )
    assert outcome.status == "completed"
    png = city_figure(outcome.run_dir)
    assert png.stat().st_size > 10_000


def test_a_city_file_runs_like_the_city_generated_on_the_fly(tmp_path) -> None:
    from models.city import generate_city, write_city
    from runtime.runner import run_scenario

    write_city(generate_city("tiny", 1), tmp_path / "tiny.h5")
    digests = []
    for name, source in (("file", str(tmp_path / "tiny.h5")), ("generated", None)):
        path = tmp_path / f"{name}.toml"
        path.write_text(scenario.scenario_text("tiny", 1, city=source))
        overrides = {"simulation.stop_tick": 300, "results.plots": False}
        digests.append(run_scenario(path, overrides, out=tmp_path / name).digest)
    assert digests[0] == digests[1]
