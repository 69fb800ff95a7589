"""Checkpoints on disk: every rank's part, written in parallel, and a manifest written last.

A checkpoint of tick t lives in ``RUN_DIR/checkpoints/tick-<t>/``: one
``rank-<r>.part`` per rank (its actors' chunks and the rest of its snapshot,
``engine.snapshot``, in the frames of ``runtime._partfile``) and
``manifest.json``, written by rank 0 once every part is on disk, with the
SHA-256 and size of every part, the format version, the scenario file's
SHA-256 and the settings ``pydiasca resume`` needs. Every file is written to a
temporary name, synced and renamed, and so is the folder: the parts go to
``tick-<t>.partial/``, renamed ``tick-<t>/`` once the manifest is in it. A
checkpoint without its manifest was never finished and does not exist for
``resume``. Before the parts, every rank
flushes its probes into its staging file, marks it and syncs it: the rows of
ticks up to t are on disk, and the manifest counts them per probe.

Pickles are in checkpoints only, never in results. Loading one runs code:
load only checkpoints you wrote (docs/checkpoints.md).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import Kernel
from engine import snapshot as _snapshot

from . import _partfile
from .comm import Comm
from .sgroups import ROOT
from .staging import StagingSink
from .storage import storage_message

FORMAT = 3  # of the manifest and parts; another one is refused (3: engine.snapshot's 3)
FOLDER = "checkpoints"
MANIFEST = "manifest.json"
PARTIAL = ".partial"  # the folder's suffix until its manifest is in: resume never sees it
# The scenario's sections a resume takes from the manifest (the file's own values
# with the run's overrides); deployment and placement come from the resume's flags.
_SETTINGS = ("simulation", "results", "checkpoint")

_log = logging.getLogger("pydiasca")


class CheckpointError(Exception):
    """A checkpoint that cannot be written or used; str() is the one line for the user."""


@dataclass(frozen=True)
class Policy:
    """When to take checkpoints: every ``every_ticks`` ticks or ``every_s`` wall seconds."""

    every_ticks: int | None = None
    every_s: float | None = None
    keep: int = 2

    @classmethod
    def of(cls, scenario: Any) -> Policy | None:
        """The scenario's ``[checkpoint]`` policy, None when it takes no checkpoints."""
        if scenario.checkpoint_every_ticks is None and scenario.checkpoint_every_s is None:
            return None
        return cls(
            scenario.checkpoint_every_ticks, scenario.checkpoint_every_s, scenario.checkpoint_keep
        )


def identity(scenario: Any, seed: int) -> dict[str, Any]:
    """What a checkpoint says about its run: the scenario file, settings, seed and mode."""
    data = scenario.data
    return {
        "scenario_path": str(scenario.path),
        "scenario_sha256": hashlib.sha256(scenario.text.encode()).hexdigest(),
        "settings": {s: data[s] for s in _SETTINGS if isinstance(data.get(s), dict)},
        "seed": seed,
        "mode": scenario.mode,
        "stop_tick": scenario.stop_tick,
    }


class Checkpointer:
    """The kernel's ``at_tick_end``: takes the checkpoints a policy asks for.

    Every rank calls it at the same tick boundaries, so its collectives match.
    A checkpoint that fails (an actor that does not pickle, a write refused)
    stops the run; ``problem`` then says why, the same on every rank.
    """

    def __init__(
        self,
        run_dir: Path,
        comm: Comm,
        policy: Policy,
        sink: StagingSink,
        about: dict[str, Any],
        carried: dict[str, int] | None = None,
        start_tick: int = 0,
    ) -> None:
        self.folder = run_dir / FOLDER
        self.comm, self.policy, self.sink, self.about = comm, policy, sink, about
        self.carried = dict(carried or {})  # rows before a resume's checkpoint, per probe
        self.last = start_tick
        self.next_wall = time.monotonic() + (policy.every_s or 0.0)
        self.problem = ""
        self.taken: list[tuple[int, float, int]] = []  # (tick, seconds, bytes of this part)

    def __call__(self, kernel: Kernel, next_tick: int) -> bool:
        if not self._due(kernel.tick):
            return True
        return self.take(kernel, next_tick)

    def _due(self, tick: int) -> bool:
        if self.policy.every_ticks is not None:
            return tick - self.last >= self.policy.every_ticks
        late = time.monotonic() >= self.next_wall if self.comm.rank == ROOT else None
        return bool(self.comm.bcast(late))  # wall clocks differ: the root decides for all

    def take(self, kernel: Kernel, next_tick: int) -> bool:
        """Write the checkpoint of ``kernel.tick``; False (and ``problem``) when it failed."""
        c, tick, t0 = self.comm, kernel.tick, time.perf_counter()
        kernel.probes.flush()
        self.sink.mark(tick + 1, kernel.probes.declarations)
        self.sink.sync()
        folder, name = self.folder / f"tick-{tick}{PARTIAL}", f"rank-{c.rank}.part"
        written = (name, "", 0, self.sink.error)
        if not self.sink.error:
            written = self._write(kernel, next_tick, folder, name)
        everyone = c.gather((written, self.sink.rows))
        error = ""
        if c.rank == ROOT:
            assert everyone is not None
            error = self._manifest(folder, tick, next_tick, everyone)
        error = c.bcast(error)
        if error:
            self.problem = f"checkpoint at tick {tick}: {error}"
            return False
        self.last = tick
        self.next_wall = time.monotonic() + (self.policy.every_s or 0.0)
        seconds = time.perf_counter() - t0
        self.taken.append((tick, seconds, written[2]))
        if c.rank == ROOT:
            _log.info("checkpoint of tick %d written in %.3f s", tick, seconds)
        return True

    def _write(self, kernel: Kernel, next_tick: int, folder: Path, name: str) -> tuple:
        """This rank's part: (file name, SHA-256, bytes, "") or (file name, "", 0, problem)."""
        collecting = gc.isenabled()
        gc.disable()  # a million new objects would start collection after collection
        try:
            folder.mkdir(parents=True, exist_ok=True)
            sha, size = _partfile.write(folder / name, _records(kernel, next_tick))
            return (name, sha, size, "")
        except _partfile.WriteError as exc:
            return (name, "", 0, storage_message(exc.__cause__, folder / name))
        except OSError as exc:
            return (name, "", 0, storage_message(exc, folder))
        except Exception as exc:  # find the actor and attribute to blame
            why = _snapshot.problem(kernel) or f"rank {self.comm.rank}: {type(exc).__name__}: {exc}"
            return (name, "", 0, why)
        finally:
            if collecting:
                gc.enable()

    def _manifest(self, folder: Path, tick: int, next_tick: int, everyone: list) -> str:
        """Rank 0: the manifest, written last; then older checkpoints beyond ``keep`` go.

        When a rank could not write its part, nothing of the checkpoint stays.
        """
        problem = next((w[3] for w, _ in everyone if w[3]), "")
        if problem:
            shutil.rmtree(folder, ignore_errors=True)
            return problem
        rows = dict(self.carried)
        for _, counts in everyone:
            for name, n in counts.items():
                rows[name] = rows.get(name, 0) + n
        manifest = {
            "format": FORMAT,
            "snapshot_format": _snapshot.FORMAT,
            "tick": tick,
            "next_tick": next_tick,
            "ranks": self.comm.size,
            "parts": [{"file": w[0], "sha256": w[1], "bytes": w[2]} for w, _ in everyone],
            "rows": rows,
            "written_utc": datetime.now(UTC).isoformat(),
            **self.about,
        }
        final = self.folder / f"tick-{tick}"
        try:
            write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
            _sync_folder(folder)
            if final.exists():  # an unfinished one of an earlier try
                shutil.rmtree(final)
            folder.rename(final)
            _sync_folder(self.folder)
        except OSError as exc:
            return storage_message(exc, folder / MANIFEST)
        prune(self.folder, self.policy.keep, tick)
        return ""


def _records(kernel: Kernel, next_tick: int) -> Iterator[Any]:
    """A part's records: its actors' chunks, then the rest of its snapshot (last)."""
    chunks = 0
    for chunk in _snapshot.actor_chunks(kernel):
        chunks += 1
        yield chunk
    part = _snapshot.snapshot(kernel, next_tick)
    part["chunks"] = chunks
    yield part


def install(
    kernel: Kernel,
    scenario: Any,
    seed: int,
    run_dir: Path,
    comm: Comm,
    resumed: Any,
    sink: StagingSink,
) -> Checkpointer | None:
    """Make ``kernel`` take the scenario's checkpoints (None: it asks for none).

    ``resumed`` is the hook of ``runtime.resume`` when the run resumes (its
    ``tick`` and carried ``rows``), else None.
    """
    policy = Policy.of(scenario)
    if policy is None:
        return None
    checkpointer = Checkpointer(
        run_dir,
        comm,
        policy,
        sink,
        identity(scenario, seed),
        carried=getattr(resumed, "rows", None),
        start_tick=getattr(resumed, "tick", 0),
    )
    kernel.at_tick_end = checkpointer
    return checkpointer


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, sync it, and rename it to ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tick_of(folder: Path) -> int | None:
    text = folder.name.removeprefix("tick-")
    return int(text) if folder.name.startswith("tick-") and text.isdigit() else None


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Every ``tick-<t>`` folder of a run, complete or not, newest first."""
    found = []
    for folder in (run_dir / FOLDER).glob("tick-*"):
        tick = _tick_of(folder)
        if tick is not None and folder.is_dir():
            found.append((tick, folder))
    return sorted(found, reverse=True)


def prune(root: Path, keep: int, newest: int) -> None:
    """Keep the ``keep`` newest complete checkpoints; drop unfinished ones older than ``newest``,
    and the folders of parts that never got their manifest."""
    for folder in root.glob(f"tick-*{PARTIAL}"):
        shutil.rmtree(folder, ignore_errors=True)
    complete = 0
    for tick, folder in checkpoints(root.parent):
        if tick > newest:
            continue
        if (folder / MANIFEST).exists():
            complete += 1
            if complete <= keep:
                continue
        shutil.rmtree(folder, ignore_errors=True)


# --- reading -----------------------------------------------------------------------


def newest(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest complete checkpoint of ``run_dir``, checked: (its folder, its manifest).

    Raises CheckpointError with one line when there is none, or when it is damaged.
    """
    for _, folder in checkpoints(run_dir):
        if (folder / MANIFEST).exists():
            manifest = _read_manifest(folder)
            check(folder, manifest)
            return folder, manifest
    raise CheckpointError(
        f"{run_dir}: no complete checkpoint to resume from (none in {FOLDER}/ has its "
        f"{MANIFEST}); take checkpoints with [checkpoint] every_ticks or --checkpoint-every"
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: damaged ({type(exc).__name__}); remove {folder} to resume from an "
            f"older checkpoint"
        ) from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: damaged (not a manifest); remove {folder}")
    return manifest


def check(folder: Path, manifest: dict[str, Any]) -> None:
    """Refuse, in one line, a checkpoint of another format or with a part missing or damaged."""
    version = manifest.get("format")
    if version != FORMAT or manifest.get("snapshot_format") != _snapshot.FORMAT:
        raise CheckpointError(
            f"{folder / MANIFEST}: checkpoint format {version!r}, but this pydiasca reads "
            f"format {FORMAT}; resume it with the pydiasca version that wrote it"
        )
    try:
        parts = [(p["file"], p["sha256"], int(p["bytes"])) for p in manifest["parts"]]
        int(manifest["tick"]), int(manifest["next_tick"]), manifest["scenario_path"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{folder / MANIFEST}: damaged (a key is missing)") from None
    fix = f"remove {folder} to resume from an older checkpoint"
    for name, sha, size in parts:
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: part missing from the checkpoint; {fix}")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointError(
                f"{path}: truncated or changed ({actual:,} bytes, the manifest says {size:,}); "
                f"{fix}"
            )
        if _sha256(path) != sha:
            raise CheckpointError(f"{path}: wrong SHA-256, the part is damaged; {fix}")
    scenario = Path(manifest["scenario_path"])
    try:
        text = scenario.read_bytes()
    except OSError as exc:
        raise CheckpointError(
            f"{scenario}: the scenario of the checkpoint cannot be read ({exc.strerror or exc}); "
            f"put it back where it was"
        ) from None
    if hashlib.sha256(text).hexdigest() != manifest.get("scenario_sha256"):
        raise CheckpointError(
            f"{scenario}: changed since the checkpoint of tick {manifest['tick']} was taken; "
            f"restore it (the run folder keeps a copy, scenario.toml) or start a new run"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def parts(folder: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any], Iterator[dict]]:
    """Rank 0's shared data, and every part in rank order (read one at a time).

    The parts were checked (``check``); this unpickles them, which runs code.
    """
    names = [p["file"] for p in manifest["parts"]]
    first = _load(folder / names[0])
    shared = first.get("shared")
    if shared is None:
        raise CheckpointError(f"{folder / names[0]}: damaged (no shared data in rank 0's part)")

    def every() -> Iterator[dict]:
        yield first
        for name in names[1:]:
            yield _load(folder / name)

    return shared, every()


def _load(path: Path) -> dict[str, Any]:
    try:
        records = _partfile.read(path)
        part = records.pop()
        if not isinstance(part, dict) or part.get("chunks") != len(records):
            raise ValueError("its records do not add up")
    except Exception as exc:  # noqa: BLE001 - whatever a damaged pickle raises
        raise CheckpointError(f"{path}: cannot be loaded ({type(exc).__name__}: {exc})") from None
    part["chunks"] = records
    return part


__all__ = [
    "CheckpointError",
    "Checkpointer",
    "FOLDER",
    "FORMAT",
    "MANIFEST",
    "Policy",
    "check",
    "checkpoints",
    "identity",
    "install",
    "newest",
    "parts",
    "prune",
    "write_atomic",
]
