"""What a mutant must give, checked in-process (loading) or as a real ``pydiasca run``.

Every mutant must either be refused (exit code 2, exactly one line on stderr,
no traceback, no run folder) or run: exit code 0 with a readable results.h5 of
status ``completed``, or exit code 1 with a report and status ``failed``.
Anything else is a defect.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

STOP_TICK = 3  # runs stay tiny: every run gets --stop-tick 3
RUN_ARGS = ["--stop-tick", str(STOP_TICK), "--set", "results.plots=false"]
SMALL = ("soda.toml", "soda-stochastic.toml", "heat-small.toml", "epidemic-small.toml")  # quick


@dataclass(frozen=True)
class Outcome:
    """``kind``: refused, accepted (loaded, not run), ran, failed (cleanly) or defect."""

    kind: str
    detail: str = ""


def check_load(path: Path) -> Outcome:
    """Load the mutant in this process, with the run's overrides, as the command line would."""
    from runtime.scenario import Override, ScenarioError, load_scenario

    stop = Override("simulation", "stop_tick", STOP_TICK, origin="--stop-tick")
    try:
        load_scenario(path, ["results.plots=false", stop])
    except ScenarioError as error:
        text = f"error: {error}"
        if "\n" in text or "Traceback" in text:
            return Outcome("defect", f"a message of several lines: {text!r}")
        return Outcome("refused", text)
    except KeyboardInterrupt:
        raise
    except BaseException:  # a mutant must never break the checker itself
        return Outcome("defect", traceback.format_exc())
    return Outcome("accepted")


def command() -> list[str]:
    """The ``pydiasca`` script of this environment (a real entry point), else the module."""
    script = Path(sys.executable).with_name("pydiasca")
    return [str(script)] if script.exists() else [sys.executable, "-m", "runtime.cli"]


def check_run(path: Path, timeout: float = 120) -> Outcome:
    """Run the mutant as a real ``pydiasca run`` in its own folder and judge what it gives."""
    work = path.parent
    out = work / "run"
    try:
        done = subprocess.run(
            [*command(), "run", str(path), "--out", str(out), *RUN_ARGS],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Outcome("defect", f"no answer within {timeout} s")
    try:
        return _judge(done, out, work)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _judge(done: subprocess.CompletedProcess, out: Path, work: Path) -> Outcome:
    err = done.stderr
    if "Traceback" in err and done.returncode != 1:
        return Outcome("defect", f"exit {done.returncode} with a traceback:\n{err[-3000:]}")
    if done.returncode == 2:
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return Outcome("defect", f"exit 2 with {len(lines)} lines on stderr:\n{err[-3000:]}")
        if out.exists() or (work / "results").exists():
            return Outcome("defect", f"refused, but a run folder was made: {lines[0]}")
        return Outcome("refused", lines[0])
    if done.returncode in (0, 1):
        status = _status(out / "results.h5")
        want = "completed" if done.returncode == 0 else "failed"
        if status != want:
            return Outcome("defect", f"exit {done.returncode}, status {status!r}:\n{err[-3000:]}")
        if done.returncode == 1 and not (out / "failure.txt").exists():
            return Outcome("defect", f"exit 1 without failure.txt:\n{err[-3000:]}")
        return Outcome("ran" if done.returncode == 0 else "failed", err[-300:])
    return Outcome("defect", f"exit {done.returncode}:\n{err[-3000:]}")


def _status(results: Path) -> str | None:
    try:
        import h5py

        with h5py.File(results, "r") as f:
            status = f.attrs.get("status")
    except (OSError, KeyError):
        return None
    return status.decode() if isinstance(status, bytes) else status
