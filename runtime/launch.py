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
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .comm import Comm

# Variables that MPI launchers set in every process they start, with the world size:
# MPICH's and Intel MPI's hydra (and srun's PMI plugins), Open MPI, MVAPICH2.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
# srun sets these in each task of a step; a batch script (no step yet) is not a rank.
_SLURM_SIZES = ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
_SLURM_STEP = "SLURM_STEP_ID"
RUN_DIR_ENV = "PYDIASCA_RUN_DIR_FILE"  # where the root tells the launcher its run folder


class LaunchError(Exception):
    """MPI was asked for and cannot be had; str() is the message for the user.

    ``echo`` is False on all tasks but the first when every task of a job fails
    alike, so that the job prints its error once.
    """

    def __init__(self, message: str, echo: bool = True) -> None:
        super().__init__(message)
        self.echo = echo


def launched_size() -> int:
    """World size announced by an MPI launcher (or srun), 1 when started plainly."""
    return _launcher()[1]


def _launcher() -> tuple[str, int]:
    """(variable, size): the launcher variable that gives the world size, ("", 1) if none."""
    names = list(_SIZE_VARIABLES)
    if os.environ.get(_SLURM_STEP) is not None:  # inside an srun step, not a bare sbatch
        names += _SLURM_SIZES
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():  # the first one set says it, even when it says 1
            return name, int(value)
    return "", 1


@cache
def world() -> Comm:
    """This process's world: MPI's COMM_WORLD when a launcher started several ranks.

    A launcher that started N > 1 tasks whose MPI still sees a world of one
    (srun without the right ``--mpi``, or a launcher from another MPI library)
    would run the whole simulation N times, each copy alone: that is refused.
    """
    name, size = _launcher()
    if size <= 1:
        return Comm()
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise LaunchError(
            f"this process was started as one rank of an MPI job, but mpi4py cannot be "
            f"imported ({exc}); install it with: python -m pip install mpi4py"
        ) from None
    if MPI.COMM_WORLD.Get_size() == 1:
        launcher = "srun" if name.startswith("SLURM") else "the launcher"
        raise LaunchError(
            f"{launcher} started {size} tasks ({name}={size}) but MPI sees a world of 1 "
            f"rank, so each task would run the whole simulation alone; start the job with "
            f"srun --mpi=pmi2 (the mpich wheel) or your site's PMI (srun --mpi=pmix), "
            f"or with mpiexec inside the allocation (see docs/clusters.md)",
            echo=_launched_rank() == 0,
        )
    return Comm(MPI.COMM_WORLD)


def _launched_rank() -> int:
    """This task's rank according to its launcher (0 when none says)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def find_mpiexec() -> str | None:
    """The mpiexec next to this Python (the mpich wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


@dataclass
class Job:
    """How a job started by ``run_job`` ended."""

    code: int  # the exit code to report
    run_dir: str = ""  # its run folder, "" if it never got one
    crashed: bool = False  # it ended without writing results.h5 (a rank died, or went silent)


def relaunch(ranks: int, cli_args: Sequence[str]) -> int:
    """Run ``pydiasca <cli_args>`` again as ``ranks`` MPI ranks; returns its exit code."""
    return run_job(ranks, cli_args).code


def run_job(ranks: int, cli_args: Sequence[str]) -> Job:
    """Run ``pydiasca <cli_args>`` again as ``ranks`` MPI ranks; how it ended.

    The job runs in its own session, so a terminal's Ctrl-C reaches only this
    process, which passes the first SIGINT or SIGTERM on (the ranks stop at the
    end of the tick and write their results), says what is happening at the
    second, and kills the job at the third. A job that ends without writing
    results.h5 (a rank killed, or that third signal) is recovered from its
    staging files here (``runtime.recovery``).
    """
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise LaunchError(
            f"--ranks {ranks} needs MPI, and no mpiexec was found; install one with: "
            f'python -m pip install -e ".[mpich]" in the pydiasca checkout '
            f"(or load your cluster's MPI, "
            f"see docs/clusters.md)"
        )
    command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "runtime.cli", *cli_args]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        note = Path(tmp) / "run-dir"
        env[RUN_DIR_ENV] = str(note)
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        signals = 0

        def forward(signum: int, frame: object) -> None:
            nonlocal signals
            if proc.poll() is not None:
                return  # the job is over: its results are being checked
            signals += 1
            if signals == 1:
                proc.send_signal(signum)  # mpiexec passes it to every rank
            elif signals == 2:
                print(
                    "stopping: the ranks finish the current tick and write their results; "
                    "interrupt again to kill them (the results are then recovered)",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                _kill_job(proc)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:  # signals keep coming here until the very end: never a KeyboardInterrupt
            code = proc.wait()
            run_dir = note.read_text() if note.exists() else ""
            code, crashed = _recover_if_needed(code, run_dir, forced=signals > 2)
            return Job(code, run_dir, crashed and signals == 0)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def note_run_dir(run_dir: Path) -> None:
    """Tell the launcher (if any) where the run folder is, for recovery after a crash."""
    note = os.environ.get(RUN_DIR_ENV)
    if note:
        try:
            Path(note).write_text(str(run_dir.resolve()))
        except OSError:
            pass


def _kill_job(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec, its proxies and the ranks
    except OSError:
        proc.kill()


def _recover_if_needed(code: int, run_dir: str, forced: bool) -> tuple[int, bool]:
    """After the job: a run folder left without results.h5 is recovered, status
    ``failed`` (or ``interrupted`` when the user killed the job). Returns the exit
    code and whether the job had ended without its results."""
    if not run_dir:
        return code, False
    from .digest import digest_line
    from .recovery import RecoverError, recover, recovered, stopped_at
    from .results import RunFolderUnreadable, RunNeedsRecovery, results_file
    from .storage import StorageError

    folder = Path(run_dir)
    try:
        results_file(folder)
        return code, False
    except RunNeedsRecovery:
        pass
    except RunFolderUnreadable:
        return code, False
    why = "was killed" if forced else f"ended abnormally (exit code {code})"
    print(f"error: the MPI job {why} before writing results.h5", file=sys.stderr)
    status = "interrupted" if forced else "failed"
    try:
        done = recover(folder, status=status)
    except (RecoverError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, True
    print(recovered(folder, done, status))
    print(digest_line(done.digest, status, stopped_at(done)))
    return (130 if forced else 1), True
