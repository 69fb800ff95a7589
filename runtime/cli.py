"""The ``pydiasca`` command line.

Bad input exits with code 2 and one line on stderr; a model failure exits with
code 1 after writing what the run produced; no path shows a Python traceback
for a user's mistake.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from engine import MODES, Kernel

from . import runner
from .comm import Comm
from .digest import digest_line
from .launch import LaunchError, launched_size, relaunch, world
from .placement import POLICIES
from .polling import Silence
from .report import format_seconds, summary
from .scenario import Override, Scenario, ScenarioError, load_scenario
from .scenario.values import MAX_RANKS
from .sgroups import ROUTINGS
from .storage import StorageError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("pydiasca")
    except importlib.metadata.PackageNotFoundError:
        from engine import __version__

        return __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, like any bad input."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {text}; see {self.prog} --help\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pydiasca", description="Discrete-time actor simulations, tick by tick.")
    parser.add_argument("--version", action="version", version=f"pydiasca {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a scenario file")
    run.add_argument("scenario", help="the scenario's TOML file")
    run.add_argument("--seed", type=int, help="override [simulation] seed")
    run.add_argument("--mode", metavar="|".join(MODES), help="override [simulation] mode")
    run.add_argument("--stop-tick", type=int, metavar="T", help="stop before tick T")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one scenario setting (repeatable), e.g. --set simulation.seed=7",
    )
    run.add_argument("--out", metavar="DIR", help="run folder (default results/<name>-<time>)")
    run.add_argument(
        "--backend",
        metavar="cpu|threads|cuda",
        help="run every dense population on this backend (docs/populations.md)",
    )
    dist = run.add_argument_group("distribution (see docs/clusters.md)")
    dist.add_argument("--ranks", type=int, metavar="N", help="start N local MPI ranks")
    dist.add_argument("--group-size", type=int, metavar="G", help="ranks per s_group")
    dist.add_argument("--routing", metavar="|".join(ROUTINGS), help="cross-group message routing")
    dist.add_argument("--placement", metavar="|".join(POLICIES), help="load-balancing policy")
    run.add_argument(
        "--checkpoint-every", type=int, metavar="N", help="take a checkpoint every N ticks"
    )
    dist.add_argument(
        "--recover",
        type=int,
        metavar="K",
        help="with --ranks: resume from the last checkpoint after up to K crashes",
    )
    resume = sub.add_parser(
        "resume", help="continue a run from its newest checkpoint, on any number of ranks"
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    resume.add_argument(
        "--checkpoint-every", type=int, metavar="N", help="take a checkpoint every N ticks"
    )
    resume.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a setting that does not change results, e.g. deployment.process_grid",
    )
    again = resume.add_argument_group("distribution (see docs/checkpoints.md)")
    again.add_argument("--ranks", type=int, metavar="M", help="start M local MPI ranks")
    again.add_argument("--group-size", type=int, metavar="G", help="ranks per s_group")
    again.add_argument("--routing", metavar="|".join(ROUTINGS), help="cross-group routing")
    again.add_argument("--placement", metavar="|".join(POLICIES), help="placement policy")
    plot = sub.add_parser("plot", help="draw a run's figures again (PNG files in its folder)")
    plot.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (holding results.h5)")
    plot.add_argument(
        "--probe", metavar="REGEX", help="only the probes this regular expression finds"
    )
    plot.add_argument(
        "--mode",
        metavar="bands|sum|mean|count|events",
        help="draw the probes this way instead of their own plot mode",
    )
    info = sub.add_parser("info", help="print a run's metadata, probes and status")
    info.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (holding results.h5)")
    recover = sub.add_parser(
        "recover", help="build results.h5 from the staging files of a run that did not finish"
    )
    recover.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    check = sub.add_parser(
        "check", help="run a scenario on 1 rank and on other layouts, and compare the results"
    )
    check.add_argument("scenario", help="the scenario's TOML file")
    check.add_argument(
        "--ticks", type=_positive, metavar="N", help="ticks to run (default 100, or the stop tick)"
    )
    check.add_argument(
        "--ranks",
        type=_rank_list,
        default=None,
        metavar="2,3",
        help="the layouts compared with 1 rank (default 2)",
    )
    check.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="as for run"
    )
    check.add_argument("--keep", metavar="DIR", help="keep the runs in DIR/ranks-<N>/")
    generate = sub.add_parser(
        "generate", help="generate a model's input, e.g. generate city --scale tiny --out city.h5"
    )
    generate.add_argument("model", metavar="|".join(_GENERATORS), help="what to generate")
    generate.add_argument("rest", nargs=argparse.REMAINDER, help="its options (see its --help)")
    return parser


# Generators, by the name that resolves them, as scenarios name model classes:
# runtime reaches models only through such names, never by an import.
_GENERATORS = {"city": "models.city.cli:main"}


def _generate(args: argparse.Namespace) -> int:
    import importlib

    ref = _GENERATORS.get(args.model)
    if ref is None:
        print(
            f"error: pydiasca generate: unknown model {args.model!r}; "
            f"expected one of {', '.join(_GENERATORS)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    module, _, name = ref.partition(":")
    command = getattr(importlib.import_module(module), name)
    return command(args.rest, prog=f"pydiasca generate {args.model}")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _rank_list(text: str) -> list[int]:
    """``--ranks 2,3``: numbers of ranks, each from 1 to MAX_RANKS."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and 1 <= int(p) <= MAX_RANKS for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected numbers of ranks separated by commas, such as 2,3; got {text!r}"
        )
    return [int(p) for p in parts]


class _Progress:
    """Progress of a run on rank 0, shown only once the run has lasted 2 seconds.

    On a terminal: a live rich display (tick, simulated time, % of stop_tick,
    events/s, ETA). Otherwise (a batch job's log, a pipe): one plain line on
    stderr every ``LINE_PERIOD_S`` seconds, so that short runs print nothing.
    """

    DELAY_S = 2.0
    PERIOD_S = 0.25
    LINE_PERIOD_S = 10.0

    def __init__(
        self, stop_tick: int | None, tick_duration: float, live: bool | None = None
    ) -> None:
        self.stop_tick = stop_tick
        self.tick_duration = tick_duration
        self.live = sys.stdout.isatty() if live is None else live
        self.start = time.perf_counter()
        self.next_update = self.start + self.DELAY_S
        self._last = (self.start, 0)  # (time, events) at the previous update
        self._bar = None
        self._task = None

    def __call__(self, kernel: Kernel) -> None:
        now = time.perf_counter()
        if now < self.next_update:
            return
        self.next_update = now + (self.PERIOD_S if self.live else self.LINE_PERIOD_S)
        then, events = self._last
        rate = (kernel.global_events - events) / max(now - then, 1e-9)
        self._last = (now, kernel.global_events)
        simtime = format_seconds(kernel.tick * self.tick_duration)
        if not self.live:
            print(self._line(kernel.tick, simtime, rate, now), file=sys.stderr, flush=True)
            return
        if self._bar is None:
            self._open()
        self._bar.update(
            self._task,
            completed=kernel.tick,
            tick=kernel.tick,
            simtime=simtime,
            rate=f"{rate:,.0f}",
        )

    def _line(self, tick: int, simtime: str, rate: float, now: float) -> str:
        text = f"tick {tick:,} ({simtime} simulated)"
        if self.stop_tick:
            done = tick / self.stop_tick
            text += f", {done:.1%} of stop tick {self.stop_tick:,}"
            if done > 0:
                left = (now - self.start) * (1 - done) / done
                text += f", ETA {format_seconds(left)}"
        return f"{text}, {rate:,.0f} events/s"

    def _open(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("tick {task.fields[tick]:>10}  sim {task.fields[simtime]:>12}")]
        if self.stop_tick is not None:
            columns += [BarColumn(), TextColumn("{task.percentage:>5.1f}%"), TimeRemainingColumn()]
        columns.append(TextColumn("{task.fields[rate]:>12} events/s"))
        self._bar = Progress(*columns, transient=True)
        self._task = self._bar.add_task(
            "run", total=self.stop_tick, tick=0, simtime="0 s", rate="0"
        )
        self._bar.start()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# The flags that set a scenario value: (flag, argparse name, section, key). Each
# becomes an override, checked like the scenario file's own value.
_SETTING_FLAGS = (
    ("--seed", "seed", "simulation", "seed"),
    ("--mode", "mode", "simulation", "mode"),
    ("--stop-tick", "stop_tick", "simulation", "stop_tick"),
    ("--group-size", "group_size", "deployment", "group_size"),
    ("--routing", "routing", "deployment", "routing"),
    ("--placement", "placement", "placement", "policy"),
    ("--checkpoint-every", "checkpoint_every", "checkpoint", "every_ticks"),
    ("--backend", "backend", "populations", "backend"),
)


def _overrides(args: argparse.Namespace) -> list[str | Override]:
    """``--set`` overrides in order, then the flags' (a flag wins over --set)."""
    flags = [
        Override(section, key, getattr(args, name), origin=flag)
        for flag, name, section, key in _SETTING_FLAGS
        if getattr(args, name, None) is not None
    ]
    return [*getattr(args, "set", []), *flags]


def _relaunch_args(argv: Sequence[str], *more: str) -> list[str]:
    """The command line without --ranks (and ``more`` flags), for the ranks mpiexec starts."""
    out, skip = [], False
    dropped = ("--ranks", *more)
    for arg in argv:
        if skip:
            skip = False
        elif arg in dropped:
            skip = True
        elif not arg.startswith(tuple(f"{d}=" for d in dropped)):
            out.append(arg)
    return out


def _run(args: argparse.Namespace, argv: Sequence[str], here=None) -> int:  # noqa: ANN001
    if args.ranks is not None and not 1 <= args.ranks <= MAX_RANKS:  # not a scenario value
        expected = ">= 1" if args.ranks < 1 else f"from 1 to {MAX_RANKS}"
        print(
            f"error: --ranks: got integer {args.ranks}; expected a whole number {expected}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    recover = getattr(args, "recover", None)
    if recover is not None and (recover < 0 or not args.ranks or args.ranks < 2):
        print(
            f"error: --recover: got {recover}; give a whole number >= 0 with --ranks N (N >= 2)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        if args.ranks and args.ranks > 1 and launched_size() == 1:
            if getattr(args, "recover", None):
                from .supervise import supervise

                return supervise(args.ranks, _relaunch_args(argv, "--recover"), args.recover)
            return relaunch(args.ranks, _relaunch_args(argv))
        w = world()
    except LaunchError as exc:
        if exc.echo:  # a job whose every task fails alike says it once
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.ranks and args.ranks != w.size:
        if w.rank == 0:
            print(
                f"error: --ranks {args.ranks} asked for, but this MPI job has {w.size} ranks; "
                f"drop --ranks when starting with mpiexec or srun",
                file=sys.stderr,
            )
        return EXIT_BAD_INPUT
    # Until the run takes signals over, SIGTERM too stops the set-up (KeyboardInterrupt).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return (here or _run_here)(args, w)
    except Silence as exc:  # a rank went silent: say which, then end every rank
        print(f"error: {exc}", file=sys.stderr, flush=True)
        w.abort(EXIT_FAILED)
        return EXIT_FAILED
    except KeyboardInterrupt:  # before the run was set up: nothing was written
        if w.rank == 0:
            print("error: interrupted before the run started; nothing was written", file=sys.stderr)
        if w.size > 1:
            w.abort(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception:  # an engine bug on one rank must not leave the others waiting
        if w.size == 1:
            raise
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        w.abort(EXIT_FAILED)
        return EXIT_FAILED


def _run_here(args: argparse.Namespace, w: Comm) -> int:
    root = w.rank == 0
    try:
        scenario = load_scenario(args.scenario, _overrides(args))
    except ScenarioError as exc:
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = _Progress(scenario.stop_tick, scenario.tick_duration) if root else None
    try:
        outcome = runner.run_scenario(scenario, out=args.out, on_tick=progress, handle_signals=True)
    except (runner.RunFolderError, runner.RunSetupError) as exc:
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StorageError as exc:  # results.h5 could not be written: the staging files stay
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if progress is not None:
            progress.close()
    return _report(scenario, outcome, root)


_RESUME_SECTIONS = ("deployment", "placement")  # what resume --set may change


def _resume_here(args: argparse.Namespace, w: Comm) -> int:
    from .checkpoint import CheckpointError
    from .resume import resume_run

    root = w.rank == 0
    changes = [text for text in args.set if text.split(".", 1)[0] not in _RESUME_SECTIONS]
    if changes:
        if root:
            print(
                f"error: resume --set {changes[0]}: a resumed run keeps its results' settings; "
                f"only [deployment] and [placement] can be set",
                file=sys.stderr,
            )
        return EXIT_BAD_INPUT
    try:
        scenario, outcome = resume_run(Path(args.run_dir), _overrides(args), handle_signals=True)
    except (CheckpointError, ScenarioError, runner.RunFolderError, runner.RunSetupError) as exc:
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StorageError as exc:
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return _report(scenario, outcome, root)


def _report(scenario: Scenario, outcome: runner.RunOutcome, root: bool) -> int:
    """The exit code of a finished run; the root prints its summary."""
    code = {"failed": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED}.get(outcome.status, 0)
    if code == 0 and outcome.interrupted:  # the run completed, then a signal cut its plots
        code = EXIT_INTERRUPTED
    if not root:
        return code
    if outcome.mode == "ergodic" and scenario.seed is None:
        print(f"ergodic seed: {outcome.seed} (replay with --seed {outcome.seed})")
    # A failure is one block on stderr, in order: the error line and traceback, the
    # report's path, the summary (two streams would interleave under mpiexec).
    out = sys.stderr if outcome.failures or outcome.problem else sys.stdout
    for failure in outcome.failures:
        print(f"error: {failure.describe()}", file=out)
        print(failure.traceback.rstrip(), file=out)
    if outcome.failures:
        print(f"the run's report is in {outcome.run_dir / 'failure.txt'}", file=out)
    for problem in (outcome.problem, outcome.plots_missing):
        if problem:
            print(f"error: {problem}", file=sys.stderr, flush=True)
    print(summary(outcome, scenario.tick_duration), file=out, flush=True)
    return code


def _open_run(run_dir: str) -> tuple[Path | None, int]:
    """(results.h5, None), or (None, exit code) after one line on stderr."""
    from .results import RunFolderUnreadable, RunNeedsRecovery, results_file

    try:
        return results_file(run_dir), 0
    except RunNeedsRecovery as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, EXIT_FAILED
    except RunFolderUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, EXIT_BAD_INPUT


def _plot(args: argparse.Namespace) -> int:
    from .plots import draw_run
    from .results import damaged_data, missing_data_files, probe_names

    if args.probe is not None:
        try:
            re.compile(args.probe)
        except re.error as exc:
            print(
                f"error: --probe {args.probe!r} is not a regular expression ({exc})",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
    if args.mode is not None:
        from engine.errors import SimulationError
        from engine.probes import check_plot_mode

        try:
            check_plot_mode(args.mode, "--mode")
        except SimulationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    results, code = _open_run(args.run_dir)
    if results is None:
        return code
    missing = missing_data_files(results)
    if missing:
        print(
            f"error: {results.parent}: {len(missing)} data file(s) missing, e.g. {missing[0]}; "
            f"keep the data/ folder next to results.h5",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    damaged = damaged_data(results)
    if damaged:
        print(
            f"error: {results.parent}: {damaged[0]}; its rows cannot be drawn "
            f"('pydiasca info {results.parent}' lists what is damaged)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    failed: list[str] = []
    logging.getLogger("pydiasca").addHandler(logging.NullHandler())  # failures: said below
    try:
        drawn = draw_run(
            results.parent,
            probe_pattern=args.probe,
            performance=args.probe is None,
            failed=failed,
            mode=args.mode,
        )
    except (OSError, KeyError, ValueError, StorageError) as exc:
        print(f"error: {results.parent}: cannot draw its figures ({exc})", file=sys.stderr)
        return EXIT_FAILED
    for path in drawn:
        print(path)
    if failed:
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        print(f"error: figure {failed[0]}{more} could not be drawn", file=sys.stderr)
        return EXIT_FAILED
    if not drawn:
        names = probe_names(results)
        if not names:
            what = "the run recorded no probes" + (
                "" if args.probe else " and no performance figures"
            )
            print(f"error: {results.parent}: nothing to draw: {what}", file=sys.stderr)
        else:
            more = ", ..." if len(names) > 8 else ""
            print(
                f"error: no probe matches --probe {args.probe!r}; the run's probes are "
                f"{', '.join(names[:8])}{more}",
                file=sys.stderr,
            )
        return EXIT_FAILED
    return 0


def _info(args: argparse.Namespace) -> int:
    from .results import damaged_data, describe_run

    results, code = _open_run(args.run_dir)
    if results is None:
        return code
    try:
        text, damaged = describe_run(results), damaged_data(results)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {results}: damaged ({str(exc).splitlines()[0]})", file=sys.stderr)
        return EXIT_FAILED
    print(text)
    if damaged:
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        print(
            f"error: {results.parent}: {damaged[0]}{more}; the rows it holds read as fill values",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _recover(args: argparse.Namespace) -> int:
    from .recovery import RecoverError, recover, recovered, stopped_at

    folder = Path(args.run_dir)
    if not folder.is_dir():
        print(f"error: {folder}: no such folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        done = recover(folder)
    except (RecoverError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(recovered(folder, done))
    print(digest_line(done.digest, "failed", stopped_at(done)))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import DEFAULT_LAYOUTS, check

    layouts = DEFAULT_LAYOUTS if args.ranks is None else args.ranks
    try:
        return check(
            args.scenario, ticks=args.ticks, layouts=layouts, settings=args.set, keep=args.keep
        )
    except KeyboardInterrupt:  # the runs, in this process group, stopped too
        print("error: check interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args, argv[argv.index("run") :])
    if args.command == "resume":
        return _run(args, argv[argv.index("resume") :], _resume_here)
    if args.command == "plot":
        return _plot(args)
    if args.command == "info":
        return _info(args)
    if args.command == "recover":
        return _recover(args)
    if args.command == "check":
        return _check(args)
    if args.command == "generate":
        return _generate(args)
    return EXIT_BAD_INPUT  # unreachable: argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
