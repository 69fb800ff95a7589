"""From a run to a figure: plot modes, the Python reading API, run_scenario(path).

Every series a plot draws is compared with a plain reading of the same rows
through h5py, so that a wrong sum, mean, count or histogram fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

from engine import ProbeStore, SimulationError
from runtime import plots, run_scenario
from runtime.results import RunFolderUnreadable, open_run
from runtime.scenario import ScenarioError, load_scenario

MODEL = """
import numpy as np
from engine import Actor


class Animal(Actor):
    \"\"\"Records its energy every tick, a position vector, and its lifespan at death.\"\"\"

    def on_first_diasca(self):
        self.declare_probe("energy", unit="J", plot="sum")
        self.declare_probe("pos", labels=["t", "aai"])
        self.schedule_in(1)

    def act_spontaneous(self):
        t = self.tick
        self.record("energy", float(self.aai % 7) + 0.5 * t)
        self.record("pos", np.array([t, self.aai % 3], dtype=float))
        if t >= 2 + self.aai % 6:
            self.record("lifespan", float(t) + self.random.random())
            self.declare_termination()
        else:
            self.schedule_in(1)
"""


def write_scenario(folder: Path, count: int = 25, results: str = "") -> Path:
    (folder / "animal.py").write_text(MODEL)
    path = folder / "a.toml"
    path.write_text(
        f'[simulation]\nname = "a"\nstop_tick = 12\nseed = 3\n\n'
        f'[[actors]]\nclass = "animal.py:Animal"\ncount = {count}\n\n'
        f'[results]\nplots = false\nplot = {{ lifespan = "events" }}\n{results}'
    )
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("analysis")
    outcome = run_scenario(write_scenario(folder), out=folder / "run")
    assert outcome.status == "completed"
    return outcome.run_dir


def rows(run_dir: Path, name: str):
    with h5py.File(run_dir / "results.h5", "r") as f:
        g = f["probes"][name]
        return g["tick"][()], g["aai"][()], g["value"][()]


def by_tick(run_dir: Path, name: str) -> tuple[list[int], dict, dict]:
    """Sum and count of the rows of each tick, the slow and obvious way."""
    sums: dict[int, float] = defaultdict(float)
    counts: Counter = Counter()
    for t, _, v in zip(*rows(run_dir, name), strict=True):
        sums[int(t)] += float(v)
        counts[int(t)] += 1
    return sorted(counts), sums, counts


def drawn(monkeypatch, run_dir: Path, probe: str, mode: str | None = None) -> list:
    """Draw one probe's figure and return it (it is still saved as a PNG)."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    paths = plots.draw_run(run_dir, probe_pattern=f"^{probe}$", performance=False, mode=mode)
    assert [p.name for p in paths] == [plots.file_name(probe)] and paths[0].stat().st_size
    (fig,) = figures
    return fig.axes


# --- plot modes -----------------------------------------------------------------------


def test_plot_modes_are_stored_with_the_probes(run):
    with h5py.File(run / "results.h5", "r") as f:
        modes = {name: str(g.attrs["plot"]) for name, g in f["probes"].items()}
    # declare_probe(plot="sum"), [results] plot, and nothing said.
    assert modes == {"energy": "sum", "lifespan": "events", "pos": ""}
    assert open_run(run).probe("energy").plot == "sum"


def test_the_scenario_overrides_the_declared_mode(tmp_path):
    scen = write_scenario(tmp_path, count=3, results="")
    scen.write_text(scen.read_text().replace('lifespan = "events"', 'energy = "count"'))
    outcome = run_scenario(scen, out=tmp_path / "r")
    assert open_run(outcome.run_dir).probe("energy").plot == "count"


@pytest.mark.parametrize("mode", ["sum", "mean", "count"])
def test_sum_mean_count_draw_the_rows_of_each_tick(run, monkeypatch, mode):
    ticks, sums, counts = by_tick(run, "energy")
    expected = {
        "sum": [sums[t] for t in ticks],
        "mean": [sums[t] / counts[t] for t in ticks],
        "count": [counts[t] for t in ticks],
    }[mode]
    (ax,) = drawn(monkeypatch, run, "energy", mode)
    (line,) = ax.lines
    assert line.get_ydata() == pytest.approx(expected)
    assert len(set(counts.values())) > 1  # actors die: the count changes, so the test can fail
    x = line.get_xdata()
    assert np.all(np.diff(x) > 0) and len(x) == len(ticks)


def test_the_declared_mode_is_the_default(run, monkeypatch):
    ticks, sums, _ = by_tick(run, "energy")
    (ax,) = drawn(monkeypatch, run, "energy")  # declared plot="sum"
    assert ax.lines[0].get_ydata() == pytest.approx([sums[t] for t in ticks])


def test_vector_sum_is_one_panel_per_component(run, monkeypatch):
    _, _, value = rows(run, "pos")
    axes = drawn(monkeypatch, run, "pos", "sum")
    assert [ax.get_title() for ax in axes] == ["t", "aai"]
    for i, ax in enumerate(axes):
        assert ax.lines[0].get_ydata().sum() == pytest.approx(value[:, i].sum())


def test_events_draw_a_histogram_and_a_cumulative_count(run, monkeypatch):
    ticks, _, values = rows(run, "lifespan")
    hist_ax, cum_ax = drawn(monkeypatch, run, "lifespan")  # events, from [results] plot
    (stairs,) = hist_ax.patches
    counts, edges, _ = stairs.get_data()
    expected, expected_edges = np.histogram(values, bins=40, range=(values.min(), values.max()))
    assert counts.tolist() == expected.tolist() and edges == pytest.approx(expected_edges)
    per_tick = Counter(ticks.tolist())
    cumulative = np.cumsum([per_tick[t] for t in sorted(per_tick)])
    assert cum_ax.lines[0].get_ydata().tolist() == cumulative.tolist()
    assert cumulative[-1] == 25  # every animal died once


def test_bands_even_for_a_few_actors(tmp_path, monkeypatch):
    outcome = run_scenario(write_scenario(tmp_path, count=4), out=tmp_path / "r")
    (ax,) = drawn(monkeypatch, outcome.run_dir, "lifespan", "bands")
    assert len(ax.collections) == 2 and ax.lines[0].get_label() == "median"


def test_a_bad_plot_mode_is_one_clear_line(tmp_path):
    with pytest.raises(SimulationError, match=r"unknown plot mode 'summ'; did you mean sum\?"):
        ProbeStore().declare("sheep", plot="summ")
    scen = write_scenario(tmp_path, results="").read_text()
    (tmp_path / "b.toml").write_text(scen.replace('"events"', '"event"'))
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "b.toml")
    assert str(info.value).endswith(
        '[results] plot.lifespan: unknown plot mode "event"; did you mean events? '
        "plot modes: bands, sum, mean, count, events"
    )
    with pytest.raises(ScenarioError, match="plot.lifespan: got integer 3"):
        load_scenario(tmp_path / "b.toml", ["results.plot={lifespan=3}"])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_cli_plot_mode(run):
    png = run / plots.file_name("lifespan")
    png.unlink(missing_ok=True)
    done = cli("plot", str(run), "--probe", "^lifespan$", "--mode", "count")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(png)] and png.stat().st_size > 0
    info = cli("info", str(run))
    (energy,) = [line for line in info.stdout.splitlines() if line.strip().startswith("energy")]
    assert energy.endswith("unit J  plot sum")
    bad = cli("plot", str(run), "--mode", "medain")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --mode: unknown plot mode 'medain'; did you mean mean? "
        "plot modes: bands, sum, mean, count, events"
    ]


# --- reading a run in Python ---------------------------------------------------------


def test_open_run_gives_metadata_and_probes(run):
    r = open_run(run)
    with h5py.File(run / "results.h5", "r") as f:
        assert r.digest == f.attrs["digest"] and len(r.digest) == 64
        assert r.status == "completed" == f.attrs["status"]
        assert r.probes == sorted(f["probes"]) == ["energy", "lifespan", "pos"]
        assert r.metadata["seed"] == 3 and r.metadata["name"] == "a"
    assert open_run(run / "results.h5").digest == r.digest
    with pytest.raises(LookupError, match="no probe 'energi'; did you mean energy"):
        r.probe("energi")
    with pytest.raises(RunFolderUnreadable, match="no results.h5"):
        open_run(run / "data")


def test_series_matches_the_rows(run):
    ticks, sums, counts = by_tick(run, "energy")
    s = open_run(run).probe("energy").series()
    assert s.tick.tolist() == ticks and len(s) == len(ticks)
    assert s.sum == pytest.approx([sums[t] for t in ticks])
    assert s.count.tolist() == [counts[t] for t in ticks]
    assert s.mean == pytest.approx([sums[t] / counts[t] for t in ticks])
    assert s.time == pytest.approx(np.array(ticks) * 1.0)
    v = open_run(run).probe("pos").series()
    assert v.sum.shape == (len(ticks), 2)


def test_per_actor_matrix(run):
    tick, aai, value = rows(run, "energy")
    ticks, aais, matrix = open_run(run).probe("energy").per_actor()
    assert matrix.shape == (len(set(tick.tolist())), 25) and aais.tolist() == sorted(set(aai))
    for t, a, v in zip(tick, aai, value, strict=True):
        assert matrix[np.searchsorted(ticks, t), np.searchsorted(aais, a)] == v
    assert np.isnan(matrix).sum() == matrix.size - tick.shape[0]  # the dead record nothing


def test_to_pandas(run):
    pd = pytest.importorskip("pandas")
    probe = open_run(run).probe("pos")
    frame = probe.to_pandas()
    tick, aai, value = rows(run, "pos")
    # The labels are t and aai: aai would clash with the AAI column, so value_<i>.
    assert list(frame.columns) == ["tick", "time", "aai", "value_0", "value_1"]
    assert frame["tick"].tolist() == tick.tolist() and frame["aai"].tolist() == aai.tolist()
    assert frame["value_1"].tolist() == value[:, 1].tolist()
    per_tick = open_run(run).probe("energy").series().to_pandas()
    assert isinstance(per_tick, pd.DataFrame) and per_tick.index.name == "tick"
    assert per_tick["count"].sum() == rows(run, "energy")[0].shape[0]


def test_to_pandas_without_pandas_says_how_to_get_it(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(ImportError, match="needs pandas.*pip install pandas"):
        open_run(run).probe("energy").to_pandas()


# --- running from Python -------------------------------------------------------------


def test_run_scenario_returns_the_digest_the_cli_prints(tmp_path):
    scen = write_scenario(tmp_path, count=5)
    done = cli("run", str(scen), "--seed", "7", "--out", str(tmp_path / "cli"))
    assert done.returncode == 0, done.stderr
    printed = re.search(r"^results digest: ([0-9a-f]{64})$", done.stdout, re.MULTILINE)
    assert printed is not None
    by_map = run_scenario(scen, {"simulation.seed": 7}, out=tmp_path / "map")
    by_list = run_scenario(str(scen), ["simulation.seed=7"], out=tmp_path / "list")
    other = run_scenario(scen, {"simulation.seed": 8}, out=tmp_path / "other")
    assert by_map.digest == by_list.digest == printed.group(1) != other.digest
    assert by_map.run_dir == tmp_path / "map" and by_map.status == "completed"
    assert open_run(by_map.run_dir).digest == by_map.digest


def test_run_scenario_bad_override(tmp_path):
    scen = write_scenario(tmp_path, count=2)
    with pytest.raises(ScenarioError, match=r"unknown key of \[simulation\]; did you mean seed"):
        run_scenario(scen, {"simulation.sed": 7}, out=tmp_path / "r")
    with pytest.raises(ScenarioError, match=r"\[simulation\] seed: got string \"seven\""):
        run_scenario(scen, {"simulation.seed": "seven"}, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_per_tick_is_the_same_read_in_small_blocks(run):
    from runtime.results import per_tick

    with h5py.File(run / "results.h5", "r") as f:
        for name in ("energy", "pos"):
            whole = per_tick(f["probes"][name])
            blocks = per_tick(f["probes"][name], block=7)  # ticks span blocks
            for a, b in zip(whole, blocks, strict=True):
                assert np.allclose(a, b) and a.shape == b.shape


def test_plot_modes_survive_staging_for_recover(tmp_path):
    from engine.probes import ProbeDeclaration
    from runtime.staging import Staged, StagingSink

    sink = StagingSink(tmp_path / "s.bin", {"rank": 0, "ranks": 1})
    sink.mark(3, {"sheep": ProbeDeclaration("animals", (), "sum")})
    sink.close()
    staged = Staged(tmp_path / "s.bin")
    try:
        assert staged.declarations == {"sheep": ("animals", [], "sum")}
    finally:
        staged.close()


def test_a_plot_mode_for_a_probe_never_recorded_adds_no_probe():
    store = ProbeStore(plot_modes={"wolves": "count", "sheep": "sum"})
    store.declare("grass", unit="kg")
    store.record("sheep", 1, 5, 2.0)
    modes = {name: d.plot for name, d in store.declarations.items()}
    assert modes == {"grass": "", "sheep": "sum"}


def test_plot_modes_on_two_ranks(run, tmp_path):
    done = cli("run", str(run.parent / "a.toml"), "--ranks", "2", "--out", str(tmp_path / "r2"))
    assert done.returncode == 0, done.stderr
    two = open_run(tmp_path / "r2")
    assert two.digest == open_run(run).digest
    assert {name: two.probe(name).plot for name in two.probes} == {
        "energy": "sum",
        "lifespan": "events",
        "pos": "",
    }
