"""Running a loaded scenario: run folder, kernel set-up, signals, results.

This is the one place that turns a ``Scenario`` into a finished run folder, in
one process or on every rank of an MPI job. The CLI and the tests both go
through ``run_scenario``.
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
from typing import Any

from engine import Failure, Kernel, ProbeStore, RunStats

from . import results
from .launch import World, world
from .placement import make_placement
from .scenario import Scenario

_log = logging.getLogger("pydiasca")


class RunFolderError(Exception):
    """The run folder cannot be used; str() is the one-line message for the user."""


class RunSetupError(Exception):
    """The scenario cannot run as laid out (e.g. a process grid that does not fit)."""


@dataclass
class Deployment:
    """How a run is spread over ranks; None fields fall back to the scenario's."""

    group_size: int | None = None
    routing: str | None = None
    placement: str | None = None
    watchdog_s: float | None = None


@dataclass
class RunOutcome:
    """What a finished run left behind (the same on every rank)."""

    run_dir: Path
    digest: str
    stats: RunStats
    seed: int
    mode: str
    stop_tick: int | None
    initial_actors: int
    ranks: int = 1
    report: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    imbalance: float = 1.0  # busiest over mean rank kernel time per tick, time-weighted
    communication: float = 0.0  # share of rank time spent in exchange and consensus
    probes: int = 0  # probes written to results.h5
    rows: int = 0  # their rows, all probes together
    plots: list[Path] = field(default_factory=list)  # PNGs drawn (rank 0: by every rank)

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
    deployment: Deployment | None = None,
    on_tick: Callable[[Kernel], None] | None = None,
    handle_signals: bool = False,
    run_order_seed: int | None = None,
) -> RunOutcome:
    """Run ``scenario`` on this process's rank(s) and write its run folder.

    Arguments given here override the scenario's. An ergodic run without a
    seed draws a fresh one, logs it and stores it, so that it can be replayed.
    Under MPI every rank calls this; rank 0 decides the folder and the seed.
    """
    w = world()
    dep = deployment or Deployment()
    group_size = dep.group_size or scenario.group_size or w.size
    routing = dep.routing or scenario.routing
    policy = dep.placement or scenario.placement
    watchdog_s = dep.watchdog_s or scenario.watchdog_s
    mode = mode or scenario.mode
    seed = scenario.seed if seed is None else seed
    stop_tick = scenario.stop_tick if stop_tick is None else stop_tick

    # Rank 0 draws what must be the same everywhere.
    if w.rank == 0 and seed is None:
        seed = secrets.randbits(62) if mode == "ergodic" else 0
    seed = w.bcast(seed)

    # Set the run up before touching the disk: a layout that cannot work stops here.
    transport = w.transport(group_size=group_size, routing=routing, watchdog_s=watchdog_s)
    placement = make_placement(policy, size=w.size, group_size=group_size, scenario=scenario)
    probes = ProbeStore(wanted=results.probe_filter(scenario.include, scenario.exclude))
    kernel = Kernel(
        tick_duration=scenario.tick_duration,
        stop_tick=stop_tick,
        seed=seed,
        mode=mode,
        transport=transport,
        placement=placement,
        probes=probes,
        run_order_seed=run_order_seed,
    )
    kernel.on_tick = on_tick if w.rank == 0 else None
    initial = 0
    for entry in scenario.actors:
        if entry.count:
            kernel.add_actors(entry.cls, entry.count, entry.hint, **entry.args)
            initial += entry.count
    for pop in scenario.populations:  # dense populations: a block on every rank
        try:
            kernel.add_population(pop.cls, pop.name, scenario.process_grid, pop.args)
        except ValueError as exc:  # every rank finds the same problem
            raise RunSetupError(f"{scenario.path}: [[populations]] {pop.name}: {exc}") from None

    # Rank 0 proves the folder works, then every rank stages its probes there.
    choice: tuple[Path | None, str | None] = (None, None)
    if w.rank == 0:
        try:
            choice = (
                prepare_run_dir(Path(out) if out is not None else default_run_dir(scenario)),
                None,
            )
        except RunFolderError as exc:
            choice = (None, str(exc))
    run_dir, problem = w.bcast(choice)
    if problem is not None:
        raise RunFolderError(problem)
    assert run_dir is not None
    staging = results.staging_path(run_dir, w.rank)
    probes.sink = sink = results.StagingSink(staging)

    log_handler = None
    if w.rank == 0:
        shutil.copyfile(scenario.path, run_dir / "scenario.toml")
        log_handler = _open_log(run_dir)
        _log.info("run of %s (%s) in %s", scenario.name, scenario.path, run_dir)
        _log.info("seed %d, mode %s, stop_tick %s, ranks %d", seed, mode, stop_tick, w.size)
        if w.size > 1:
            _log.info("group size %d, routing %s, placement %s", group_size, routing, policy)

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

    per_rank = w.gather(_rank_figures(kernel, transport))
    report: dict[str, Any] = {}
    metadata: dict[str, Any] | None = None
    if w.rank == 0:
        assert per_rank is not None
        report = _placement_report(per_rank, placement, group_size)
        stats.messages = sum(r["messages"] for r in per_rank)
        stats.spontaneous = sum(r["spontaneous"] for r in per_rank)
        stats.deleted = sum(r["deleted"] for r in per_rank)
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
            "ranks": w.size,
            "groups": report["groups"],
            "group_size": group_size,
            "routing": routing,
            "placement": policy,
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
            "actors_per_rank": report["actors_per_rank"],
            "actors_per_group": report["actors_per_group"],
            "cross_rank_fraction": report["cross_rank_fraction"],
            "cross_group_fraction": report["cross_group_fraction"],
            "probe_include": list(scenario.include),
            "probe_exclude": list(scenario.exclude),
            "plots": scenario.plots,
            "failure": "\n\n".join(f"{f.describe()}\n{f.traceback}" for f in stats.failures),
            "git_commit": results.git_commit(),
            "mpi_library": w.library,
            **results.versions(),
        }
    t0 = time.perf_counter()
    done = results.finalize(
        run_dir,
        comm=w.comm,
        declarations=kernel.probes.declarations,
        trace=kernel.trace.columns(),
        metadata=metadata,
    )
    if w.rank == 0:
        _log.info(
            "results written in %.2f s: %d probe(s), %d rows; digest %s",
            time.perf_counter() - t0,
            done.probes,
            done.rows,
            done.digest,
        )
        if stats.failures:
            (run_dir / "failure.txt").write_text(metadata["failure"])  # type: ignore[index]
    report, totals = w.bcast((report, (stats.messages, stats.spontaneous, stats.deleted)))
    stats.messages, stats.spontaneous, stats.deleted = totals
    outcome = RunOutcome(
        run_dir=run_dir,
        digest=done.digest,
        stats=stats,
        seed=seed,
        mode=mode,
        stop_tick=stop_tick,
        initial_actors=initial,
        ranks=w.size,
        report=report,
        failures=stats.failures,
        imbalance=done.imbalance,
        communication=done.communication,
        probes=done.probes,
        rows=done.rows,
    )
    if scenario.plots:
        outcome.plots = _draw_plots(run_dir, w)
    if log_handler is not None:
        from .report import summary

        _log.info("summary\n%s", summary(outcome, scenario.tick_duration))
        _log.removeHandler(log_handler)
        log_handler.close()
    return outcome


def _draw_plots(run_dir: Path, w: World) -> list[Path]:
    """Every rank draws its share of the figures; a plot that fails is only logged."""
    t0 = time.perf_counter()
    try:
        from .plots import draw_run

        drawn = draw_run(run_dir, rank=w.rank, size=w.size)
    except Exception as exc:  # plots must never lose a run
        _log.warning("plots failed on rank %d: %s: %s", w.rank, type(exc).__name__, exc)
        drawn = []
    everyone = w.gather(drawn)
    if w.rank == 0:
        assert everyone is not None
        drawn = sorted(p for part in everyone for p in part)
        _log.info("%d plot(s) drawn in %.2f s", len(drawn), time.perf_counter() - t0)
    return drawn


def _rank_figures(kernel: Kernel, transport: Any) -> dict[str, Any]:
    figures = {
        "actors": kernel.actor_count,
        "messages": kernel.stats.messages,
        "spontaneous": kernel.stats.spontaneous,
        "deleted": kernel.stats.deleted,
        "messages_out": 0,
        "cross_group": 0,
        "bytes_out": 0,
        "peers": 0,
        "exchange_s": 0.0,
        "consensus_s": 0.0,
    }
    ex = getattr(transport, "stats", None)
    if ex is not None:
        figures.update(
            messages_out=ex.messages_out,
            cross_group=ex.cross_group,
            bytes_out=ex.bytes_out,
            peers=len(ex.peers),
            exchange_s=ex.exchange_s,
            consensus_s=ex.consensus_s,
        )
    return figures


def _placement_report(per_rank: list[dict], placement: Any, group_size: int) -> dict[str, Any]:
    """Actors per rank and group, and how much traffic crossed ranks and groups."""
    size = len(per_rank)
    per_rank_actors = [r["actors"] for r in per_rank]
    n_groups = -(-size // group_size)
    per_group = [
        sum(per_rank_actors[g * group_size : (g + 1) * group_size]) for g in range(n_groups)
    ]
    messages = sum(r["messages"] for r in per_rank)
    crossed = sum(r["messages_out"] for r in per_rank)
    crossed_groups = sum(r["cross_group"] for r in per_rank)
    return {
        "groups": n_groups,
        "actors_per_rank": per_rank_actors,
        "actors_per_group": per_group,
        "cross_rank_fraction": crossed / messages if messages else 0.0,
        "cross_group_fraction": crossed_groups / messages if messages else 0.0,
        "per_rank": per_rank,
    }


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


__all__ = ["Deployment", "RunFolderError", "RunOutcome", "RunSetupError", "World", "run_scenario"]
