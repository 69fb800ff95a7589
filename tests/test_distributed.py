"""Real multi-rank runs under mpiexec: the results digest never depends on the layout.

Every run here is a separate ``mpiexec`` job of at most 4 ranks on small
scenarios. The reference is the single-process digest of the same scenario.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import h5py
import pytest
from conftest import ROOT

from runtime.launch import find_mpiexec

MPIEXEC = find_mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")

SODA = ROOT / "scenarios" / "soda-stochastic.toml"
PHOLD = ROOT / "tests" / "data" / "phold-small.toml"
WANDERERS = ROOT / "tests" / "data" / "wanderers.toml"
DIGEST = re.compile(r"^results digest: ([0-9a-f]{64})$", re.M)


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONHASHSEED", None)  # each rank gets its own salt: nothing may depend on it
    return env


def pydiasca(args: list[str], ranks: int = 1, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "runtime.cli", *args]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=timeout
    )


def digest_of_run(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = DIGEST.findall(proc.stdout)
    assert len(found) == 1, proc.stdout  # printed once, by rank 0 only
    assert proc.stdout.strip().splitlines()[-1].startswith("results digest: ")
    return found[0]


_counter = iter(range(10**6))


def run(scenario: Path, tmp: Path, ranks: int = 1, *extra: str) -> str:
    out = tmp / f"run{next(_counter)}"
    return digest_of_run(pydiasca(["run", str(scenario), "--out", str(out), *extra], ranks))


@cache
def reference(scenario: Path, tmp: Path) -> str:
    return run(scenario, tmp)


LAYOUTS = [
    (2, ()),
    (3, ()),
    (4, ()),
    (4, ("--group-size", "1", "--routing", "direct")),
    (4, ("--group-size", "1", "--routing", "s_group")),
    (4, ("--group-size", "2", "--routing", "s_group")),
    (3, ("--group-size", "2", "--routing", "s_group")),
    (2, ("--placement", "hint")),
    (3, ("--placement", "least_loaded", "--group-size", "2", "--routing", "s_group")),
    (4, ("--placement", "graph", "--group-size", "2", "--routing", "s_group")),
    (3, ("--placement", "graph", "--group-size", "1", "--routing", "direct")),
    (4, ("--placement", "hint", "--group-size", "2", "--routing", "direct")),
]


@pytest.mark.parametrize("scenario", [SODA, PHOLD, WANDERERS], ids=lambda p: p.stem)
@pytest.mark.parametrize("ranks, extra", LAYOUTS, ids=lambda v: str(v))
def test_digest_is_identical_whatever_the_layout(scenario, ranks, extra, tmp_path_factory):
    ref = reference(scenario, tmp_path_factory.getbasetemp())
    assert run(scenario, tmp_path_factory.mktemp("mpi"), ranks, *extra) == ref


def test_ranks_flag_and_mpiexec_give_the_single_rank_digest(tmp_path):
    ref = run(PHOLD, tmp_path)
    via_flag = digest_of_run(
        pydiasca(["run", str(PHOLD), "--ranks", "2", "--out", str(tmp_path / "f")])
    )
    via_mpiexec = run(PHOLD, tmp_path, 2)
    assert via_flag == via_mpiexec == ref


def test_multi_rank_run_folder_and_placement_report(tmp_path):
    proc = pydiasca(
        ["run", str(WANDERERS), "--out", str(tmp_path / "r"), "--group-size", "2"], ranks=4
    )
    digest = digest_of_run(proc)
    assert "crossed ranks" in proc.stdout and "actors per group" in proc.stdout
    assert not list((tmp_path / "r").glob(".staging-*"))
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        assert f.attrs["digest"] == digest
        assert int(f.attrs["ranks"]) == 4 and int(f.attrs["groups"]) == 2
        assert f.attrs["status"] == "completed"
        per_rank = list(f.attrs["actors_per_rank"])
        assert len(per_rank) == 4 and all(n > 0 for n in per_rank)
        assert 0.0 < float(f.attrs["cross_rank_fraction"]) <= 1.0
        created, deleted = int(f.attrs["created"]), int(f.attrs["deleted"])
        assert created > 0 and deleted > 0
        assert sum(per_rank) == int(f.attrs["initial_actors"]) + created - deleted


FAILING = """
[simulation]
name = "failing"
stop_tick = 50

[deployment]
watchdog_s = {watchdog}

[[actors]]
class = "trouble.py:Trouble"
count = 4
args = {{ culprit = 3, what = "{what}" }}
"""

TROUBLE = """
import time
from engine import Actor

class Trouble(Actor):
    def __init__(self, culprit, what):
        self.culprit = culprit
        self.what = what

    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("alive", self.tick)
        if self.aai == self.culprit and self.tick == 5:
            if self.what == "raise":
                raise RuntimeError("pressure too high")
            time.sleep(60)
        self.schedule_in(1)
"""


def _trouble(tmp_path: Path, what: str, watchdog: float) -> Path:
    (tmp_path / "trouble.py").write_text(TROUBLE)
    scen = tmp_path / "t.toml"
    scen.write_text(FAILING.format(what=what, watchdog=watchdog))
    return scen


def test_model_exception_on_one_rank_stops_every_rank(tmp_path):
    scen = _trouble(tmp_path, "raise", 60)
    start = time.monotonic()
    proc = pydiasca(["run", str(scen), "--out", str(tmp_path / "r")], ranks=3, timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    # Actor 3 lives on rank 2 under round-robin; rank 0 reports it with its context.
    assert (
        "error: model failure in actor 3 (Trouble), act_spontaneous, at tick 5 diasca 0 "
        "on rank 2: RuntimeError: pressure too high" in proc.stderr
    )
    assert "Traceback" in proc.stderr
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        assert f.attrs["status"] == "failed"
        assert sorted(set(f["probes/alive/tick"][()].tolist())) == [1, 2, 3, 4, 5]


def test_watchdog_names_the_silent_rank(tmp_path):
    scen = _trouble(tmp_path, "sleep", 2)
    start = time.monotonic()
    proc = pydiasca(["run", str(scen), "--out", str(tmp_path / "r")], ranks=3, timeout=90)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 40, elapsed
    assert re.search(r"watchdog: rank\(s\) 2 did not report for tick 5 diasca 0", proc.stderr), (
        proc.stderr
    )
