"""How the CLI knows it is inside an MPI job, and what it says when MPI is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from runtime import launch
from runtime.cli import _relaunch_args


@pytest.mark.parametrize(
    "env, size",
    [
        ({}, 1),
        ({"PMI_SIZE": "4", "PMI_RANK": "2"}, 4),  # MPICH / Intel MPI (hydra)
        ({"OMPI_COMM_WORLD_SIZE": "3"}, 3),  # Open MPI
        ({"SLURM_NTASKS": "8", "SLURM_STEP_ID": "0"}, 8),  # srun
        ({"SLURM_NTASKS": "8"}, 1),  # a batch script before srun is not a rank
    ],
)
def test_launched_size_reads_the_launcher_environment(monkeypatch, env, size):
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launch.launched_size() == size


def test_relaunch_without_mpi_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    with pytest.raises(launch.LaunchError) as err:
        launch.relaunch(4, ["run", "x.toml"])
    assert str(err.value) == (
        "--ranks 4 needs MPI, and no mpiexec was found; install one with: "
        'python -m pip install "pydiasca[mpich]" (or load your cluster\'s MPI, '
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
