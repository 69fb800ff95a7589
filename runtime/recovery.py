"""Recovery: a readable ``results.h5`` from the staging files of a run that did not finish.

A run killed (SIGKILL, a crashed node, an out-of-memory killer) or stopped by a
full disk leaves its staging files (``runtime.staging``) and no ``results.h5``.
Each staging file is complete up to its last mark, so ``recover`` runs the
ordinary finalisation (``runtime.finalize``) in one process over all of them,
keeping the ticks that every rank had staged completely. ``pydiasca recover``
calls it, and so does the launcher of ``--ranks N`` after an abnormal end.
"""

from __future__ import annotations

from pathlib import Path

from engine.probes import ProbeDeclaration

from .comm import Comm
from .finalize import Finalized, finalize_staged
from .results import (
    DATA_FOLDER,
    RESULTS_FILE,
    RunFolderUnreadable,
    results_file,
    staging_files,
    staging_path,
)
from .staging import ALL, Staged, carried_files, read_header, reserve_path


class RecoverError(Exception):
    """A run folder that ``recover`` cannot rebuild; str() is the one line for the user."""


def recover(run_dir: Path, *, status: str = "failed", window_bytes: int | None = None) -> Finalized:
    """Build ``results.h5`` from the staging files that an unfinished run left behind.

    ``finalize``, in this process alone: every rank's rows of the ticks that all
    ranks staged completely, in canonical order, with status ``failed``. The
    metadata is what rank 0 wrote at the start of the run; performance figures
    lived in memory and are lost.
    """
    run_dir = Path(run_dir)
    found = staging_files(run_dir)
    if not found:
        try:
            results_file(run_dir)
        except RunFolderUnreadable:
            pass
        else:
            raise RecoverError(f"{run_dir}: nothing to recover: its {RESULTS_FILE} is complete")
        raise RecoverError(f"{run_dir}: no staging files (.staging-rank*.bin) to recover from")
    ranks = max(int(read_header(p).get("ranks", 0)) for p in found)
    wanted = [staging_path(run_dir, r) for r in range(ranks)]
    lost = [p.name for p in wanted if not read_header(p)] if ranks else [found[0].name]
    if lost:
        raise RecoverError(
            f"{run_dir}: cannot recover: {', '.join(lost[:3])} missing or unreadable; "
            f"without every rank's rows no tick is complete"
        )
    sources = [Staged(p) for p in [*wanted, *carried_files(run_dir)]]  # carried: by a resume
    try:
        complete = min(s.complete_before for s in sources)
        declarations = {}
        for staged in sources:
            for name, (unit, labels, plot) in staged.declarations.items():
                declarations.setdefault(name, ProbeDeclaration(unit, tuple(labels), plot))
        metadata = dict(sources[0].header.get("metadata", {}))
        upto = "every tick" if complete == ALL else f"the ticks before {complete}"
        metadata["status"] = status
        metadata["failure"] = (
            f"the run ended without writing its results; 'pydiasca recover' rebuilt them "
            f"from the staging files: every rank's rows of {upto}"
        )
        reserves = [reserve_path(p) for p in found]
        for stale in [
            run_dir / RESULTS_FILE,
            *(run_dir / DATA_FOLDER).glob("rank-*.h5"),
            *reserves,
        ]:
            stale.unlink(missing_ok=True)
        return finalize_staged(Comm(), run_dir, sources, declarations, None, metadata, window_bytes)
    finally:
        for staged in sources:
            staged.close()


def recovered(folder: Path, done: Finalized, status: str = "failed") -> str:
    """What ``pydiasca recover`` (and the launcher, after a crash) says it rebuilt."""
    upto = "every tick" if done.complete_before == ALL else f"ticks before {done.complete_before}"
    return (
        f"recovered {folder / RESULTS_FILE} (status {status}): {done.rows:,} rows of "
        f"{done.probes} probe(s), {upto}; draw them with 'pydiasca plot {folder}'"
    )


def stopped_at(done: Finalized) -> int | None:
    """The tick a recovered run's digest line names: its first tick without rows
    (None when every tick was staged, as after a crash in the final writing)."""
    return None if done.complete_before == ALL else done.complete_before


__all__ = ["RecoverError", "recover", "recovered", "stopped_at"]
