"""Running a loaded scenario: run folder, kernel set-up, signals, results.

This is the one place that turns a ``Scenario`` into a finished run folder.
The CLI and the tests both go through ``run_scenario``.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine import Failure, Kernel, ProbeStore, RunStats

from . import results
from .scenario import Scenario

_log = logging.getLogger("pydiasca")


class RunFolderError(Exception):
    """The run folder cannot be used; str() is the one-line message for the user."""


@dataclass
class RunOutcome:
    """What a finished run left behind."""

    run_dir: Path
    digest: str
    stats: RunStats
    seed: int
    mode: str
    stop_tick: int | None
    initial_actors: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.stats.status


def default_run_dir(scenario: Scenario) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return Path(scenario.output or "results") / f"{scenario.name}-{stamp}"


def prepare_run_dir(run_dir: Path) -> Path:
    """Create the folder and prove it is writable before the simulation starts."""
    if (run_dir / results.RESULTS_FILE).exists():
        raise RunFolderError(
            f"{run_dir}: already holds a run ({results.RESULTS_FILE}); "
            f"choose another --out folder or remove that one"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(
            f"{run_dir}: cannot write the run folder ({exc.strerror or exc}); "
            f"choose a writable place with --out or [results] output"
        ) from None
    return run_dir


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    mode: str | None = None,
    stop_tick: int | None = None,
    out: str | Path | None = None,
    on_tick: Callable[[Kernel], None] | None = None,
    handle_signals: bool = False,
    run_order_seed: int | None = None,
) -> RunOutcome:
    """Run ``scenario`` in this process and write its run folder.

    Arguments given here override the scenario's. An ergodic run without a
    seed draws a fresh one, logs it and stores it, so that it can be replayed.
    """
    mode = mode or scenario.mode
    if seed is None:
        seed = scenario.seed
    if seed is None:
        seed = secrets.randbits(62) if mode == "ergodic" else 0
    if stop_tick is None:
        stop_tick = scenario.stop_tick
    run_dir = prepare_run_dir(Path(out) if out is not None else default_run_dir(scenario))
    shutil.copyfile(scenario.path, run_dir / "scenario.toml")
    log_handler = _open_log(run_dir)
    _log.info("run of %s (%s) in %s", scenario.name, scenario.path, run_dir)
    _log.info("seed %d, mode %s, stop_tick %s", seed, mode, stop_tick)

    staging = results.staging_path(run_dir, 0)
    sink = results.StagingSink(staging)
    kernel = Kernel(
        tick_duration=scenario.tick_duration,
        stop_tick=stop_tick,
        seed=seed,
        mode=mode,
        probes=ProbeStore(sink),
        run_order_seed=run_order_seed,
    )
    kernel.on_tick = on_tick
    initial = 0
    for entry in scenario.actors:
        if entry.count:
            kernel.add_actors(entry.cls, entry.count, entry.hint, **entry.args)
            initial += entry.count

    started = datetime.now(UTC)
    previous = _catch_signals(kernel) if handle_signals else None
    try:
        stats = kernel.run()
    finally:
        if previous is not None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        sink.close()
    ended = datetime.now(UTC)

    for failure in stats.failures:
        _log.error("%s\n%s", failure.describe(), failure.traceback)
    metadata = {
        "scenario": scenario.text,
        "scenario_path": str(scenario.path),
        "name": scenario.name,
        "seed": seed,
        "mode": mode,
        "tick_duration": scenario.tick_duration,
        "stop_tick": -1 if stop_tick is None else stop_tick,
        "ranks": 1,
        "status": stats.status,
        "started_utc": started.isoformat(),
        "ended_utc": ended.isoformat(),
        "wall_s": stats.wall_s,
        "ticks": stats.ticks,
        "last_tick": stats.last_tick,
        "diascas": stats.diascas,
        "messages": stats.messages,
        "initial_actors": initial,
        "created": stats.created,
        "deleted": stats.deleted,
        "failure": "\n\n".join(f"{f.describe()}\n{f.traceback}" for f in stats.failures),
        "git_commit": results.git_commit(),
        **results.versions(),
    }
    t0 = time.perf_counter()
    digest = results.finalize(run_dir, [staging], metadata)
    _log.info("results written in %.2f s; digest %s", time.perf_counter() - t0, digest)
    if stats.failures:
        (run_dir / "failure.txt").write_text(metadata["failure"])
    _log.removeHandler(log_handler)
    log_handler.close()
    return RunOutcome(
        run_dir=run_dir,
        digest=digest,
        stats=stats,
        seed=seed,
        mode=mode,
        stop_tick=stop_tick,
        initial_actors=initial,
        failures=stats.failures,
    )


def _open_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    return handler


def _catch_signals(kernel: Kernel) -> dict:
    """SIGINT/SIGTERM end the run cleanly at the end of the current tick."""

    def stop(signum: int, frame: object) -> None:
        _log.warning("signal %d: stopping at the end of tick %d", signum, kernel.tick)
        kernel.interrupt()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop)
    return previous
