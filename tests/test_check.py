"""``pydiasca check`` and the warning about mutable objects that two actors share.

The model of tests/data/visitors.py records, at every tick, how many guests
its list has seen: ``Guest`` shares one list through a mutable default
argument, ``Host`` has its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from engine import Actor
from runtime.check import _first_divergence
from runtime.launch import find_mpiexec
from runtime.runner import run_scenario
from runtime.scenario import load_scenario

DATA = ROOT / "tests" / "data"
needs_mpi = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec (pip install mpich)")
DIGEST = re.compile(r"^  on (1 rank|\d ranks): +results digest ([0-9a-f]{64})$", re.M)
sys.path.insert(0, str(DATA))
from visitors import Guest, Host  # noqa: E402


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@needs_mpi
def test_check_finds_where_a_shared_default_diverges():
    proc = cli("check", DATA / "guests.toml", "--ticks", 4)
    out = proc.stdout
    assert proc.returncode == 3, proc.stdout + proc.stderr
    # Tick 1: on 1 rank guest 2 is the second to add itself to the one shared list;
    # on 2 ranks it is alone on rank 1 (round robin), so its list has one entry.
    assert (
        "layouts differ: first divergence at tick 1, probe 'seen', actor 2 (Guest, id 'guest-1')"
        in out
    )
    assert re.search(r"^  on 1 rank: +value 2$", out, re.M)
    assert re.search(r"^  on 2 ranks: +value 1$", out, re.M)
    assert "mutable default argument" in out and "hash() of a str" in out
    digests = dict(DIGEST.findall(out))
    assert set(digests) == {"1 rank", "2 ranks"} and len(set(digests.values())) == 2
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, out
    assert warnings[0].startswith(
        "warning: Guest.seen: actors 1 (Guest, id 'guest-0') and 2 (Guest, id 'guest-1') "
        "hold the same list object"
    )


@needs_mpi
def test_check_passes_a_correct_model_and_keeps_runs_when_asked(tmp_path):
    proc = cli("check", DATA / "hosts.toml", "--ticks", 4, "--ranks", "2,3", "--keep", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digests = dict(DIGEST.findall(proc.stdout))
    assert set(digests) == {"1 rank", "2 ranks", "3 ranks"}
    assert len(set(digests.values())) == 1
    assert "all layouts agree" in proc.stdout and "warning" not in proc.stdout + proc.stderr
    for r in (1, 2, 3):
        assert (tmp_path / f"ranks-{r}" / "results.h5").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--ranks", "0"], "--ranks: expected numbers of ranks"),
        (["--ranks", "2,x"], "--ranks: expected numbers of ranks"),
        (["--ticks", "0"], "--ticks: expected a whole number >= 1"),
        (["--set", "simulation.nope=1"], "nope"),
    ],
)
def test_check_bad_input_is_one_line(args, expected):
    proc = cli("check", DATA / "hosts.toml", *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _series(rows):
    ticks, aais, values = zip(*rows, strict=True) if rows else ((), (), ())
    return (np.array(ticks, np.int64), np.array(aais, np.int64), np.array(values, np.float64))


def test_first_divergence_is_the_first_differing_row_of_any_probe():
    same = _series([(1, 1, 0.5), (1, 2, np.nan), (2, 1, 1.0)])
    a = {"a": same, "b": _series([(1, 3, 1.0), (3, 1, 2.0)])}
    assert _first_divergence(a, dict(a)) is None  # NaN equals NaN, bit for bit
    b = {"a": _series([(1, 1, 0.5), (1, 2, np.nan), (2, 1, 1.5)]), "b": a["b"]}
    d = _first_divergence(a, b)
    assert (d.tick, d.probe, d.aai, d.reference, d.other) == (2, "a", 1, ["1"], ["1.5"])
    c = {"a": same, "b": _series([(1, 3, 1.0)])}  # a row missing on one side
    d = _first_divergence(a, c)
    assert (d.tick, d.probe, d.aai, d.other) == (3, "b", 1, [])
    e = {**a, "c": _series([(0, 4, 1.0)])}  # a probe only one run has
    d = _first_divergence(a, e)
    assert (d.tick, d.probe, d.aai) == (0, "c", 4)


class Shelf(Actor):
    __slots__ = ("books",)
    grid = np.zeros(3)

    def __init__(self) -> None:
        self.books = {}
        self.cells = Shelf.grid  # a class attribute: every shelf holds the same array


def test_shared_objects_are_found_once_per_class_and_attribute(make_kernel):
    kernel = make_kernel(stop_tick=2)
    kernel.add_actors(Host, 3)
    kernel.add_actors(Guest, 4)
    kernel.add_actors(Shelf, 2)
    kernel.run()
    found = sorted((s.cls.__name__, s.attribute, s.kind, s.other_aai, s.aai) for s in kernel.shared)
    assert found == [("Guest", "seen", "list", 4, 5), ("Shelf", "cells", "ndarray", 8, 9)]
    quiet = make_kernel(stop_tick=2, check_sharing=False)
    quiet.add_actors(Guest, 4)
    quiet.run()
    assert quiet.shared == []


@pytest.mark.parametrize(("name", "warned"), [("guests", True), ("hosts", False)])
def test_a_run_warns_about_shared_state_on_stderr_and_in_its_log(tmp_path, capsys, name, warned):
    scenario = load_scenario(DATA / f"{name}.toml", ["results.plots=false"])
    outcome = run_scenario(scenario, out=tmp_path / "run")
    err = capsys.readouterr().err
    log = (outcome.run_dir / "run.log").read_text()
    text = "Guest.seen: actors 1 (Guest, id 'guest-0') and 2 (Guest, id 'guest-1')"
    assert err.count(text) == (1 if warned else 0), err
    assert log.count(text) == (1 if warned else 0)
    assert "warning" not in err if not warned else err.startswith("warning: ")


_LATE = []


class Late(Actor):
    """Only actors from AAI 5 on share a list: a sample of the first 3 cannot see it."""

    def __init__(self) -> None:
        self.items = _LATE if self.aai >= 5 else []


@pytest.mark.parametrize(("full_scan", "found"), [(100, True), (10, False)])
def test_beyond_full_scan_only_a_sample_is_looked_at(make_kernel, monkeypatch, full_scan, found):
    import engine.sharing

    monkeypatch.setattr(engine.sharing, "FULL_SCAN", full_scan)
    monkeypatch.setattr(engine.sharing, "SAMPLE", 3)
    kernel = make_kernel(stop_tick=2)
    kernel.add_actors(Late, 12)
    kernel.add_actors(Guest, 4)  # shared from the first actors on: the sample finds it
    kernel.run()
    names = sorted(s.cls.__name__ for s in kernel.shared)
    assert names == (["Guest", "Late"] if found else ["Guest"])
