"""``pydiasca resume``: continue a run from its newest complete checkpoint, on any layout.

Every rank of the new job calls ``resume_run``. The root finds and checks the
checkpoint (``runtime.checkpoint``), then carries the probe rows of the ticks up
to the checkpoint's over: from ``results.h5`` when the run had finished (or was
recovered), else from the staging files a killed run left. They become
``.carried-<i>.bin`` files, which the final ``finalize`` reads along with the
new staging files, and every row after the checkpoint is dropped: the resumed
run records those again. Then the scenario is loaded with the checkpoint's
settings (and the resume's deployment flags), every rank builds its kernel
with the scenario's populations and no actors, and ``engine.snapshot.restore``
fills it from every rank's part, placing each actor with the new placement.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import Kernel
from engine import snapshot as _snapshot

from . import checkpoint as cp
from .launch import world
from .results import DATA_FOLDER, RESULTS_FILE, staging_files
from .runner import RunOutcome, run_scenario
from .scenario import Override, Scenario, load_scenario
from .sgroups import ROOT
from .staging import Staged, StagingSink, carried_files, carried_path, reserve_path
from .storage import storage_message

_BLOCK = 1 << 18  # rows copied at once


class _Restore:
    """The runner's hook: fills a kernel from the checkpoint; ``rows`` were carried over."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest
        self.rows: dict[str, int] = dict(manifest.get("rows", {}))
        self.tick = int(manifest["tick"])

    def __call__(self, kernel: Kernel) -> None:
        shared, every = cp.parts(self.folder, self.manifest)
        _snapshot.restore(kernel, shared, every)


def resume_run(
    run_dir: Path,
    overrides: Iterable[str | Override] = (),
    *,
    on_tick: Callable[[Kernel], None] | None = None,
    handle_signals: bool = False,
) -> tuple[Scenario, RunOutcome]:
    """Resume ``run_dir`` from its newest complete checkpoint; every rank calls it.

    ``overrides`` are the resume's own settings (placement, group size, routing).
    Raises CheckpointError (one line, the same on every rank) when the
    checkpoint is missing or damaged, and ScenarioError for a bad override.
    """
    comm = world()
    run_dir = Path(run_dir)
    found: tuple[Path, dict] | None = None
    problem = ""
    if comm.rank == ROOT:
        try:
            if not run_dir.is_dir():
                raise cp.CheckpointError(f"{run_dir}: no such run folder")
            found = cp.newest(run_dir)
        except cp.CheckpointError as exc:
            problem = str(exc)
    found, problem = comm.bcast((found, problem))
    if problem:
        raise cp.CheckpointError(problem)
    assert found is not None
    folder, manifest = found
    scenario = load_scenario(manifest["scenario_path"], [*_settings(manifest), *overrides])
    if comm.rank == ROOT:
        try:
            carry_rows(run_dir, int(manifest["tick"]), manifest.get("rows", {}))
            _drop_newer(run_dir, int(manifest["tick"]))
        except cp.CheckpointError as exc:
            problem = str(exc)
    problem = comm.bcast(problem)
    if problem:
        raise cp.CheckpointError(problem)
    outcome = run_scenario(
        scenario,
        out=run_dir,
        on_tick=on_tick,
        handle_signals=handle_signals,
        restore=_Restore(folder, manifest),
    )
    return scenario, outcome


def _settings(manifest: dict[str, Any]) -> list[Override]:
    """The checkpointed run's own settings, as overrides of its (unchanged) scenario file."""
    found = [
        Override(section, key, value)
        for section, table in manifest.get("settings", {}).items()
        for key, value in table.items()
    ]
    return [*found, Override("simulation", "seed", manifest["seed"])]


def _drop_newer(run_dir: Path, tick: int) -> None:
    """Checkpoints after ``tick`` never finished (it is the newest complete one): remove them."""
    for t, folder in cp.checkpoints(run_dir):
        if t > tick:
            shutil.rmtree(folder, ignore_errors=True)


def carry_rows(run_dir: Path, tick: int, expected: dict[str, int]) -> None:
    """Keep the rows of ticks up to ``tick`` as ``.carried-<i>.bin``; remove the rest.

    The rows come from results.h5 if the run wrote one, else from its staging
    and carried files. Each probe must have the rows the checkpoint counted.
    """
    results = run_dir / RESULTS_FILE
    olds = [*staging_files(run_dir), *carried_files(run_dir)]
    fresh: list[Path] = []
    counts: dict[str, int] = {}
    try:
        if results.exists():
            fresh.append(_copy_results(results, tick, run_dir / ".carrying-0.bin", counts))
        else:
            for i, old in enumerate(olds):
                fresh.append(_copy_staged(old, tick, run_dir / f".carrying-{i}.bin", counts))
    except (OSError, KeyError, ValueError) as exc:
        for path in fresh:
            path.unlink(missing_ok=True)
        raise cp.CheckpointError(
            f"{run_dir}: cannot read the rows recorded before the checkpoint of tick {tick} "
            f"({storage_message(exc, run_dir) if isinstance(exc, OSError) else exc})"
        ) from None
    lost = {
        n: (n_rows, counts.get(n, 0)) for n, n_rows in expected.items() if counts.get(n, 0) < n_rows
    }
    if lost:
        for path in fresh:
            path.unlink(missing_ok=True)
        name, (want, got) = next(iter(lost.items()))
        raise cp.CheckpointError(
            f"{run_dir}: probe {name!r} has {got:,} rows up to tick {tick}, but the checkpoint "
            f"counted {want:,}; the run folder lost rows (a staging file or results.h5 is "
            f"missing or damaged), so it cannot be resumed"
        )
    for stale in [results, *(run_dir / DATA_FOLDER).glob("rank-*.h5"), *olds]:
        stale.unlink(missing_ok=True)
    for old in olds:
        reserve_path(old).unlink(missing_ok=True)
    (run_dir / "failure.txt").unlink(missing_ok=True)
    for i, path in enumerate(fresh):
        path.rename(carried_path(run_dir, i))


def _copy_results(results: Path, tick: int, out: Path, counts: dict[str, int]) -> Path:
    sink = StagingSink(out, {"carried": True})
    with h5py.File(results, "r") as f:
        probes = f.get("probes", {})
        for name in sorted(probes):
            g = probes[name]
            n = int(np.searchsorted(g["tick"][:], tick, "right"))
            for start in range(0, n, _BLOCK):
                s = slice(start, min(start + _BLOCK, n))
                sink.write(name, g["tick"][s], g["aai"][s], g["value"][s])
            counts[name] = counts.get(name, 0) + n
    return _close(sink, out)


def _copy_staged(path: Path, tick: int, out: Path, counts: dict[str, int]) -> Path:
    sink = StagingSink(out, {"carried": True})
    with Staged(path) as staged:
        staged.limit(tick + 1)
        for name, probe in staged.items():
            for start in range(0, probe.n, _BLOCK):
                stop = min(start + _BLOCK, probe.n)
                sink.write(
                    name,
                    probe.read("tick", start, stop),
                    probe.read("aai", start, stop),
                    probe.read("value", start, stop),
                )
            counts[name] = counts.get(name, 0) + probe.n
    return _close(sink, out)


def _close(sink: StagingSink, out: Path) -> Path:
    sink.sync()
    error = sink.error
    sink.close()
    if error:
        raise OSError(error)
    return out


__all__ = ["carry_rows", "resume_run"]
