"""Faults at run time, on real jobs: silent ranks, unpicklable messages, sys.exit in a model.

Each multi-rank test is one ``mpiexec`` job of 3 ranks on a tiny problem with a
2-second watchdog. Each asserts that the job ends in bounded time, with one
clear message naming the right thing, and leaves its data: a readable
``results.h5`` with status ``failed``, or (when a rank went silent and the job
had to be aborted) the ranks' staging files, from which the run can be
recovered. The model misbehaves on cue: see tests/data/faults.py.
"""

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

from engine import Kernel
from engine.errors import MessageError
from runtime.launch import find_mpiexec
from tests.data.faults import Faulty, _deep

MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
FAULTS = ROOT / "tests" / "data" / "faults.py"
WATCHDOG_S = 2
SCENARIO = """
[simulation]
name = "faults"
stop_tick = {stop_tick}

[deployment]
watchdog_s = {watchdog}

[[actors]]
class = "{path}:Faulty"
count = 4
args = {{ what = "{what}", pid_dir = "{pid_dir}" }}

[results]
plots = false
"""
DIGEST = re.compile(r"^partial results digest \(failed at tick \d+\): [0-9a-f]{64}$")


def _scenario(tmp: Path, what: str, stop_tick: int = 10) -> Path:
    (tmp / "pids").mkdir(exist_ok=True)
    path = tmp / f"{what}.toml"
    path.write_text(
        SCENARIO.format(
            stop_tick=stop_tick, watchdog=WATCHDOG_S, path=FAULTS, what=what, pid_dir=tmp / "pids"
        )
    )
    return path


def _command(scenario: Path, out: Path, ranks: int) -> list[str]:
    cmd = [sys.executable, "-m", "runtime.cli", "run", str(scenario), "--out", str(out)]
    return [MPIEXEC, "-n", str(ranks), *cmd] if ranks > 1 else cmd


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYDIASCA_MARK_S": "0"}


def _run(tmp: Path, what: str, ranks: int) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp / "run"
    proc = subprocess.run(
        _command(_scenario(tmp, what), out, ranks),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    return proc, out


def _assert_failed_and_kept(proc: subprocess.CompletedProcess, out: Path, error: str) -> None:
    """Exit 1; on stderr, in order: the one error line, its traceback, the report, the summary."""
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1 and lines[0] == error, proc.stderr
    assert lines[1] == "Traceback (most recent call last):"
    assert proc.stderr.count("Traceback") == 1  # no other rank adds its own
    report = lines.index(f"the run's report is in {out / 'failure.txt'}")
    assert lines[report + 1] == f"run failed: {out.name}"
    assert DIGEST.match(lines[-1])
    assert error[len("error: ") :] in (out / "failure.txt").read_text()
    with h5py.File(out / "results.h5") as f:
        assert f.attrs["status"] == "failed"
        assert sorted(set(f["probes/alive/tick"][()].tolist())) == [1, 2, 3]


# --- a model that ends the process: a model failure like any other -------------------


def _ended(what: str, exc: str) -> str:
    return (
        f"error: model failure in actor 3 (Faulty), hello, at tick 3 diasca 1 on rank "
        f"{{rank}}: {exc}"
    )


@pytest.mark.parametrize("ranks", [1, pytest.param(3, marks=needs_mpi)])
def test_sys_exit_in_a_handler_is_a_model_failure(tmp_path, ranks):
    start = time.monotonic()
    proc, out = _run(tmp_path, "exit", ranks)
    assert time.monotonic() - start < 60
    error = _ended("exit", "SystemExit: model code called sys.exit(); a model must not end")
    _assert_failed_and_kept(proc, out, proc.stderr.splitlines()[0])
    assert proc.stderr.startswith(error.format(rank=ranks - 1))


@pytest.mark.parametrize("ranks", [1, pytest.param(3, marks=needs_mpi)])
def test_keyboard_interrupt_raised_by_a_handler_is_a_model_failure(tmp_path, ranks):
    proc, out = _run(tmp_path, "interrupt", ranks)
    error = _ended("interrupt", "KeyboardInterrupt raised by model code")
    _assert_failed_and_kept(proc, out, proc.stderr.splitlines()[0])
    assert proc.stderr.startswith(error.format(rank=ranks - 1))


def test_a_keyboard_interrupt_is_the_users_only_under_pythons_own_handler():
    """Library use keeps Ctrl-C as usual; under pydiasca's handler it comes from the model."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    kernel = Kernel(stop_tick=10)
    kernel.add_actors(Faulty, 4, None, what="interrupt")
    with pytest.raises(KeyboardInterrupt):
        kernel.run()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        kernel = Kernel(stop_tick=10)
        kernel.add_actors(Faulty, 4, None, what="interrupt")
        stats = kernel.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stats.status == "failed"
    assert stats.failures[0].message.startswith("KeyboardInterrupt raised by model code")
    assert (stats.failures[0].aai, stats.failures[0].handler) == (3, "hello")


# --- an argument that cannot be pickled: refused on every layout -----------------------

UNPICKLABLE = {"lambda": "function", "generator": "generator", "deep": "list"}


@pytest.mark.parametrize(
    ("what", "ranks"),
    [
        ("lambda", 1),
        pytest.param("lambda", 3, marks=needs_mpi),
        pytest.param("generator", 3, marks=needs_mpi),
        pytest.param("deep", 3, marks=needs_mpi),
    ],
)
def test_an_unpicklable_message_is_a_model_failure_on_every_layout(tmp_path, what, ranks):
    proc, out = _run(tmp_path, what, ranks)
    first = proc.stderr.splitlines()[0]
    _assert_failed_and_kept(proc, out, first)
    assert first.startswith(
        f"error: model failure in actor 3 (Faulty), act_spontaneous, at tick 3 diasca 0 on "
        f"rank {ranks - 1}: MessageError: actor 3 (Faulty) sent 'hello' to actor 4 (Faulty) "
        f"with argument 1 of type {UNPICKLABLE[what]}, which cannot be pickled ("
    ), first


def test_the_picklability_check_spares_plain_arguments_and_names_the_bad_one():
    kernel = Kernel(stop_tick=2)
    kernel.add_actors(Faulty, 4, None, what="none")
    ok = kernel.run()
    assert ok.status == "completed" and ok.messages > 0
    bad = [
        (lambda: 1, "function"),
        (_deep(100_000), "list"),
        ([(i for i in ())], "list"),
        (np.array([lambda: 1], dtype=object), "ndarray"),
    ]
    for value, kind in bad:
        with pytest.raises(MessageError, match=f"argument 2 of type {kind}, which cannot be pick"):
            kernel.post(1, 2, "hello", (1, value))
    assert kernel.post(1, 2, "hello", (1, 2.5, "x", None, (3, b"y"), [1, {"a": 2}], np.ones(3)))


# --- a rank that goes silent: named within about 2 x watchdog_s, data kept --------------


def _state(pid: int) -> str:
    """The process's state letter (Z: a zombie), or "" when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text.rsplit(")", 1)[1].split()[0]


def _stop_rank(tmp_path: Path, aai: int) -> tuple[subprocess.CompletedProcess, float, Path]:
    """Run 3 ranks, SIGSTOP the rank of actor ``aai`` at tick 3; the job's outcome and delay."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _command(_scenario(tmp_path, "pid", stop_tick=100_000), out, 3),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_files = [tmp_path / "pids" / str(a) for a in (1, 2, 3)]
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not all(p.exists() and p.read_text() for p in pid_files):
            assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in pid_files]
        os.kill(pids[aai - 1], signal.SIGSTOP)
        stopped = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - stopped
        deadline = time.monotonic() + 10  # the launcher ends every rank, the stopped one too
        while not all(_state(pid) in ("", "Z") for pid in pids):
            assert time.monotonic() < deadline, "a rank outlived its job"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in pids:  # leave no stopped rank behind, whatever happened
            if _state(pid) not in ("", "Z"):
                os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), elapsed, out


def _assert_recoverable(out: Path) -> None:
    """The job was aborted: its staging files rebuild a readable results.h5, status failed.

    Every rank marks its staging file at each tick (``PYDIASCA_MARK_S=0`` in
    ``_env``), so the ticks before the stop are complete on every rank.
    """
    from runtime.recovery import recover

    assert not (out / "results.h5").exists()
    done = recover(out)
    assert done.rows > 0 and done.complete_before > 0
    with h5py.File(out / "results.h5") as f:
        assert f.attrs["status"] == "failed"
    assert (out / "scenario.toml").exists() and (out / "run.log").exists()


@needs_mpi
def test_a_silent_root_is_named_by_the_others(tmp_path):
    proc, elapsed, out = _stop_rank(tmp_path, 1)  # actor 1 lives on rank 0
    assert proc.returncode != 0
    assert elapsed < 3 * WATCHDOG_S + 10, elapsed
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.fullmatch(
        r"error: watchdog: rank 0 \(the root\) sent no decision for tick \d+ diasca \d+ within "
        r"[\d.]+ s \(noticed by rank [12]\); stopping the run",
        lines[0],
    ), lines[0]
    _assert_recoverable(out)
    assert "ERROR rank 1: watchdog: rank 0 (the root)" in (out / "run.log").read_text()


@needs_mpi
def test_a_silent_rank_is_named_by_the_root(tmp_path):
    proc, elapsed, out = _stop_rank(tmp_path, 3)  # actor 3 lives on rank 2
    assert proc.returncode != 0
    assert elapsed < 3 * WATCHDOG_S + 10, elapsed
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.fullmatch(
        r"error: watchdog: rank\(s\) 2 did not report for tick \d+ diasca \d+ within 2 s; "
        r"stopping the run",
        lines[0],
    ), lines[0]
    _assert_recoverable(out)
