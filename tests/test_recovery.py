"""Faults against the run folder, with real processes: nothing may lose the results.

A rank killed with SIGKILL, a full file system, damaged data files, and signals
at every stage of a run (twice, while loading, while plotting). Each test
checks that the job ends in bounded time with one clear message, and leaves a
readable results.h5 (or a folder that ``pydiasca recover`` turns into one)
with the right status and exactly the rows it should hold.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

from runtime import results
from runtime.digest import canonical_series
from runtime.launch import find_mpiexec
from runtime.results import read_probes
from runtime.staging import ALL, Staged, StagingSink

MPIEXEC = find_mpiexec()
TICKER = ROOT / "tests" / "data" / "ticker.py"
DIGEST = re.compile(r"^results digest: ([0-9a-f]{64})$", re.M)
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYDIASCA_MARK_S": "0", **extra}


def _cli(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or _env(),
        timeout=240,
    )


def _start(*args: object, ranks: int = 1, session: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "runtime.cli", *map(str, args)]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=session,
    )


def _ticker(folder: Path, stop: int = 1_000_000, pause: float = 0.002, plots: bool = False):
    """Six actors recording AAI * 1000 + tick at every tick, slowly enough to act mid-run."""
    path = folder / "ticker.toml"
    path.write_text(
        f'[simulation]\nname = "ticker"\nstop_tick = {stop}\nseed = 3\n\n'
        f'[[actors]]\nclass = "{TICKER}:Ticker"\ncount = 6\nargs = {{ pause_s = {pause} }}\n\n'
        f"[results]\nplots = {'true' if plots else 'false'}\n"
    )
    return path


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before {what}: {proc.returncode}\n{out}\n{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _marked(run_dir: Path, rank: int) -> int:
    """The tick before which a rank's staging file is complete (0: none yet)."""
    path = results.staging_path(run_dir, rank)
    if not path.exists():
        return 0
    with Staged(path) as staged:
        return staged.complete_before


def _rank_pid(run_dir: Path, rank: int) -> int:
    """The process of one rank of the job that writes ``run_dir`` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"runtime.cli" in cmdline and str(run_dir).encode() in cmdline:
            if f"PMI_RANK={rank}".encode() in environ:
                return int(entry.name)
    raise AssertionError(f"no process for rank {rank}")


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """The job's output; it must end within ``timeout`` seconds."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _rows(run_dir: Path) -> tuple[np.ndarray, ...]:
    return read_probes(run_dir / "results.h5")["value"]


def _assert_rows_of_an_uninterrupted_run(tmp_path: Path, run_dir: Path, before: int) -> None:
    """The recovered rows are exactly those of a run stopped at ``before``, digest included."""
    reference = tmp_path / "reference"
    done = _cli("run", _ticker(tmp_path, stop=before, pause=0), "--out", reference)
    assert done.returncode == 0, done.stderr
    got, want = _rows(run_dir), _rows(reference)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(got[0], np.repeat(np.arange(1, before), 6))  # every tick, every actor
    with h5py.File(run_dir / "results.h5") as f, h5py.File(reference / "results.h5") as g:
        assert f.attrs["digest"] == g.attrs["digest"]


# --- a killed rank -------------------------------------------------------------------


@needs_mpi
def test_sigkill_of_a_rank_is_explained_and_recovered(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start("run", _ticker(tmp_path), "--out", run_dir, ranks=2)
    _wait_for(lambda: _marked(run_dir, 1) >= 20, proc, "rank 1 staged 20 ticks")
    os.kill(_rank_pid(run_dir, 1), signal.SIGKILL)
    _finish(proc)  # mpiexec ends the job: bounded
    assert proc.returncode != 0
    assert not (run_dir / "results.h5").exists()

    info = _cli("info", run_dir)
    assert info.returncode == 1
    assert info.stderr.count("\n") == 1 and f"'pydiasca recover {run_dir}'" in info.stderr

    recover = _cli("recover", run_dir)
    assert recover.returncode == 0, recover.stderr
    assert "(status failed)" in recover.stdout and not DIGEST.search(recover.stdout)
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "failed"
        assert f.attrs["seed"] == 3 and f.attrs["ranks"] == 2  # staged at the start
        before = int(f.attrs["rows_before_tick"])
        partial = f"partial results digest (failed at tick {before}): {f.attrs['digest']}"
        assert recover.stdout.strip().splitlines()[-1] == partial
    assert before >= 19
    assert not results.staging_files(run_dir)
    _assert_rows_of_an_uninterrupted_run(tmp_path, run_dir, before)
    assert _cli("info", run_dir).returncode == 0


@needs_mpi
def test_the_launcher_recovers_a_job_that_lost_a_rank(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start("run", _ticker(tmp_path), "--out", run_dir, "--ranks", "3")
    _wait_for(lambda: _marked(run_dir, 2) >= 10, proc, "rank 2 staged 10 ticks")
    os.kill(_rank_pid(run_dir, 2), signal.SIGKILL)
    out, err = _finish(proc)
    assert proc.returncode == 1, err
    assert "error: the MPI job ended abnormally" in err
    assert f"recovered {run_dir / 'results.h5'} (status failed)" in out
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "failed"
        before = int(f.attrs["rows_before_tick"])
    _assert_rows_of_an_uninterrupted_run(tmp_path, run_dir, before)


def test_a_killed_single_process_run_is_recovered(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start("run", _ticker(tmp_path), "--out", run_dir)
    _wait_for(lambda: _marked(run_dir, 0) >= 10, proc, "10 ticks staged")
    proc.kill()
    _finish(proc)
    assert "recover" in _cli("info", run_dir).stderr
    assert _cli("recover", run_dir).returncode == 0
    with h5py.File(run_dir / "results.h5") as f:
        before = int(f.attrs["rows_before_tick"])
    _assert_rows_of_an_uninterrupted_run(tmp_path, run_dir, before)
    again = _cli("recover", run_dir)
    assert again.returncode == 1 and "nothing to recover" in again.stderr


def test_staging_files_are_read_up_to_their_last_mark(tmp_path):
    path = tmp_path / "s.bin"
    sink = StagingSink(path, {"rank": 0, "ranks": 1, "metadata": {"seed": 5}})
    for tick in range(1, 6):
        sink.write("p", np.array([tick, tick]), np.array([1, 2]), np.array([tick * 1.0, 2.0]))
        sink.mark(tick + 1)
    sink.write("p", np.array([6]), np.array([1]), np.array([6.0]))  # after the last mark
    sink.abandon()
    with open(path, "ab") as f:
        f.write(b"PDS1 torn frame")  # what a killed writer leaves
    with Staged(path) as staged:
        assert staged.header["metadata"] == {"seed": 5}
        assert staged.complete_before == 6 and staged.torn
        assert staged["p"]["tick"][:].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        staged.limit(4)
        assert staged["p"]["tick"][:].tolist() == [1, 1, 2, 2, 3, 3]
        assert staged["p"]["value"][-1] == 2.0
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # a damaged byte ends the readable part there
    path.write_bytes(bytes(data))
    with Staged(path) as staged:
        assert staged.complete_before < 6 and staged.torn


# --- a full file system --------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (Linux, as root), unmounted afterwards."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a full file system is made with a small tmpfs: needs root on Linux")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_a_full_disk_fails_cleanly_and_keeps_what_was_written(small_disk, tmp_path):
    phold = (ROOT / "scenarios" / "phold.toml").read_text()
    scen = tmp_path / "phold.toml"
    scen.write_text(phold.replace("record_every = 50", "record_every = 1"))
    run_dir = small_disk / "run"
    # A mark at every tick: at the usual pace (0.25 s) a fast machine may finish the
    # 20 ticks before its first mark, and the disk then fills with no tick complete.
    proc = _cli("run", scen, "--stop-tick", "20", "--out", run_dir)
    assert proc.returncode == 1, proc.stderr
    # A failed run is one block on stderr: the error line, then the summary
    # (besides progress lines, when the run lasts long enough).
    block = [line for line in proc.stderr.splitlines() if not line.startswith("tick ")]
    assert [line for line in block if line.startswith("error:")] == block[:1], proc.stderr
    assert re.fullmatch(
        rf"error: no space left on device while writing {re.escape(str(run_dir))}/\S+", block[0]
    )
    assert block[1].startswith("run failed"), proc.stderr
    assert not proc.stdout.strip(), proc.stdout
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "failed"
        assert f.attrs["failure"].startswith("no space left on device while writing")
        before = int(f.attrs["rows_before_tick"])
    assert not results.staging_files(run_dir)
    assert before > 1, "no tick was complete: make the disk larger"
    reference = _cli("run", scen, "--stop-tick", before, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    got, want = _rows_of(run_dir, "events"), _rows_of(tmp_path / "ref", "events")
    assert got[0].shape[0] > 0 and got[0][-1] == before - 1
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)


def test_results_that_do_not_fit_stay_recoverable(small_disk):
    run_dir = small_disk / "run"
    run_dir.mkdir()
    rng = np.random.default_rng(4)
    ticks = np.repeat(np.arange(1, 41), 500)
    aais, values = np.tile(np.arange(1, 501), 40), rng.random(20_000)  # values do not compress
    sink = StagingSink(results.staging_path(run_dir, 0), {"rank": 0, "ranks": 1})
    sink.write("noise", ticks, aais, values)
    sink.close()
    filler = small_disk / "filler"
    _fill(filler)
    code = (
        "import sys; from pathlib import Path; from runtime.finalize import finalize\n"
        "from runtime.storage import StorageError\n"
        f"try:\n    finalize(Path({str(run_dir)!r}))\n"
        "except StorageError as exc:\n    print(exc); sys.exit(1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 1, done.stderr  # not 139: no crash
    assert done.stdout.startswith("no space left on device while writing")
    assert f"'pydiasca recover {run_dir}'" in done.stdout
    assert results.staging_path(run_dir, 0).exists() and not (run_dir / "results.h5").exists()
    assert "recover" in _cli("info", run_dir).stderr
    filler.unlink()
    assert _cli("recover", run_dir).returncode == 0
    want = canonical_series([(ticks, aais, values)])
    for got, expected in zip(_rows_of(run_dir, "noise"), want, strict=True):
        assert np.array_equal(got, expected)


def test_plots_on_a_full_disk_are_one_line_and_no_half_figure(small_disk, tmp_path):
    assert (
        _cli("run", _ticker(tmp_path, stop=10, pause=0), "--out", tmp_path / "run").returncode == 0
    )
    shutil.copytree(tmp_path / "run", small_disk / "run")
    _fill(small_disk / "filler")
    plot = _cli("plot", small_disk / "run")
    assert plot.returncode == 1
    assert plot.stderr.count("\n") == 1
    assert plot.stderr.startswith("error: figure value (no space left on device while writing")
    assert not list((small_disk / "run").glob("*.png*"))


def _fill(path: Path) -> None:
    """Write zeros into ``path`` until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError:
        pass  # the disk is full
    finally:
        os.close(fd)


def _rows_of(run_dir: Path, name: str):
    return read_probes(run_dir / "results.h5")[name]


# --- damaged run folders -------------------------------------------------------------


def test_info_and_plot_explain_a_damaged_data_file(tmp_path):
    run_dir = tmp_path / "run"
    assert _cli("run", _ticker(tmp_path, stop=40, pause=0), "--out", run_dir).returncode == 0
    data = run_dir / "data" / "rank-00000.h5"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    info = _cli("info", run_dir)
    assert info.returncode == 1
    assert "DAMAGED 1 of 1: data/rank-00000.h5" in info.stdout
    assert info.stderr.count("\n") == 1 and "data/rank-00000.h5" in info.stderr
    plot = _cli("plot", run_dir)
    assert plot.returncode == 1
    assert plot.stderr.count("\n") == 1 and "data/rank-00000.h5" in plot.stderr
    assert "Traceback" not in plot.stderr


def test_plot_of_a_run_without_probes_says_so(tmp_path):
    scen = tmp_path / "quiet.toml"
    scen.write_text(
        f'[simulation]\nname = "quiet"\n\n[[actors]]\nclass = "{TICKER}:Quiet"\n\n'
        "[results]\nplots = false\n"
    )
    assert _cli("run", scen, "--out", tmp_path / "run").returncode == 0
    plot = _cli("plot", tmp_path / "run", "--probe", "x")
    assert plot.returncode == 1
    assert (
        plot.stderr == f"error: {tmp_path / 'run'}: nothing to draw: the run recorded no probes\n"
    )
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        f.attrs["digest"] = ""
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare.h5").rename(tmp_path / "bare" / "results.h5")
    plot = _cli("plot", tmp_path / "bare")
    assert plot.returncode == 1
    assert "nothing to draw: the run recorded no probes and no performance figures" in plot.stderr


# --- signals -------------------------------------------------------------------------


@needs_mpi
@pytest.mark.parametrize("count", [2, 3])
def test_repeated_ctrl_c_leaves_an_interrupted_run(tmp_path, count):
    """Ctrl-C at a terminal signals the whole foreground process group, again and again."""
    run_dir = tmp_path / "run"
    proc = _start("run", _ticker(tmp_path), "--out", run_dir, "--ranks", "2", session=True)
    _wait_for(lambda: _marked(run_dir, 0) >= 5, proc, "5 ticks staged")
    for _ in range(count):
        os.killpg(proc.pid, signal.SIGINT)
    out, err = _finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "interrupted"
        ticks = f["probes/value/tick"][()]
    assert ticks.shape[0] >= 24 and np.array_equal(np.unique(ticks), np.arange(1, ticks[-1] + 1))
    assert not results.staging_files(run_dir)


SLOW_IMPORT = """
import os, time
open(os.environ["LOADING_MARKER"], "w").close()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # loading takes long: a signal comes meanwhile
    time.sleep(0.01)
from engine import Actor
class Slow(Actor):
    pass
"""


def test_sigint_while_loading_is_one_line_and_no_folder(tmp_path):
    (tmp_path / "slow_model.py").write_text(SLOW_IMPORT)
    scen = tmp_path / "slow.toml"
    scen.write_text('[simulation]\nname = "slow"\n\n[[actors]]\nclass = "slow_model.py:Slow"\n')
    marker = tmp_path / "loading"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "run", str(scen), "--out", str(tmp_path / "run")],
        cwd=ROOT,
        env=_env(LOADING_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marker.exists, proc, "the model is being imported")
    proc.send_signal(signal.SIGINT)
    out, err = _finish(proc)
    assert proc.returncode == 130
    assert err == "error: interrupted before the run started; nothing was written\n"
    assert not (tmp_path / "run").exists()


# Test-only hook, loaded at start-up through PYTHONPATH: the first probe figure says
# that it is being drawn, and waits until the test has sent its signal.
PLOT_HOOK = """
import os, time
marker = os.environ.get("PLOT_MARKER")
if marker:
    import runtime.plots as plots
    draw = plots._draw_probe

    def slow(*args, **kwargs):
        open(marker, "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(marker + ".sent") and time.monotonic() < deadline:
            time.sleep(0.01)
        return draw(*args, **kwargs)

    plots._draw_probe = slow
"""


def test_sigint_while_plotting_keeps_the_results_and_names_the_missing_plots(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PLOT_HOOK)
    marker = tmp_path / "plotting"
    (tmp_path / "two.py").write_text(
        "from engine import Actor\n\nclass Two(Actor):\n"
        "    def on_first_diasca(self):\n"
        "        self.record('a', 1.0)\n        self.record('b', 2.0)\n"
    )
    scen = tmp_path / "two.toml"
    scen.write_text('[simulation]\nname = "two"\n\n[[actors]]\nclass = "two.py:Two"\n')
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "run", str(scen), "--out", str(run_dir)],
        cwd=ROOT,
        env=_env(PLOT_MARKER=str(marker), PYTHONPATH=f"{hook}{os.pathsep}{ROOT}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marker.exists, proc, "the first figure is drawn")
    proc.send_signal(signal.SIGINT)
    Path(f"{marker}.sent").touch()
    out, err = _finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (
        f"plotting was interrupted after 1 figure(s); draw them with 'pydiasca plot {run_dir}'"
        in err
    )
    assert (run_dir / "probe-a.png").exists() and not (run_dir / "probe-b.png").exists()
    with h5py.File(run_dir / "results.h5") as f:
        assert f.attrs["status"] == "completed"  # the run was over when the signal came
    assert _cli("plot", run_dir).returncode == 0


def test_a_finished_staging_file_holds_every_tick(tmp_path):
    path = tmp_path / "s.bin"
    sink = StagingSink(path, {"rank": 0, "ranks": 1})
    sink.write("p", np.array([7]), np.array([1]), np.array([1.0]))
    sink.close()
    with Staged(path) as staged:
        assert staged.complete_before == ALL and not staged.torn
