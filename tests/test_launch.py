"""How the CLI knows it is inside an MPI job, and what it says when MPI is missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from runtime import launch
from runtime.cli import _relaunch_args

_LAUNCHER_VARIABLES = (
    *launch._SIZE_VARIABLES,
    *launch._RANK_VARIABLES,
    *launch._SLURM_SIZES,
    launch._SLURM_STEP,
)


@pytest.mark.parametrize(
    "env, size",
    [
        ({}, 1),
        ({"PMI_SIZE": "4", "PMI_RANK": "2"}, 4),  # MPICH / Intel MPI (hydra)
        ({"OMPI_COMM_WORLD_SIZE": "3"}, 3),  # Open MPI
        ({"MV2_COMM_WORLD_SIZE": "5"}, 5),  # MVAPICH2
        ({"SLURM_NTASKS": "8", "SLURM_STEP_ID": "0"}, 8),  # srun
        ({"SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_ID": "1"}, 2),  # a step
        ({"SLURM_NTASKS": "8"}, 1),  # a batch script before srun is not a rank
        ({"PMI_SIZE": "1", "SLURM_NTASKS": "3", "SLURM_STEP_ID": "0"}, 1),  # srun -n 1
    ],
)
def test_launched_size_reads_the_launcher_environment(monkeypatch, env, size):
    for name in _LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launch.launched_size() == size


def _run_as_task(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``pydiasca run`` on soda as one task of a launcher described by ``env``."""
    pytest.importorskip("mpi4py")
    clean = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARIABLES}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "run",
            "scenarios/soda.toml",
            "--out",
            tmp_path / "r",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "env, said",
    [
        ({"SLURM_STEP_ID": "0", "SLURM_NTASKS": "3", "SLURM_PROCID": "0"}, "srun started 3 tasks"),
        ({"PMI_SIZE": "3", "PMI_RANK": "0"}, "the launcher started 3 tasks (PMI_SIZE=3)"),
    ],
)
def test_a_split_job_is_refused_before_anything_runs(tmp_path, env, said):
    """A launcher says 3 tasks, but MPI starts as a world of one (no PMI to wire it up,
    as under srun without --mpi): the task must not run the simulation alone."""
    proc = _run_as_task(tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {said}")
    assert "srun --mpi=pmi2" in proc.stderr and "mpiexec" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""
    assert not (tmp_path / "r").exists()


def test_only_the_first_task_of_a_split_job_says_it(tmp_path):
    proc = _run_as_task(tmp_path, {"SLURM_STEP_ID": "0", "SLURM_NTASKS": "3", "SLURM_PROCID": "2"})
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, "", "")
    assert not (tmp_path / "r").exists()


def test_relaunch_without_mpi_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    with pytest.raises(launch.LaunchError) as err:
        launch.relaunch(4, ["run", "x.toml"])
    assert str(err.value) == (
        "--ranks 4 needs MPI, and no mpiexec was found; install one with: "
        'python -m pip install -e ".[mpich]" in the pydiasca checkout '
        "(or load your cluster's MPI, "
        "see docs/clusters.md)"
    )


def test_cli_reports_missing_mpi_in_one_line(tmp_path):
    code = (
        "import sys; import runtime.launch as l; l.find_mpiexec = lambda: None; "
        "from runtime.cli import main; "
        f"sys.exit(main(['run', 'scenarios/soda.toml', '--ranks', '2', '--out', r'{tmp_path}/r']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --ranks 2 needs MPI")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_relaunch_drops_only_the_ranks_flag():
    args = ["run", "s.toml", "--ranks", "4", "--seed", "3", "--ranks=2", "--group-size", "2"]
    assert _relaunch_args(args) == ["run", "s.toml", "--seed", "3", "--group-size", "2"]


@pytest.mark.parametrize("flag", ["--ranks", "--group-size", "--stop-tick"])
def test_counts_below_one_are_refused(flag, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", "scenarios/soda.toml", flag, "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"error: {flag}: got integer 0; expected a whole number >= 1\n"
