"""Whole runs through the runner and the CLI: run folders, results.h5, digests, statuses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

from runtime.digest import digest_of
from runtime.results import read_probes
from runtime.runner import run_scenario
from runtime.scenario import load_scenario

DIGEST = re.compile(r"^results digest: ([0-9a-f]{64})$", re.M)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def last_digest(proc: subprocess.CompletedProcess) -> str:
    last = proc.stdout.strip().splitlines()[-1]
    match = DIGEST.match(last)
    assert match, f"last line is not the digest: {last!r}\n{proc.stderr}"
    return match.group(1)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


PHOLD_SMALL = """
[simulation]
name = "phold-small"
stop_tick = 40
seed = {seed}
mode = "{mode}"

[[actors]]
id = "lp"
class = "models.phold:LP"
count = 200
args = {{ n_lps = 200, remote = 0.5, mean = 2.0, record_every = 5 }}
"""


def test_phold_twice_gives_the_same_digest(tmp_path):
    a = cli("run", "scenarios/phold.toml", "--stop-tick", "30", "--out", str(tmp_path / "a"))
    b = cli("run", "scenarios/phold.toml", "--stop-tick", "30", "--out", str(tmp_path / "b"))
    assert a.returncode == 0, a.stderr
    assert last_digest(a) == last_digest(b)
    for line in ("ticks evaluated", "diascas", "messages", "actors", "wall time", "results folder"):
        assert line in a.stdout


def test_ergodic_replays_with_its_seed_and_differs_with_another(tmp_path):
    scen = write(tmp_path / "p.toml", PHOLD_SMALL.format(seed=3, mode="ergodic"))
    runs = [
        cli("run", str(scen), "--seed", str(seed), "--out", str(tmp_path / f"r{i}"))
        for i, seed in enumerate((11, 11, 12))
    ]
    digests = [last_digest(r) for r in runs]
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_ergodic_without_seed_logs_the_seed_it_drew(tmp_path):
    text = PHOLD_SMALL.format(seed=0, mode="ergodic").replace("seed = 0\n", "")
    scen = write(tmp_path / "p.toml", text)
    first = cli("run", str(scen), "--out", str(tmp_path / "a"))
    match = re.search(r"ergodic seed: (\d+) \(replay with --seed \1\)", first.stdout)
    assert match, first.stdout
    replay = cli("run", str(scen), "--seed", match.group(1), "--out", str(tmp_path / "b"))
    assert last_digest(first) == last_digest(replay)
    with h5py.File(tmp_path / "a" / "results.h5") as f:
        assert int(f.attrs["seed"]) == int(match.group(1))


def test_reproducible_and_ergodic_differ(tmp_path):
    rep = write(tmp_path / "r.toml", PHOLD_SMALL.format(seed=3, mode="reproducible"))
    erg = write(tmp_path / "e.toml", PHOLD_SMALL.format(seed=3, mode="ergodic"))
    a = run_scenario(load_scenario(rep), out=tmp_path / "a")
    b = run_scenario(load_scenario(erg), out=tmp_path / "b")
    assert a.digest != b.digest


RECORDER = """
from engine import Actor
import numpy as np

class Recorder(Actor):
    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("scalar", self.aai * 10 + self.tick)
        self.record("vector", np.array([self.tick, self.aai, 0.5]))
        if self.tick < 4:
            self.schedule_in(1)
"""


def test_results_file_holds_what_was_recorded(tmp_path):
    write(tmp_path / "rec.py", RECORDER)
    scen = write(
        tmp_path / "rec.toml",
        '[simulation]\nname = "rec"\nstop_tick = 10\nseed = 5\n\n'
        '[[actors]]\nclass = "rec.py:Recorder"\ncount = 3\n',
    )
    outcome = run_scenario(load_scenario(scen), out=tmp_path / "run")
    run = tmp_path / "run"
    assert (run / "scenario.toml").read_text() == scen.read_text()
    assert (run / "run.log").exists()
    with h5py.File(run / "results.h5") as f:
        assert f.attrs["scenario"] == scen.read_text()
        assert f.attrs["status"] == "completed"
        assert int(f.attrs["seed"]) == 5 and f.attrs["mode"] == "reproducible"
        assert f.attrs["digest"] == outcome.digest
        for key in ("pydiasca_version", "python_version", "numpy_version", "h5py_version"):
            assert f.attrs[key]
        scalar = f["probes/scalar"]
        expected = [(t, a) for t in range(1, 5) for a in (1, 2, 3)]
        assert list(zip(scalar["tick"][()], scalar["aai"][()], strict=True)) == expected
        assert scalar["value"][()].tolist() == [a * 10 + t for t, a in expected]
        vec = f["probes/vector"]["value"][()]
        assert vec.shape == (12, 3)
        assert vec.tolist() == [[t, a, 0.5] for t, a in expected]
    # The digest printed and stored is the digest of what the file holds.
    assert digest_of(read_probes(run / "results.h5")) == outcome.digest


BROKEN = """
from engine import Actor

class Fragile(Actor):
    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("alive", self.tick)
        if self.tick == 3:
            raise RuntimeError("valve stuck")
        self.schedule_in(1)
"""


def test_model_failure_keeps_results_and_reports(tmp_path):
    write(tmp_path / "fragile.py", BROKEN)
    scen = write(
        tmp_path / "f.toml",
        '[simulation]\nname = "f"\nstop_tick = 10\n\n[[actors]]\nclass = "fragile.py:Fragile"\n',
    )
    proc = cli("run", str(scen), "--out", str(tmp_path / "run"))
    assert proc.returncode == 1
    assert (
        "error: model failure in actor 1 (Fragile), act_spontaneous, at tick 3 diasca 0 on "
        "rank 0: RuntimeError: valve stuck" in proc.stderr
    )
    assert "valve stuck" in (tmp_path / "run" / "failure.txt").read_text()
    with h5py.File(tmp_path / "run" / "results.h5") as f:
        assert f.attrs["status"] == "failed"
        assert f["probes/alive/tick"][()].tolist() == [1, 2, 3]
        assert "Traceback" in f.attrs["failure"]
        partial = f"partial results digest (failed at tick 3): {f.attrs['digest']}"
    # Neither the run nor 'pydiasca info' ends with a line a script takes for a finished run's.
    assert proc.stderr.strip().splitlines()[-1] == partial
    info = cli("info", str(tmp_path / "run"))
    assert info.stdout.strip().splitlines()[-1] == partial
    assert not DIGEST.search(proc.stdout + proc.stderr + info.stdout)


SLOW = """
import time
from engine import Actor

class Slow(Actor):
    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("tick", self.tick)
        time.sleep(0.02)
        self.schedule_in(1)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_leaves_a_readable_interrupted_run(tmp_path, signum):
    write(tmp_path / "slow.py", SLOW)
    scen = write(
        tmp_path / "s.toml",
        '[simulation]\nname = "s"\nstop_tick = 100000\n\n[[actors]]\nclass = "slow.py:Slow"\n',
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "run", str(scen), "--out", str(tmp_path / "run")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "run" / ".staging-rank0.bin").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with h5py.File(tmp_path / "run" / "results.h5") as f:
        assert f.attrs["status"] == "interrupted"
        ticks = f["probes/tick/tick"][()]
        assert len(ticks) >= 5
        assert np.array_equal(ticks, np.arange(1, len(ticks) + 1))
        assert int(f.attrs["last_tick"]) == ticks[-1]
        expected = f"partial results digest (interrupted at tick {ticks[-1]}): {f.attrs['digest']}"
    # The digest of an unfinished run must not pass for a finished one's.
    assert out.strip().splitlines()[-1] == expected
    assert not DIGEST.search(out)


def test_unwritable_output_is_reported_before_the_run(tmp_path):
    blocker = write(tmp_path / "file", "not a folder")
    proc = cli("run", "scenarios/soda.toml", "--out", str(blocker / "run"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {blocker / 'run'}: cannot write the run folder")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_existing_run_folder_is_never_overwritten(tmp_path):
    first = cli("run", "scenarios/soda.toml", "--out", str(tmp_path / "run"))
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "run" / "results.h5").read_bytes()
    second = cli("run", "scenarios/soda.toml", "--out", str(tmp_path / "run"))
    assert second.returncode == 2
    assert "already holds a run" in second.stderr
    assert (tmp_path / "run" / "results.h5").read_bytes() == before


def test_overrides_from_the_command_line(tmp_path):
    scen = write(tmp_path / "p.toml", PHOLD_SMALL.format(seed=3, mode="reproducible"))
    base = cli("run", str(scen), "--out", str(tmp_path / "a"))
    via_set = cli("run", str(scen), "--set", "simulation.seed=4", "--out", str(tmp_path / "b"))
    via_flag = cli("run", str(scen), "--seed", "4", "--out", str(tmp_path / "c"))
    short = cli("run", str(scen), "--stop-tick", "10", "--out", str(tmp_path / "d"))
    assert last_digest(via_set) == last_digest(via_flag) != last_digest(base)
    assert "last tick 9," in short.stdout


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--mode", "fast", 'got string "fast"; expected one of reproducible, ergodic, fastest'),
        ("--routing", "ring", 'got string "ring"; expected one of direct, s_group'),
        ("--seed", "-2", "got integer -2; expected a whole number >= 0"),
    ],
)
def test_a_bad_flag_value_is_one_line_naming_the_flag(flag, value, expected, tmp_path):
    proc = cli("run", "scenarios/soda.toml", flag, value, "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr == f"error: {flag}: {expected}\n"
    assert not (tmp_path / "r").exists()


def test_stop_tick_flag_shortens_a_scenario_that_gives_a_duration(tmp_path):
    text = PHOLD_SMALL.format(seed=3, mode="reproducible")
    scen = write(tmp_path / "p.toml", text.replace("stop_tick = 40", "duration = '40s'"))
    proc = cli("run", str(scen), "--stop-tick", "10", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "last tick 9," in proc.stdout
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        assert int(f.attrs["stop_tick"]) == 10


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0
    assert re.fullmatch(r"pydiasca \d+\.\d+\.\d+\n", proc.stdout)


def test_default_run_folder_is_named_after_the_scenario(tmp_path):
    scen = write(tmp_path / "p.toml", PHOLD_SMALL.format(seed=3, mode="reproducible"))
    proc = cli("run", str(scen), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "results").iterdir()
    assert re.fullmatch(r"phold-small-\d{8}T\d{6}\.\d{6}Z", run.name)
    assert (run / "results.h5").exists()


BRIEF = """
from engine import Actor

class Brief(Actor):
    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("tick", self.tick)
        if self.tick < 3:
            self.schedule_in(1)
"""


@pytest.mark.parametrize("stop", ["", "stop_tick = 10\n"])
def test_a_run_without_stop_tick_is_warned_about_once(tmp_path, stop):
    write(tmp_path / "brief.py", BRIEF)
    scen = write(
        tmp_path / "s.toml",
        f'[simulation]\nname = "s"\n{stop}\n[[actors]]\nclass = "brief.py:Brief"\ncount = 3\n'
        f"\n[results]\nplots = false\n",
    )
    proc = cli("run", str(scen), "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    warning = "warning: no stop tick: this run ends only when nothing is planned"
    log = (tmp_path / "run" / "run.log").read_text()
    if stop:
        assert "warning" not in proc.stderr and "no stop tick" not in log
    else:
        assert proc.stderr.count(warning) == 1, proc.stderr
        assert "no stop tick: this run ends only when nothing is planned" in log
    last_digest(proc)  # the run completed: a plain digest line
