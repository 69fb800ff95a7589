"""Results: what results.h5 holds, the result specification, plots, info, progress.

Multi-rank results (identical content on 1 to 4 ranks, signals to mpiexec) are
in test_distributed.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

from engine import Kernel, MemorySink, ProbeStore, SimulationError
from runtime import results
from runtime.digest import canonical_series, digest_file, digest_of
from runtime.finalize import finalize
from runtime.plots import PERFORMANCE_FILES, file_name
from runtime.report import time_unit
from runtime.results import probe_filter, read_probes
from runtime.runner import run_scenario
from runtime.scenario import load_scenario
from runtime.staging import StagingSink

MODEL = """
import numpy as np
from engine import Actor


class Gauge(Actor):
    \"\"\"Records a scalar, a labelled vector and, twice per tick, a counter.\"\"\"

    def __init__(self, until=4):
        self.until = until

    def on_first_diasca(self):
        self.declare_probe("level", unit="m")
        self.declare_probe("flow", unit="m3/s", labels=["in", "out", "net"])
        self.schedule_in(1)

    def act_spontaneous(self):
        t, a = self.tick, self.aai
        self.record("level", a * 10 + t + 0.25)
        self.record("flow", np.array([t, a, t - a], dtype=float))
        self.record("twice", 2 * t)
        self.record("twice", 2 * t + 1)
        self.record("noise", self.random.random())
        if t < self.until:
            self.schedule_in(1)


class World(Actor):
    \"\"\"A population-style aggregate under AAI 0, and a wide vector.\"\"\"

    def on_first_diasca(self):
        self.declare_probe("unused", unit="kg")
        self.schedule_in(1)

    def act_spontaneous(self):
        self._k.probes.record("total", self.tick, 0, float(self.tick * 100))
        self.record("spectrum", np.arange(16, dtype=float) + self.tick)
        if self.tick < 4:
            self.schedule_in(1)
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def scenario(tmp_path: Path, results_table: str = "", gauges: int = 3, stop: int = 10) -> Path:
    write(tmp_path / "gauge.py", MODEL)
    return write(
        tmp_path / "g.toml",
        f'[simulation]\nname = "g"\nstop_tick = {stop}\nseed = 9\ntick_duration = "1min"\n\n'
        f'[[actors]]\nclass = "gauge.py:Gauge"\ncount = {gauges}\n\n'
        f'[[actors]]\nclass = "gauge.py:World"\n\n'
        f"[results]\n{results_table}\n",
    )


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


# --- read-back ----------------------------------------------------------------------


def test_read_back_equals_recorded(tmp_path):
    outcome = run_scenario(load_scenario(scenario(tmp_path, "plots = false")), out=tmp_path / "r")
    rows = [(t, a) for t in range(1, 5) for a in (1, 2, 3)]
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        p = f["probes"]
        assert sorted(p) == ["flow", "level", "noise", "spectrum", "total", "twice", "unused"]
        # Per-actor scalar series: one dataset keyed by AAI, canonical (tick, AAI) order.
        assert list(zip(p["level/tick"][()], p["level/aai"][()], strict=True)) == rows
        assert p["level/value"][()].tolist() == [a * 10 + t + 0.25 for t, a in rows]
        assert p["level"].attrs["unit"] == "m" and list(p["level"].attrs["labels"]) == []
        # Vectors, with their unit and labels.
        assert p["flow/value"].shape == (12, 3)
        assert p["flow/value"][()].tolist() == [[t, a, t - a] for t, a in rows]
        assert p["flow"].attrs["unit"] == "m3/s"
        assert [str(x) for x in p["flow"].attrs["labels"]] == ["in", "out", "net"]
        # Several rows per (tick, AAI) keep the actor's own order.
        assert p["twice/value"][()].tolist() == [v for t, _ in rows for v in (2 * t, 2 * t + 1)]
        # An aggregate under AAI 0 comes first in its tick; a 16-wide vector.
        assert p["total/aai"][()].tolist() == [0] * 4
        assert p["total/value"][()].tolist() == [100.0, 200.0, 300.0, 400.0]
        assert p["spectrum/value"][()].tolist() == [list(np.arange(16.0) + t) for t in range(1, 5)]
        # Declared but never recorded: present, empty, with its unit.
        assert p["unused/value"].shape == (0,) and p["unused"].attrs["unit"] == "kg"
        assert int(p["level"].attrs["rows"]) == 12
        assert f.attrs["digest"] == outcome.digest
        for key in ("probe_include", "probe_exclude", "started_utc", "ended_utc", "mpi_library"):
            assert key in f.attrs
        assert f.attrs["status"] == "completed"
        assert f["probes/level/value"].is_virtual
    # The digest: what is stored, what the file holds, and what was recorded in memory.
    assert digest_of(read_probes(tmp_path / "r" / "results.h5")) == outcome.digest
    assert digest_file(tmp_path / "r" / "results.h5") == outcome.digest
    assert outcome.probes == 7 and outcome.rows == 12 * 2 + 24 + 12 + 4 + 4


def test_per_probe_digest_and_run_digest_are_documented_hashes(tmp_path):
    """docs/results.md says how to recompute the digest with hashlib alone."""
    import hashlib

    run_scenario(load_scenario(scenario(tmp_path, "plots = false")), out=tmp_path / "r")
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        run = hashlib.sha256()
        for name in sorted(f["probes"]):
            g = f["probes"][name]
            if g["tick"].shape[0] == 0:
                continue
            value = g["value"][()]
            h = hashlib.sha256(name.encode() + b"\0")
            h.update(np.int64(value.shape[1] if value.ndim == 2 else 0).astype("<i8").tobytes())
            h.update(np.int64(value.shape[0]).astype("<i8").tobytes())
            for column in (g["tick"][()], g["aai"][()]):
                h.update(column.astype("<i8").tobytes())
            h.update(value.astype("<f8").tobytes())
            assert g.attrs["digest"] == h.hexdigest()
            run.update(h.digest())
        assert f.attrs["digest"] == run.hexdigest()


def test_hundred_thousand_actors_recording_every_tick(tmp_path):
    write(
        tmp_path / "many.py",
        "from engine import Actor\n\n"
        "class Cell(Actor):\n"
        "    def on_first_diasca(self):\n"
        "        self.record('level', self.aai * 0.5)\n"
        "        self.schedule_in(1)\n\n"
        "    def act_spontaneous(self):\n"
        "        self.record('level', self.aai * 0.5 + self.tick)\n"
        "        self.schedule_in(1)\n",
    )
    scen = write(
        tmp_path / "m.toml",
        '[simulation]\nname = "m"\nstop_tick = 3\n\n'
        '[[actors]]\nclass = "many.py:Cell"\ncount = 100000\n\n[results]\nplots = false\n',
    )
    outcome = run_scenario(load_scenario(scen), out=tmp_path / "r")
    assert outcome.rows == 300_000
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        ticks, aais, values = (f["probes/level"][k][()] for k in ("tick", "aai", "value"))
    expected_aais = np.tile(np.arange(1, 100_001), 3)
    assert np.array_equal(ticks, np.repeat([0, 1, 2], 100_000))
    assert np.array_equal(aais, expected_aais)
    assert np.array_equal(values, expected_aais * 0.5 + ticks)


def _stage(run_dir: Path, probes: dict[str, tuple]) -> None:
    sink = StagingSink(results.staging_path(run_dir, 0), {"rank": 0, "ranks": 1})
    for name, (ticks, aais, values) in probes.items():
        for s in range(0, len(ticks), 1000):  # several chunks, as a run spills them
            sink.write(name, ticks[s : s + 1000], aais[s : s + 1000], values[s : s + 1000])
    sink.close()


def test_finalize_sorts_canonically_across_many_windows(tmp_path):
    rng = np.random.default_rng(1)
    staged = {}
    for name, width in (("a", 0), ("b", 3)):
        ticks = np.sort(rng.integers(0, 50, 5000))  # tick order, as a rank records
        aais = rng.integers(1, 40, 5000)  # any order inside a tick, repeats included
        shape = (5000, width) if width else (5000,)
        staged[name] = (ticks, aais, rng.random(shape))
    _stage(tmp_path, staged)
    done = finalize(tmp_path, window_bytes=4096)
    with h5py.File(tmp_path / "results.h5") as f:
        assert len(f["probes/a/tick"].virtual_sources()) == 1  # one rank: one run of windows
        assert not results.staging_path(tmp_path, 0).exists()
    back = read_probes(tmp_path / "results.h5")
    for name, rows in staged.items():
        for got, want in zip(back[name], canonical_series([rows]), strict=True):
            assert np.array_equal(got, want)
    assert done.digest == digest_of({n: canonical_series([r]) for n, r in staged.items()})


def test_finalize_memory_is_bounded_by_the_window(tmp_path):
    n = 1_000_000  # 24 MB of rows
    ticks = np.repeat(np.arange(100), n // 100)
    aais = np.tile(np.arange(n // 100, 0, -1), 100)  # reverse order: every tick needs sorting
    _stage_big = StagingSink(results.staging_path(tmp_path, 0), {"rank": 0, "ranks": 1})
    for s in range(0, n, 1 << 17):
        _stage_big.write(
            "big", ticks[s : s + (1 << 17)], aais[s : s + (1 << 17)], aais[s : s + (1 << 17)] * 1.0
        )
    _stage_big.close()
    del ticks, aais
    tracemalloc.start()
    try:
        done = finalize(tmp_path, window_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done.rows == n
    assert peak < 8 << 20, f"finalize peaked at {peak / 2**20:.1f} MiB for 24 MiB of rows"
    with h5py.File(tmp_path / "results.h5") as f:
        assert f["probes/big/aai"][: n // 100].tolist() == list(range(1, n // 100 + 1))


# --- result specification ----------------------------------------------------------


def test_include_and_exclude_select_probes(tmp_path):
    scen = scenario(tmp_path, "include = ['^l', 'f.ow', 'twice']\nexclude = ['^tw']\nplots = false")
    outcome = run_scenario(load_scenario(scen), out=tmp_path / "r")
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        assert sorted(f["probes"]) == ["flow", "level"]
        assert list(f.attrs["probe_include"]) == ["^l", "f.ow", "twice"]
    assert outcome.probes == 2


def test_an_excluded_probe_allocates_nothing():
    store = ProbeStore(MemorySink(), wanted=probe_filter(exclude=["^noise$"]))
    store.record("kept", 0, 1, 1.0)
    store.declare("noise", unit="dB")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for tick in range(10_000):
            store.record("noise", tick, 1, 0.5)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024
    store.flush()
    assert store._series["noise"] is None  # no buffer: only the "not wanted" mark
    assert "noise" not in store.declarations
    assert "noise" not in store.sink.chunks and store.names == ["kept"]
    assert store.rows == 1


def test_an_excluded_probe_reaches_no_file(tmp_path):
    scen = scenario(tmp_path, "exclude = ['noise']\nplots = true")
    run_scenario(load_scenario(scen), out=tmp_path / "r")
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        assert "noise" not in f["probes"]
    with h5py.File(tmp_path / "r" / "data" / "rank-00000.h5") as f:
        assert "noise" not in f["probes"]
    assert not (tmp_path / "r" / "probe-noise.png").exists()


def test_probe_filter_searches_like_grep():
    assert probe_filter() is None
    wanted = probe_filter(include=["stock", "^cans_"], exclude=["_old$"])
    assert [
        n for n in ("stock", "min_stock", "cans_sold", "my_cans", "stock_old") if wanted(n)
    ] == [
        "stock",
        "min_stock",
        "cans_sold",
    ]


def test_probe_declarations_are_checked():
    store = ProbeStore(MemorySink())
    store.declare("v", unit="m", labels=["x", "y"])
    store.declare("v", unit="m", labels=["x", "y"])  # again, the same: fine
    with pytest.raises(SimulationError, match="declared twice, differently"):
        store.declare("v", unit="cm", labels=["x", "y"])
    with pytest.raises(SimulationError, match="has 2 label"):
        store.record("v", 0, 1, [1.0, 2.0, 3.0])
    with pytest.raises(SimulationError, match="labels must be a list of strings"):
        store.declare("w", labels="xy")
    store.record("s", 0, 1, 1.0)
    with pytest.raises(SimulationError, match="has 1 label"):
        store.declare("s", labels=["only"])


def test_record_array_for_populations():
    store = ProbeStore(MemorySink(), chunk_rows=4)
    store.record_array("density", 3, np.array([0]), np.array([0.5]))
    store.record_array("cells", 3, np.arange(1, 6), np.arange(10.0).reshape(5, 2))
    store.flush()
    assert store.sink.series("density")[2].tolist() == [0.5]
    ticks, aais, values = store.sink.series("cells")
    assert ticks.tolist() == [3] * 5 and aais.tolist() == [1, 2, 3, 4, 5]
    assert values.tolist() == np.arange(10.0).reshape(5, 2).tolist()
    with pytest.raises(SimulationError, match="holds vectors of length 2; got numbers"):
        store.record_array("cells", 4, np.arange(2), np.zeros(2))


def test_kernel_run_keeps_excluded_probes_out_of_the_store(make_kernel):
    from engine import Actor

    class Loud(Actor):
        def on_first_diasca(self):
            self.record("noise", 1.0)
            self.record("signal", 2.0)

    k: Kernel = make_kernel(probes=ProbeStore(MemorySink(), wanted=probe_filter(exclude=["noise"])))
    k.add_actors(Loud, 3)
    k.run()
    assert k.probes.names == ["signal"] and k.probes._series["noise"] is None


# --- plots, info ---------------------------------------------------------------------


def expected_pngs(names: list[str]) -> set[str]:
    return {file_name(n) for n in names} | set(PERFORMANCE_FILES)


def test_plots_one_png_per_probe_and_two_for_performance(tmp_path):
    outcome = run_scenario(load_scenario(scenario(tmp_path, gauges=25)), out=tmp_path / "r")
    names = ["flow", "level", "noise", "spectrum", "total", "twice", "unused"]
    pngs = {p.name for p in (tmp_path / "r").glob("*.png")}
    assert pngs == expected_pngs(names)
    assert {p.name for p in outcome.plots} == pngs
    for name in pngs:
        data = (tmp_path / "r" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plots_can_be_turned_off(tmp_path):
    run_scenario(load_scenario(scenario(tmp_path, "plots = false")), out=tmp_path / "r")
    assert not list((tmp_path / "r").glob("*.png"))


def test_plot_command_redraws_the_chosen_probes(tmp_path):
    run_scenario(load_scenario(scenario(tmp_path, "plots = false")), out=tmp_path / "r")
    proc = cli("plot", str(tmp_path / "r"), "--probe", "^(level|flow)$")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "r").glob("*.png")} == {"probe-level.png", "probe-flow.png"}
    proc = cli("plot", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "r").glob("*.png")} == expected_pngs(
        ["flow", "level", "noise", "spectrum", "total", "twice", "unused"]
    )


def test_info_prints_metadata_probes_and_status(tmp_path):
    outcome = run_scenario(load_scenario(scenario(tmp_path, "plots = false")), out=tmp_path / "r")
    proc = cli("info", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "status                completed\n" in out
    assert "seed                  9\n" in out
    assert "cross_group_fraction  0\n" in out
    assert "flow                     vector[3]    rows         12  value 12x3" in out
    assert "unit m3/s  labels in, out, net" in out
    assert "data files            1 in data/, all present" in out
    assert out.strip().splitlines()[-1] == f"results digest: {outcome.digest}"


@pytest.mark.parametrize("command", ["info", "plot"])
def test_bad_run_folder_is_one_line_exit_2(tmp_path, command):
    (tmp_path / "bad").mkdir()
    for target, why in (
        (tmp_path / "nowhere", "no such folder"),
        (tmp_path, "no results.h5 in it"),
        (write(tmp_path / "bad" / "results.h5", "not hdf5"), "not a readable HDF5 file"),
    ):
        proc = cli(command, str(target))
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and why in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_data_files_are_reported(tmp_path):
    run_scenario(load_scenario(scenario(tmp_path, "plots = false")), out=tmp_path / "r")
    (tmp_path / "r" / "data" / "rank-00000.h5").rename(tmp_path / "elsewhere.h5")
    info = cli("info", str(tmp_path / "r"))
    assert "data files            MISSING 1 of 1: data/rank-00000.h5" in info.stdout
    plot = cli("plot", str(tmp_path / "r"))
    assert plot.returncode == 2 and "keep the data/ folder next to results.h5" in plot.stderr


@pytest.mark.parametrize(
    "span, unit",
    [(30, "s"), (119, "s"), (120, "min"), (7199, "min"), (7200, "h"), (3 * 86400, "d")],
)
def test_time_axis_unit(span, unit):
    assert time_unit(span)[0] == unit


# --- summary, log, progress ----------------------------------------------------------


def test_summary_and_run_log(tmp_path):
    proc = cli("run", str(scenario(tmp_path, "plots = false")), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # a short run prints no progress
    assert "  load imbalance    1.00 (busiest over mean rank kernel time" in proc.stdout
    assert "of rank time in exchange and consensus" in proc.stdout
    log = (tmp_path / "r" / "run.log").read_text()
    assert "results written in" in log
    assert log.rstrip().endswith(proc.stdout.strip().splitlines()[-1])  # the digest line


def test_progress_falls_back_to_plain_lines(capsys, monkeypatch):
    from runtime.cli import _Progress

    monkeypatch.setattr(_Progress, "DELAY_S", 0.0)
    progress = _Progress(stop_tick=200, tick_duration=60.0, live=False)

    class FakeKernel:
        tick = 50
        global_events = 1000

    progress(FakeKernel())
    progress(FakeKernel())  # within LINE_PERIOD_S: nothing more
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("tick 50 (50.00 min simulated), 25.0% of stop tick 200, ETA ")
    assert err[0].endswith(" events/s")
