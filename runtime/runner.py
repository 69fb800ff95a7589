"""Running a loaded scenario: run folder, kernel set-up, signals, results.

This is the one place that turns a ``Scenario`` into a finished run folder, in
one process or on every rank of an MPI job. The CLI and the tests both go
through ``run_scenario``, whose stages are: settings (the same on every rank),
kernel (actors and populations declared, before anything touches the disk),
run folder, the run itself, figures gathered from every rank, metadata, and
finally results.h5 and the outcome.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from engine import Failure, Kernel, LocalTransport, ProbeStore, RunStats, Transport

from . import results
from .checkpoint import install
from .comm import Comm
from .finalize import finalize
from .launch import note_run_dir, world
from .performance import gather_figures
from .placement import make_placement
from .polling import Silence
from .scenario import Override, Scenario, load_scenario
from .scenario.memory import memory_problem
from .sgroups import ROOT, SGroups
from .signals import RunSignals
from .staging import StagingSink
from .storage import SafeFileHandler, StorageError, storage_message, write_text

_log = logging.getLogger("pydiasca")


MARK_PERIOD_S = 0.25  # wall seconds between staging marks: what a killed run may lose
MARK_ENV = "PYDIASCA_MARK_S"


class RunFolderError(Exception):
    """The run folder cannot be used; str() is the one-line message for the user."""


class RunSetupError(Exception):
    """The scenario cannot run as laid out (e.g. a process grid that does not fit)."""


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
    plots_missing: str = ""  # why some plots were not drawn (rank 0), "" when all were
    digest_family: str = "portable"  # which runs' digests this one compares with (digest_family)
    problem: str = ""  # a file the run could not write (e.g. a full disk): it then failed
    interrupted: bool = False  # a signal came (the run may still have completed before it)

    @property
    def status(self) -> str:
        return self.stats.status


def default_run_dir(scenario: Scenario) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return Path(scenario.output or "results") / f"{scenario.name}-{stamp}"


def prepare_run_dir(run_dir: Path) -> Path:
    """Create the folder and prove it is writable before the simulation starts."""
    try:  # every step, the first included, can meet a name too long for the file system
        if (run_dir / results.RESULTS_FILE).exists():
            raise RunFolderError(
                f"{run_dir}: already holds a run ({results.RESULTS_FILE}); "
                f"choose another --out folder or remove that one"
            )
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
    scenario: Scenario | str | Path,
    overrides: Mapping[str, Any] | Iterable[str | Override] = (),
    *,
    out: str | Path | None = None,
    on_tick: Callable[[Kernel], None] | None = None,
    handle_signals: bool = False,
    run_order_seed: int | None = None,
    restore: Callable[[Kernel], None] | None = None,
) -> RunOutcome:
    """Run a scenario and write its run folder; the outcome says where (``run_dir``),
    its ``digest`` and ``status``: for notebooks and parameter sweeps.

    ``scenario`` is a scenario file, or a ``Scenario`` already loaded.
    ``overrides`` change the file's settings as ``--set`` does, given as
    ``{"simulation.seed": 7}`` or ``["simulation.seed=7"]``; a bad one raises
    ``ScenarioError``. In a plain Python process the run has one rank; under
    ``mpiexec`` every rank calls this, with the same arguments. ``restore``
    (``runtime.resume``) fills the kernel from a checkpoint instead of the
    scenario's actors.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, _overrides(overrides))
    elif overrides:
        raise TypeError("overrides apply to a scenario file: pass its path, not a Scenario")
    comm = world()
    # How long ranks wait for each other around the run: writing results and plots
    # may keep one rank busy for long, but a silent rank must still end the job.
    comm.timeout_s = max(10 * scenario.watchdog_s, 600.0)
    settings = _settings(scenario, comm)
    kernel = _kernel(scenario, settings, comm, run_order_seed, restore)
    # From here on a signal never interrupts Python code: it stops the run at the end
    # of the tick, waits while results are written, and cuts the plotting short.
    signals = RunSignals(kernel, comm.rank == ROOT) if handle_signals else None
    try:
        return _run_with_folder(scenario, settings, kernel, comm, out, on_tick, signals, restore)
    finally:
        if signals is not None:
            signals.restore()


def _overrides(given: Mapping[str, Any] | Iterable[str | Override]) -> list[str | Override]:
    """``{"section.key": value}`` as ``Override``s; strings and Overrides as they are."""
    if isinstance(given, str):  # one --set string
        return [given]
    if not isinstance(given, Mapping):
        return list(given)
    return [Override.of(target, value) for target, value in given.items()]


def _run_with_folder(
    scenario: Scenario,
    settings: _Settings,
    kernel: Kernel,
    comm: Comm,
    out: str | Path | None,
    on_tick: Callable[[Kernel], None] | None,
    signals: RunSignals | None,
    restore: Any = None,
) -> RunOutcome:
    run_dir = _run_folder(scenario, out, comm)
    started = datetime.now(UTC)
    start = _start_metadata(scenario, settings, comm, started)
    start.update(_backends(scenario, kernel, comm))
    if comm.rank == ROOT:
        log_handler = _start_log(scenario, settings, run_dir)
    else:  # other ranks stay quiet: their warnings go to run.log too
        log_handler = _rank_log(run_dir, comm.rank)
    if comm.rank == ROOT and scenario.stop_tick is None:
        _warn("no stop tick: this run ends only when nothing is planned; add stop_tick or duration")
    try:
        checkpoints = partial(install, kernel, scenario, settings.seed, run_dir, comm, restore)
        stats, problem = _run(kernel, run_dir, comm, start, on_tick, checkpoints)
        ended = datetime.now(UTC)
        report = gather_figures(kernel, settings.sgroups, comm)
        metadata = None
        if comm.rank == ROOT:
            metadata = {**start, **_end_metadata(report, stats, ended, problem)}
        outcome = _finish(scenario, settings, kernel, report, metadata, run_dir, comm)
        outcome.problem = problem
        if scenario.plots:
            stop = signals.received if signals is not None else None
            outcome.plots, outcome.plots_missing = _draw_plots(run_dir, comm, stop)
        outcome.interrupted = signals is not None and signals.received()
        if comm.rank == ROOT:
            from .report import summary

            _log.info("summary\n%s", summary(outcome, scenario.tick_duration))
    finally:
        _log.removeHandler(log_handler)
        log_handler.close()
    return outcome


# --- the stages of a run: settings, kernel, folder, run, figures, results -------------


@dataclass(frozen=True)
class _Settings:
    """What a run adds to its scenario's settings, the same on every rank."""

    seed: int  # the scenario's, or drawn by the root
    sgroups: SGroups  # the scenario's group_size over this job's ranks


def _settings(scenario: Scenario, comm: Comm) -> _Settings:
    """The scenario's settings; the root draws a seed the scenario leaves open.

    An ergodic run without a seed gets a fresh one, which is logged and stored,
    so that it can be replayed; any other run gets seed 0.
    """
    seed = scenario.seed
    if comm.rank == ROOT and seed is None:
        seed = secrets.randbits(62) if scenario.mode == "ergodic" else 0
    return _Settings(comm.bcast(seed), SGroups.of(comm.size, scenario.group_size))


def make_transport(comm: Comm, sgroups: SGroups, routing: str, watchdog_s: float) -> Transport:
    """The kernel's transport: in memory for one process, else MPI over s_groups."""
    if comm.mpi is None:
        return LocalTransport()
    from .mpi_transport import MpiTransport

    return MpiTransport(comm.mpi, sgroups=sgroups, routing=routing, watchdog_s=watchdog_s)


def _kernel(
    scenario: Scenario,
    settings: _Settings,
    comm: Comm,
    run_order_seed: int | None,
    restore: Callable[[Kernel], None] | None = None,
) -> Kernel:
    """This rank's kernel with the scenario's actors and populations declared.

    It runs before the run folder exists: a layout that cannot work stops here.
    """
    problem = memory_problem(scenario, comm.size) if comm.rank == ROOT else None
    problem = comm.bcast(problem)  # the root's estimate, so that every rank stops or none
    if problem is not None:
        raise RunSetupError(problem)
    sgroups = settings.sgroups
    transport = make_transport(comm, sgroups, scenario.routing, scenario.watchdog_s)
    placement = make_placement(
        scenario.placement, size=comm.size, group_size=sgroups.group_size, scenario=scenario
    )
    kernel = Kernel(
        tick_duration=scenario.tick_duration,
        stop_tick=scenario.stop_tick,
        seed=settings.seed,
        mode=scenario.mode,
        transport=transport,
        placement=placement,
        probes=ProbeStore(
            wanted=results.probe_filter(scenario.include, scenario.exclude),
            plot_modes=scenario.plot_modes,
        ),
        run_order_seed=run_order_seed,
    )
    for entry in scenario.actors if restore is None else ():
        if entry.count:
            kernel.add_actors(entry.cls, entry.count, entry.hint, entry.id, **entry.args)
    for pop in scenario.populations:  # dense populations: a block on every rank
        try:
            kernel.add_population(
                pop.cls, pop.name, scenario.process_grid, pop.args, backend=pop.backend
            )
        except Exception as exc:  # the model's constructor or declaration: the same on every rank
            text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            text = " ".join(text.splitlines())
            raise RunSetupError(f"{scenario.path}: [[populations]] {pop.name}: {text}") from None
    if restore is not None:
        restore(kernel)
    return kernel


def _run_folder(scenario: Scenario, out: str | Path | None, comm: Comm) -> Path:
    """The root proves the folder works; every rank learns it, or the same error."""
    choice: tuple[Path | None, str | None] = (None, None)
    if comm.rank == ROOT:
        try:
            folder = Path(out) if out is not None else default_run_dir(scenario)
            choice = (prepare_run_dir(folder), None)
        except RunFolderError as exc:
            choice = (None, str(exc))
    run_dir, problem = comm.bcast(choice)
    if problem is not None:
        raise RunFolderError(problem)
    assert run_dir is not None
    if comm.rank == ROOT:
        note_run_dir(run_dir)
    return run_dir


def _start_log(scenario: Scenario, settings: _Settings, run_dir: Path) -> logging.Handler:
    """The root keeps the scenario and ``run.log`` in the folder."""
    try:
        shutil.copyfile(scenario.path, run_dir / "scenario.toml")
        handler = SafeFileHandler(run_dir / "run.log")
    except OSError as exc:
        raise StorageError(storage_message(exc, run_dir / "scenario.toml")) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    sc, sg = scenario, settings.sgroups
    _log.info("run of %s (%s) in %s", sc.name, sc.path, run_dir)
    _log.info(
        "seed %d, mode %s, stop_tick %s, ranks %d", settings.seed, sc.mode, sc.stop_tick, sg.size
    )
    if sg.size > 1:
        _log.info(
            "group size %d, routing %s, placement %s", sg.group_size, sc.routing, sc.placement
        )
    return handler


def _warn(text: str, root: bool = True) -> None:
    """A warning for the user: in ``run.log``, and on stderr now from the root."""
    if root:
        print(f"warning: {text}", file=sys.stderr, flush=True)
    _log.warning("%s", text)


def _rank_log(run_dir: Path, rank: int) -> logging.Handler:
    """A rank other than the root appends its warnings and errors to ``run.log``."""
    handler = SafeFileHandler(run_dir / "run.log", delay=True)  # opened when needed
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s rank {rank}: %(message)s"))
    _log.addHandler(handler)
    return handler


def _run(
    kernel: Kernel,
    run_dir: Path,
    comm: Comm,
    start: dict[str, Any],
    on_tick: Callable[[Kernel], None] | None,
    checkpoints: Callable[[StagingSink], Any] = lambda sink: None,
) -> tuple[RunStats, str]:
    """Run the kernel, its probes spilling into this rank's staging file.

    At tick boundaries (at most every ``MARK_PERIOD_S``) every rank flushes its
    probes and marks its staging file, so that a killed run can be recovered up
    to there; a staging write that fails stops the run at the end of the tick.
    Returns the stats and the first storage problem of any rank ("" if none).
    """
    header = {"rank": comm.rank, "ranks": comm.size}
    if comm.rank == ROOT:
        header["metadata"] = start
    sink = StagingSink(results.staging_path(run_dir, comm.rank), header)
    kernel.probes.sink = sink
    period = _mark_period()
    next_mark = time.monotonic() + period
    shared_told = False

    def tick_started(k: Kernel) -> None:
        nonlocal next_mark, shared_told
        if not shared_told:  # the initial actors are built: say what they share
            shared_told = True
            _warn_shared(k, comm.rank == ROOT)
        if on_tick is not None and comm.rank == ROOT:
            on_tick(k)
        if time.monotonic() >= next_mark:
            k.probes.flush()
            sink.mark(k.tick, k.probes.declarations)
            next_mark = time.monotonic() + period
        if sink.error:
            k.interrupt()

    kernel.on_tick = tick_started
    checkpointer = checkpoints(sink)  # runtime.checkpoint: at the ends of ticks, if asked for
    if sink.error:
        kernel.interrupt()
    try:
        stats = kernel.run()
        if not shared_told:  # a run of tick 0 alone
            _warn_shared(kernel, comm.rank == ROOT)
        sink.close(kernel.probes.declarations)  # the final mark: every row is staged
    except Silence as exc:  # a rank went silent and the job ends: keep what this rank recorded
        _log.error("%s", exc)
        with contextlib.suppress(Exception):
            kernel.probes.flush()
            sink.mark(kernel.tick, kernel.probes.declarations)
        raise
    finally:
        sink.abandon()
    mine = sink.error or (checkpointer.problem if checkpointer is not None else "")
    problem = next((p for p in comm.allgather(mine) if p), "")
    if problem:
        if comm.rank == ROOT:
            _log.error("%s; the run stopped at the end of tick %d", problem, stats.last_tick)
        stats.status = "failed"
    return stats, problem


def _warn_shared(kernel: Kernel, root: bool) -> None:
    """One warning per (class, attribute) whose mutable object two actors hold."""
    from .check import shared_state_warning

    for found in kernel.shared:
        _warn(shared_state_warning(kernel, found), root)


def _mark_period() -> float:
    """Seconds between staging marks (``PYDIASCA_MARK_S``; 0: every tick, for tests)."""
    try:
        return max(0.0, float(os.environ.get(MARK_ENV, MARK_PERIOD_S)))
    except ValueError:
        return MARK_PERIOD_S


def _start_metadata(
    scenario: Scenario, settings: _Settings, comm: Comm, started: datetime
) -> dict[str, Any]:
    """The attributes of results.h5 known before the run (the root stages them too,
    so that ``recover`` has them)."""
    if comm.rank != ROOT:
        return {}
    return {
        "scenario": scenario.text,
        "scenario_path": str(scenario.path),
        "name": scenario.name,
        "seed": settings.seed,
        "mode": scenario.mode,
        "tick_duration": scenario.tick_duration,
        "stop_tick": -1 if scenario.stop_tick is None else scenario.stop_tick,
        "ranks": comm.size,
        "groups": settings.sgroups.count,
        "group_size": settings.sgroups.group_size,
        "routing": scenario.routing,
        "placement": scenario.placement,
        "started_utc": started.isoformat(),
        "initial_actors": _initial_actors(scenario),
        "probe_include": list(scenario.include),
        "probe_exclude": list(scenario.exclude),
        "plots": scenario.plots,
        "git_commit": results.git_commit(),
        "mpi_library": comm.library,
        **results.versions(),
    }


def _digest_family(scenario: Scenario, kernel: Kernel) -> str:
    """Which runs' digests this run's digest may be compared with.

    "portable" says every backend and rank count gives the same digest. A
    population whose scenario entry says ``digest = "per-backend"`` (its floats
    may round differently on the GPU) adds "<name>=cpu" (cpu and threads run
    the same compiled loop) or "<name>=cuda": only runs of one family agree.
    """
    family = [
        f"{p.name}={'cuda' if kernel.population(p.name).backend == 'cuda' else 'cpu'}"
        for p in scenario.populations
        if p.digest == "per-backend"
    ]
    return ", ".join(family) or "portable"


def _backends(scenario: Scenario, kernel: Kernel, comm: Comm) -> dict[str, Any]:
    """Where each population ran (ranks on a shared node default to cpu, others to
    threads), and the digest family; a collective, the attributes on the root only."""
    mine = [kernel.population(p.name).backend for p in scenario.populations]
    everyone = comm.gather(mine)
    if comm.rank != ROOT:
        return {}
    assert everyone is not None
    ran = [
        f"{p.name}={','.join(sorted({b[i] for b in everyone}))}"
        for i, p in enumerate(scenario.populations)
    ]
    return {"backends": ", ".join(ran), "digest_family": _digest_family(scenario, kernel)}


def _end_metadata(report: dict, stats: RunStats, ended: datetime, problem: str) -> dict[str, Any]:
    """The attributes of results.h5 that the run itself decides (root only)."""
    for failure in stats.failures:
        _log.error("%s\n%s", failure.describe(), failure.traceback)
    return {
        "status": stats.status,
        "ended_utc": ended.isoformat(),
        "wall_s": stats.wall_s,
        "ticks": stats.ticks,
        "last_tick": stats.last_tick,
        "diascas": stats.diascas,
        "messages": stats.messages,
        "created": stats.created,
        "deleted": stats.deleted,
        "actors_per_rank": report["actors_per_rank"],
        "actors_per_group": report["actors_per_group"],
        "cross_rank_fraction": report["cross_rank_fraction"],
        "cross_group_fraction": report["cross_group_fraction"],
        "failure": problem or _failure_text(stats.failures),
    }


def _finish(
    scenario: Scenario,
    settings: _Settings,
    kernel: Kernel,
    report: dict,
    metadata: dict | None,
    run_dir: Path,
    comm: Comm,
) -> RunOutcome:
    """Write results.h5 (and failure.txt) and say what the run left behind."""
    stats = kernel.stats
    t0 = time.perf_counter()
    done = finalize(
        run_dir,
        comm=comm,
        declarations=kernel.probes.declarations,
        trace=kernel.trace.columns(),
        metadata=metadata,
    )
    if comm.rank == ROOT:
        _log.info(
            "results written in %.2f s: %d probe(s), %d rows; digest %s",
            time.perf_counter() - t0,
            done.probes,
            done.rows,
            done.digest,
        )
        if stats.failures:
            try:
                write_text(run_dir / "failure.txt", _failure_text(stats.failures))
            except StorageError as exc:
                _log.error("%s", exc)
    return RunOutcome(
        run_dir=run_dir,
        digest=done.digest,
        stats=stats,
        seed=settings.seed,
        mode=scenario.mode,
        stop_tick=scenario.stop_tick,
        initial_actors=_initial_actors(scenario),
        ranks=comm.size,
        report=report,
        failures=stats.failures,
        imbalance=done.imbalance,
        communication=done.communication,
        digest_family=_digest_family(scenario, kernel),
        probes=done.probes,
        rows=done.rows,
    )


def _initial_actors(scenario: Scenario) -> int:
    return sum(entry.count for entry in scenario.actors)


def _failure_text(failures: list[Failure]) -> str:
    return "\n\n".join(f"{f.describe()}\n{f.traceback}" for f in failures)


def _draw_plots(
    run_dir: Path, comm: Comm, stop: Callable[[], bool] | None
) -> tuple[list[Path], str]:
    """Every rank draws its share of the figures; one that fails is only logged.

    Returns the PNGs drawn (rank 0: by every rank) and, on rank 0, why some are
    missing ("" when none is): an interruption, or figures that failed.
    """
    t0 = time.perf_counter()
    from .plots import draw_run

    failed: list[str] = []
    try:
        drawn = draw_run(run_dir, rank=comm.rank, size=comm.size, stop=stop, failed=failed)
    except Exception as exc:  # plots must never lose a run
        _log.warning("plots failed on rank %d: %s: %s", comm.rank, type(exc).__name__, exc)
        drawn, failed = [], [f"rank {comm.rank}'s figures"]
    cut = stop is not None and stop()
    everyone = comm.gather((drawn, failed, cut))
    if comm.rank != ROOT:
        return drawn, ""
    assert everyone is not None
    drawn = sorted(p for part, _, _ in everyone for p in part)
    failed = [name for _, part, _ in everyone for name in part]
    _log.info("%d plot(s) drawn in %.2f s", len(drawn), time.perf_counter() - t0)
    again = f"draw them with 'pydiasca plot {run_dir}'"
    missing = ""
    if any(c for _, _, c in everyone):
        missing = f"plotting was interrupted after {len(drawn)} figure(s); {again}"
    elif failed:
        missing = f"{len(failed)} figure(s) could not be drawn, e.g. {failed[0]}; {again}"
    if missing:
        _log.warning("%s", missing)
    return drawn, missing


__all__ = ["RunFolderError", "RunOutcome", "RunSetupError", "make_transport", "run_scenario"]
