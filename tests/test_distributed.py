"""Real multi-rank runs under mpiexec: the results digest never depends on the layout.

Every run here is a separate ``mpiexec`` job of at most 4 ranks on small
scenarios. The reference is the single-process digest of the same scenario.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

from runtime.launch import find_mpiexec
from runtime.plots import PERFORMANCE_FILES

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
        names = list(f["probes"])
    # The ranks drew the plots between them: one PNG per probe, two of performance.
    pngs = {p.name for p in (tmp_path / "r").glob("*.png")}
    assert pngs == {f"probe-{n}.png" for n in names} | set(PERFORMANCE_FILES)


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
        assert f["performance/wall_s"].shape[0] == 3  # one row per rank


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


# --- results.h5 from every rank -------------------------------------------------------


def _probe_content(path: Path) -> dict:
    with h5py.File(path) as f:
        return {
            name: (
                *(g[k][()] for k in ("tick", "aai", "value")),
                {k: str(v) for k, v in g.attrs.items()},
            )
            for name, g in f["probes"].items()
        }


def test_results_file_is_identical_on_1_to_4_ranks(tmp_path):
    """Tiny windows spread every probe over every rank's data file; results.h5 reads the same."""
    env = {**_env(), "PYDIASCA_WINDOW_BYTES": "2000"}
    contents, digests = {}, {}
    for ranks in (1, 2, 3, 4):
        out = tmp_path / f"r{ranks}"
        cmd = [sys.executable, "-m", "runtime.cli", "run", str(WANDERERS), "--out", str(out)]
        cmd += ["--set", "results.plots=false"]
        if ranks > 1:
            cmd = [MPIEXEC, "-n", str(ranks), *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
        digests[ranks] = digest_of_run(proc)
        contents[ranks] = _probe_content(out / "results.h5")
        files = sorted(p.name for p in (out / "data").iterdir())
        assert files == [f"rank-{r:05d}.h5" for r in range(ranks)]
        with h5py.File(out / "results.h5") as f:
            assert f.attrs["digest"] == digests[ranks] and int(f.attrs["ranks"]) == ranks
            owners = {s.file_name for s in f["probes/seen/value"].virtual_sources()}
            assert owners == {f"data/{name}" for name in files}  # every rank wrote a share
            perf = f["performance"]
            n = perf["tick"].shape[0]
            assert n == int(f.attrs["ticks"])
            for key in ("wall_s", "diascas", "sent", "received", "crossing", "actors"):
                assert perf[key].shape == (ranks, n)
            assert np.array_equal(perf["all_ranks/actors"][()], perf["actors"][()].sum(axis=0))
            assert perf["all_ranks/imbalance"].shape == (n,)
            assert float(perf.attrs["imbalance"]) >= 1.0
            assert 0.0 <= float(perf.attrs["communication_share"]) <= 1.0
        assert "load imbalance" in proc.stdout and "communication" in proc.stdout
    assert len(set(digests.values())) == 1
    reference = contents[1]
    for ranks in (2, 3, 4):
        assert contents[ranks].keys() == reference.keys()
        for name, (t, a, v, attrs) in reference.items():
            t2, a2, v2, attrs2 = contents[ranks][name]
            assert np.array_equal(t, t2) and np.array_equal(a, a2), (ranks, name)
            assert np.array_equal(v, v2), (ranks, name)
            assert attrs == attrs2, (ranks, name)


SLOW = """
import time
from engine import Actor

class Slow(Actor):
    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("tick", self.tick)
        time.sleep(0.01)
        self.schedule_in(1)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_mpiexec_leaves_an_interrupted_run(tmp_path, signum):
    (tmp_path / "slow.py").write_text(SLOW)
    scen = tmp_path / "s.toml"
    scen.write_text(
        '[simulation]\nname = "s"\nstop_tick = 100000\n\n'
        '[[actors]]\nclass = "slow.py:Slow"\ncount = 4\n\n[results]\nplots = false\n'
    )
    run_dir = tmp_path / "run"
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "runtime.cli", "run", str(scen)]
    proc = subprocess.Popen(
        [*cmd, "--out", str(run_dir)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / ".staging-rank1.bin").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signum)  # to mpiexec, which forwards it to both ranks
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run interrupted" in out and not DIGEST.findall(out)  # not a finished run's line
    assert re.search(
        r"^partial results digest \(interrupted at tick \d+\): [0-9a-f]{64}$", out, re.M
    )
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "interrupted"
        last = int(f.attrs["last_tick"])
        ticks, aais = f["probes/tick/tick"][()], f["probes/tick/aai"][()]
        # Every actor recorded every tick up to the last completed one, in canonical order.
        assert last >= 5
        assert np.array_equal(ticks, np.repeat(np.arange(1, last + 1), 4))
        assert np.array_equal(aais, np.tile([1, 2, 3, 4], last))
        assert f["performance/wall_s"].shape == (2, int(f.attrs["ticks"]))
    assert not list(run_dir.glob(".staging-*"))
