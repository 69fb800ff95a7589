"""The ``pydiasca`` command line.

Bad input exits with code 2 and one line on stderr; a model failure exits with
code 1 after writing what the run produced; no path shows a Python traceback
for a user's mistake.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from engine import MODES, Kernel

from . import runner
from .launch import ROUTINGS, LaunchError, World, launched_size, relaunch, world
from .placement import POLICIES
from .scenario import ScenarioError, load_scenario

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pydiasca", description="Discrete-time actor simulations, tick by tick."
    )
    parser.add_argument("--version", action="version", version=f"pydiasca {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a scenario file")
    run.add_argument("scenario", help="the scenario's TOML file")
    run.add_argument("--seed", type=int, help="override [simulation] seed")
    run.add_argument("--mode", choices=MODES, help="override [simulation] mode")
    run.add_argument("--stop-tick", type=int, metavar="T", help="stop before tick T")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one scenario setting (repeatable), e.g. --set simulation.seed=7",
    )
    run.add_argument("--out", metavar="DIR", help="run folder (default results/<name>-<time>)")
    dist = run.add_argument_group("distribution (see docs/clusters.md)")
    dist.add_argument("--ranks", type=int, metavar="N", help="start N local MPI ranks")
    dist.add_argument("--group-size", type=int, metavar="G", help="ranks per s_group")
    dist.add_argument("--routing", choices=ROUTINGS, help="cross-group message routing")
    dist.add_argument("--placement", choices=POLICIES, help="load-balancing policy")
    return parser


class _Progress:
    """Live progress on a terminal, shown only once a run has lasted 2 seconds."""

    DELAY_S = 2.0
    PERIOD_S = 0.25

    def __init__(self, stop_tick: int | None, tick_duration: float) -> None:
        self.stop_tick = stop_tick
        self.tick_duration = tick_duration
        self.start = time.perf_counter()
        self.next_update = self.start + self.DELAY_S
        self._bar = None
        self._task = None

    def __call__(self, kernel: Kernel) -> None:
        now = time.perf_counter()
        if now < self.next_update:
            return
        self.next_update = now + self.PERIOD_S
        if self._bar is None:
            self._open()
        rate = kernel.global_events / max(now - self.start, 1e-9)
        self._bar.update(
            self._task,
            completed=kernel.tick,
            tick=kernel.tick,
            simtime=_format_seconds(kernel.tick * self.tick_duration),
            rate=f"{rate:,.0f}",
        )

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


def _format_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.3g} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.2f} {unit}"
    return f"{s:.0f} s"


def _summary(outcome: runner.RunOutcome, tick_duration: float) -> str:
    s = outcome.stats
    rate = s.messages / s.wall_s if s.wall_s > 0 else 0.0
    lines = [
        f"run {outcome.status}: {outcome.run_dir.name}",
        f"  ticks evaluated   {s.ticks:,} (last tick {s.last_tick:,}, "
        f"{_format_seconds(s.last_tick * tick_duration)} simulated)",
        f"  diascas           {s.diascas:,}",
        f"  messages          {s.messages:,} processed",
        f"  spontaneous       {s.spontaneous:,} actions",
        f"  actors            {outcome.initial_actors:,} initial, {s.created:,} created, "
        f"{s.deleted:,} deleted",
        f"  wall time         {s.wall_s:.3f} s, {rate:,.0f} messages/s",
        f"  mode              {outcome.mode}, seed {outcome.seed}",
        *_placement_lines(outcome),
        f"  results folder    {outcome.run_dir}",
        f"results digest: {outcome.digest}",
    ]
    return "\n".join(lines)


def _check_args(args: argparse.Namespace) -> str | None:
    for flag, value in (
        ("--stop-tick", args.stop_tick),
        ("--ranks", args.ranks),
        ("--group-size", args.group_size),
    ):
        if value is not None and value < 1:
            return f"{flag} must be >= 1; got {value}"
    return None


def _relaunch_args(argv: Sequence[str]) -> list[str]:
    """The command line without --ranks, for the ranks that mpiexec starts."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ranks":
            skip = True
        elif not arg.startswith("--ranks="):
            out.append(arg)
    return out


def _placement_lines(outcome: runner.RunOutcome) -> list[str]:
    r = outcome.report
    if outcome.ranks == 1 or not r:
        return []
    per_rank = r["per_rank"]
    peers = max(p["peers"] for p in per_rank)
    return [
        f"  ranks             {outcome.ranks} in {r['groups']} group(s); "
        f"actors per rank {r['actors_per_rank']}",
        f"  actors per group  {r['actors_per_group']}",
        f"  crossing          {r['cross_rank_fraction']:.1%} of messages crossed ranks, "
        f"{r['cross_group_fraction']:.1%} crossed groups; at most {peers} peer(s) per rank",
    ]


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    problem = _check_args(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.ranks and args.ranks > 1 and launched_size() == 1:
            return relaunch(args.ranks, _relaunch_args(argv))
        w = world()
    except LaunchError as exc:
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
    try:
        return _run_here(args, w)
    except Exception:  # an engine bug on one rank must not leave the others waiting
        if w.size == 1:
            raise
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        w.abort(EXIT_FAILED)
        return EXIT_FAILED


def _run_here(args: argparse.Namespace, w: World) -> int:
    root = w.rank == 0
    try:
        scenario = load_scenario(args.scenario, args.set)
    except ScenarioError as exc:
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = (
        _Progress(args.stop_tick or scenario.stop_tick, scenario.tick_duration)
        if root and sys.stdout.isatty()
        else None
    )
    deployment = runner.Deployment(
        group_size=args.group_size, routing=args.routing, placement=args.placement
    )
    try:
        outcome = runner.run_scenario(
            scenario,
            seed=args.seed,
            mode=args.mode,
            stop_tick=args.stop_tick,
            out=args.out,
            deployment=deployment,
            on_tick=progress,
            handle_signals=True,
        )
    except runner.RunFolderError as exc:
        if root:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if progress is not None:
            progress.close()
    code = {"failed": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED}.get(outcome.status, 0)
    if not root:
        return code
    if outcome.mode == "ergodic" and args.seed is None and scenario.seed is None:
        print(f"ergodic seed: {outcome.seed} (replay with --seed {outcome.seed})")
    for failure in outcome.failures:
        print(f"error: {failure.describe()}", file=sys.stderr)
        print(failure.traceback.rstrip(), file=sys.stderr)
        print(f"the run's report is in {outcome.run_dir / 'failure.txt'}", file=sys.stderr)
    print(_summary(outcome, scenario.tick_duration))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args, argv[argv.index("run") :])
    return EXIT_BAD_INPUT  # unreachable: argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
