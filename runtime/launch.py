"""Where this process stands: alone, or one rank of an MPI job; and starting such jobs.

A single-process run never imports mpi4py. A process started by ``mpiexec`` or
``srun`` sees its launcher's environment and joins ``MPI.COMM_WORLD``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from .comm import Comm

# Variables that MPI launchers set in every process they start, with the world size.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
_SLURM_SIZE = "SLURM_NTASKS"
_SLURM_STEP = "SLURM_STEP_ID"


class LaunchError(Exception):
    """MPI was asked for and cannot be had; str() is the message for the user."""


def launched_size() -> int:
    """World size announced by an MPI launcher (or srun), 1 when started plainly."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    if os.environ.get(_SLURM_STEP) is not None:  # inside an srun step, not a bare sbatch
        value = os.environ.get(_SLURM_SIZE, "1")
        return int(value) if value.isdigit() else 1
    return 1


@cache
def world() -> Comm:
    """This process's world: MPI's COMM_WORLD when a launcher started several ranks."""
    if launched_size() <= 1:
        return Comm()
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise LaunchError(
            f"this process was started as one rank of an MPI job, but mpi4py cannot be "
            f"imported ({exc}); install it with: python -m pip install mpi4py"
        ) from None
    return Comm(MPI.COMM_WORLD)


def find_mpiexec() -> str | None:
    """The mpiexec next to this Python (the mpich wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def relaunch(ranks: int, cli_args: Sequence[str]) -> int:
    """Run ``pydiasca <cli_args>`` again as ``ranks`` MPI ranks; returns its exit code."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise LaunchError(
            f"--ranks {ranks} needs MPI, and no mpiexec was found; install one with: "
            f'python -m pip install "pydiasca[mpich]" (or load your cluster\'s MPI, '
            f"see docs/clusters.md)"
        )
    command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "runtime.cli", *cli_args]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: object) -> None:
        proc.send_signal(signum)  # the ranks stop cleanly at the end of the tick

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
