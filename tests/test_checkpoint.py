"""Checkpoints and ``pydiasca resume``: a resumed run ends with the uninterrupted run's digest.

Runs with checkpoints keep many of them (``keep``); resuming from an earlier
one is done on a copy of the run folder without the newer checkpoints, so
that one run gives a resume from every checkpoint tick. Multi-rank runs are
real ``mpiexec`` jobs of at most 4 ranks on small scenarios.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from conftest import ROOT
from test_distributed import DIGEST, MPIEXEC, digest_of_run, pydiasca

from runtime.checkpoint import MANIFEST, checkpoints

SODA = ROOT / "scenarios" / "soda.toml"
STOCHASTIC = ROOT / "scenarios" / "soda-stochastic.toml"
HEAT = ROOT / "scenarios" / "heat-small.toml"
EPIDEMIC = ROOT / "scenarios" / "epidemic-small.toml"
QUIET = ("--set", "results.plots=false")
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def run(scenario: Path, out: Path, ranks: int = 1, *extra: str) -> str:
    return digest_of_run(pydiasca(["run", str(scenario), "--out", str(out), *QUIET, *extra], ranks))


def resume(run_dir: Path, ranks: int = 1, *extra: str) -> str:
    return digest_of_run(pydiasca(["resume", str(run_dir), *extra], ranks))


def from_tick(run_dir: Path, tick: int, copy: Path) -> Path:
    """A copy of ``run_dir`` whose newest checkpoint is that of ``tick``."""
    shutil.copytree(run_dir, copy)
    for t, folder in checkpoints(copy):
        if t > tick:
            shutil.rmtree(folder)
    return copy


def ticks_of(run_dir: Path) -> list[int]:
    return sorted(t for t, _ in checkpoints(run_dir))


def resumes_match(scenario, tmp, before, after, every, *extra, picks=None) -> None:
    reference = run(scenario, tmp / "reference", 1, *extra)
    run_dir = tmp / "checkpointed"
    keep = ("--set", "checkpoint.keep=100", "--checkpoint-every", str(every))
    assert run(scenario, run_dir, before, *extra, *keep) == reference
    ticks = ticks_of(run_dir)
    assert len(ticks) >= 2, ticks
    for tick in ticks if picks is None else [ticks[i] for i in picks]:
        copy = from_tick(run_dir, tick, tmp / f"from-{tick}")
        assert resume(copy, after) == reference, f"resumed from tick {tick}"
        assert ticks_of(copy)[0] <= tick  # the resumed run took its own checkpoints after it


# --- one process -----------------------------------------------------------------


def test_resume_from_every_checkpoint_with_creation_and_termination(tmp_path):
    resumes_match(SODA, tmp_path, 1, 1, 4000)


def test_checkpoints_keep_the_newest_and_the_manifest_describes_them(tmp_path):
    run(SODA, tmp_path / "run", 1, "--checkpoint-every", "3000")
    folders = checkpoints(tmp_path / "run")
    assert len(folders) == 2  # keep = 2 by default
    tick, folder = folders[0]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["tick"] == tick and manifest["format"] == 3 and manifest["ranks"] == 1
    assert [p["file"] for p in manifest["parts"]] == ["rank-0.part"]
    with h5py.File(tmp_path / "run" / "results.h5") as f:  # rows of ticks up to the checkpoint
        for name, rows in manifest["rows"].items():
            assert rows == int((f["probes"][name]["tick"][()] <= tick).sum())
    assert not list(folder.glob("*.tmp"))


SLOW = """
import time
from engine import Actor

class Slow(Actor):
    def on_first_diasca(self):
        self.total = 0
        self.schedule_in(1)

    def act_spontaneous(self):
        self.total += self.random.integers(0, 100)
        self.record("total", self.total)
        if self.aai == 1:
            time.sleep(0.02)
        if self.tick % 7 == 0 and self.aai == 1:
            self.create_actor(Slow)
        self.schedule_in(1)
"""


def test_resume_of_a_killed_run_uses_its_staging_files(tmp_path):
    """SIGKILL after a checkpoint: no results.h5, rows past the checkpoint in staging files."""
    (tmp_path / "slow.py").write_text(SLOW)
    scenario = tmp_path / "slow.toml"
    scenario.write_text(
        '[simulation]\nname = "slow"\nstop_tick = 120\nseed = 3\n\n'
        '[[actors]]\nclass = "slow.py:Slow"\ncount = 3\n'
    )
    reference = run(scenario, tmp_path / "reference")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "runtime.cli", "run", str(scenario), "--out", str(run_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYDIASCA_MARK_S": "0"}
    proc = subprocess.Popen([*cmd, *QUIET, "--checkpoint-every", "10"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(ticks_of(run_dir)) < 2:
        time.sleep(0.05)
    time.sleep(0.1)  # rows past the checkpoint reach the staging file
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "results.h5").exists()
    assert list(run_dir.glob(".staging-rank*.bin"))
    assert resume(run_dir) == reference
    assert not list(run_dir.glob(".carried-*.bin"))  # finalize took them in


def test_every_s_takes_checkpoints_by_wall_clock(tmp_path):
    run(SODA, tmp_path / "run", 1, "--set", "checkpoint.every_s=1e-9", "--set", "checkpoint.keep=3")
    assert len(checkpoints(tmp_path / "run")) == 3  # one per tick, the 3 newest kept


@pytest.mark.parametrize(
    "settings, expected",
    [
        ("every_ticks = 5\nevery_s = 60", "[checkpoint]: both every_ticks and every_s are given"),
        ("every_ticks = 0", "[checkpoint] every_ticks: got integer 0"),
        ("every_tick = 5", "[checkpoint] every_tick: unknown key; did you mean every_ticks?"),
    ],
)
def test_bad_checkpoint_settings_are_one_line(tmp_path, settings, expected):
    scenario = tmp_path / "soda.toml"
    scenario.write_text(SODA.read_text() + f"\n[checkpoint]\n{settings}\n")
    proc = pydiasca(["run", str(scenario), "--out", str(tmp_path / "run")])
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- damaged checkpoints: one line, exit code 2 -------------------------------------


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("damaged")
    scenario = tmp / "soda.toml"
    shutil.copyfile(SODA, scenario)
    run(scenario, tmp / "run", 1, "--checkpoint-every", "5000")
    return tmp / "run"


def _damage(checkpointed: Path, tmp_path: Path, how) -> str:
    copy = tmp_path / "copy"
    shutil.copytree(checkpointed, copy)
    _, folder = checkpoints(copy)[0]
    how(folder)
    proc = pydiasca(["resume", str(copy)])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _rewrite_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(changes)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_missing_part(checkpointed, tmp_path):
    line = _damage(checkpointed, tmp_path, lambda f: (f / "rank-0.part").unlink())
    assert "rank-0.part: part missing" in line


def test_wrong_hash(checkpointed, tmp_path):
    def flip(folder: Path) -> None:
        part = folder / "rank-0.part"
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))

    assert "wrong SHA-256" in _damage(checkpointed, tmp_path, flip)


def test_truncated_part(checkpointed, tmp_path):
    def cut(folder: Path) -> None:
        part = folder / "rank-0.part"
        part.write_bytes(part.read_bytes()[:-10])

    assert "truncated" in _damage(checkpointed, tmp_path, cut)


def test_other_format_version(checkpointed, tmp_path):
    line = _damage(checkpointed, tmp_path, lambda f: _rewrite_manifest(f, format=99))
    assert "checkpoint format 99" in line


def test_a_checkpoint_of_format_2_is_refused(checkpointed, tmp_path):
    def older(folder: Path) -> None:
        _rewrite_manifest(folder, format=2, snapshot_format=2)

    line = _damage(checkpointed, tmp_path, older)
    assert "checkpoint format 2, but this pydiasca reads format 3" in line


def test_damaged_manifest(checkpointed, tmp_path):
    line = _damage(checkpointed, tmp_path, lambda f: (f / MANIFEST).write_text('{"form'))
    assert "manifest.json: damaged" in line


def test_changed_scenario_file(checkpointed, tmp_path):
    def edit(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        scenario = Path(manifest["scenario_path"])
        moved = tmp_path / "scenario.toml"
        shutil.copyfile(scenario, moved)
        moved.write_text(moved.read_text().replace("stock = 5", "stock = 6"))
        _rewrite_manifest(folder, scenario_path=str(moved))

    assert "changed since the checkpoint" in _damage(checkpointed, tmp_path, edit)


def test_resume_may_not_change_results_settings(checkpointed):
    proc = pydiasca(["resume", str(checkpointed), "--set", "simulation.seed=3"])
    assert proc.returncode == 2 and "only [deployment] and [placement]" in proc.stderr


def test_no_checkpoint(tmp_path):
    run(SODA, tmp_path / "run")
    proc = pydiasca(["resume", str(tmp_path / "run")])
    assert proc.returncode == 2 and "no complete checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unfinished_checkpoint_does_not_exist(checkpointed, tmp_path):
    """A checkpoint folder without its manifest is skipped: the previous one is used."""
    copy = tmp_path / "copy"
    shutil.copytree(checkpointed, copy)
    newest = checkpoints(copy)[0][1]
    (newest / MANIFEST).unlink()
    assert resume(copy) == run(SODA, tmp_path / "reference")
    assert (newest / MANIFEST).exists()  # the resumed run took that checkpoint again


# --- actors whose state does not pickle -----------------------------------------------

UNPICKLABLE = """
from engine import Actor

class Holder(Actor):
    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        self.record("x", self.tick)
        if self.tick == 3:
            self.hook = lambda: 1
        self.schedule_in(1)
"""


def test_an_actor_that_does_not_pickle_fails_the_checkpoint_in_one_line(tmp_path):
    (tmp_path / "holder.py").write_text(UNPICKLABLE)
    scenario = tmp_path / "holder.toml"
    scenario.write_text(
        '[simulation]\nname = "holder"\nstop_tick = 10\n\n'
        "[checkpoint]\nevery_ticks = 2\n\n"
        '[[actors]]\nid = "h"\nclass = "holder.py:Holder"\ncount = 2\n'
    )
    proc = pydiasca(["run", str(scenario), "--out", str(tmp_path / "run"), *QUIET])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        "checkpoint at tick 4: actor 1 (Holder, id 'h-0') cannot be checkpointed: its "
        "attribute 'hook' of type function cannot be pickled" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert [t for t, _ in checkpoints(tmp_path / "run")] == [2]  # nothing of tick 4
    with h5py.File(tmp_path / "run" / "results.h5") as f:
        assert f.attrs["status"] == "failed"


# --- several ranks: 1 -> 3, 4 -> 2, 2 -> 2, populations, ergodic -----------------------


@needs_mpi
def test_one_rank_to_three_with_creation_and_termination(tmp_path):
    resumes_match(SODA, tmp_path, 1, 3, 5000, picks=[0, -1])


@needs_mpi
def test_four_ranks_to_two_with_a_population(tmp_path):
    resumes_match(HEAT, tmp_path, 4, 2, 15, picks=[0, 2])


@needs_mpi
def test_two_ranks_to_two_with_a_network_population(tmp_path):
    resumes_match(EPIDEMIC, tmp_path, 2, 2, 10, picks=[0, -1])


@needs_mpi
def test_ergodic_two_ranks_to_three(tmp_path):
    resumes_match(
        STOCHASTIC, tmp_path, 2, 3, 100000, "--mode", "ergodic", "--seed", "5", picks=[0, -1]
    )


@needs_mpi
def test_resume_under_another_placement(tmp_path):
    reference = run(SODA, tmp_path / "reference")
    run_dir = tmp_path / "run"
    assert run(SODA, run_dir, 2, "--checkpoint-every", "5000") == reference
    flags = ("--placement", "hint", "--group-size", "2", "--routing", "s_group")
    assert resume(run_dir, 3, *flags) == reference


# --- crash recovery: a rank killed, the run resumed by the launcher ----------------------

FAULTY = """
[simulation]
name = "crash"
stop_tick = 240

[[actors]]
class = "{path}:Faulty"
count = 4
args = {{ what = "pid", pid_dir = "{pids}" }}

[results]
plots = false
"""


@needs_mpi
def test_a_killed_rank_is_recovered_from_the_last_checkpoint(tmp_path):
    (tmp_path / "pids").mkdir()
    scenario = tmp_path / "crash.toml"
    faults = ROOT / "tests" / "data" / "faults.py"
    scenario.write_text(FAULTY.format(path=faults, pids=tmp_path / "pids"))
    reference = run(scenario, tmp_path / "reference")
    for pid in (tmp_path / "pids").iterdir():
        pid.unlink()
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "runtime.cli", "run", str(scenario), "--out", str(run_dir)]
    flags = ["--ranks", "3", "--recover", "1", "--checkpoint-every", "20"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*cmd, *flags], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        pid_file = tmp_path / "pids" / "2"  # actor 2 lives on rank 1
        while not (ticks_of(run_dir) and pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint came"
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert "before writing results.h5" in stderr  # what happened is reported
    assert "resuming" in stderr and "recovery 1 of 1" in stderr
    assert DIGEST.findall(stdout)[-1] == reference
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "completed"


def test_recover_needs_ranks(tmp_path):
    proc = pydiasca(["run", str(SODA), "--out", str(tmp_path / "run"), "--recover", "2"])
    assert proc.returncode == 2 and "--recover" in proc.stderr
