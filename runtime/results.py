"""Run folders and ``results.h5``: probe series in canonical order, metadata, digest.

Layout of ``results.h5`` (see docs/results.md):

- root attributes: the run metadata (scenario text, seed, mode, status, digest...);
- ``/probes/<name>/tick``, ``/aai`` and ``/value``: one probe's rows, sorted by
  (tick, AAI); ``value`` has shape (n,) for numbers and (n, width) for vectors.

While a run is going, each rank's probe buffers spill into a staging file of
its own, so memory stays bounded; ``finalize`` sorts each probe into canonical
order, writes it and hashes it. Nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

RESULTS_FILE = "results.h5"
_STAGING = ".staging-rank{rank}.h5"


class StagingSink:
    """Appends probe chunks to resizable datasets of a per-rank HDF5 file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = h5py.File(path, "w")

    def write(self, name: str, ticks: np.ndarray, aais: np.ndarray, values: np.ndarray) -> None:
        group = self._file.get(name)
        if group is None:
            group = self._file.create_group(name)
            for key, arr in (("tick", ticks), ("aai", aais), ("value", values)):
                group.create_dataset(key, data=arr, maxshape=(None, *arr.shape[1:]), chunks=True)
            return
        for key, arr in (("tick", ticks), ("aai", aais), ("value", values)):
            ds = group[key]
            n = ds.shape[0]
            ds.resize(n + arr.shape[0], axis=0)
            ds[n:] = arr

    def close(self) -> None:
        self._file.close()


def staging_path(run_dir: Path, rank: int) -> Path:
    return run_dir / _STAGING.format(rank=rank)


def canonical_series(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate chunks and sort rows by (tick, AAI), keeping each actor's own order."""
    ticks = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
    aais = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
    values = np.concatenate([p[2] for p in parts]).astype(np.float64, copy=False)
    order = np.lexsort((aais, ticks))  # lexsort is stable: last key is primary
    return ticks[order], aais[order], values[order]


def _digest_update(h: Any, name: str, ticks: np.ndarray, aais: np.ndarray, values: np.ndarray):
    width = values.shape[1] if values.ndim == 2 else 0
    h.update(name.encode() + b"\0")
    h.update(np.int64(width).astype("<i8").tobytes())
    h.update(np.int64(ticks.shape[0]).astype("<i8").tobytes())
    h.update(np.ascontiguousarray(ticks, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(aais, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())


def digest_of(probes: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """SHA-256 over every probe in name order, rows in canonical (tick, AAI) order."""
    h = hashlib.sha256()
    for name in sorted(probes):
        _digest_update(h, name, *probes[name])
    return h.hexdigest()


def read_probes(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every probe of a results file, as (tick, aai, value) arrays."""
    with h5py.File(path, "r") as f:
        group = f.get("probes", {})
        return {name: (g["tick"][()], g["aai"][()], g["value"][()]) for name, g in group.items()}


def _staged_parts(paths: list[Path]) -> Iterator[tuple[str, list]]:
    """Yield each probe name with its chunks from every rank's staging file."""
    files = [h5py.File(p, "r") for p in paths if p.exists()]
    try:
        names = sorted({name for f in files for name in f})
        for name in names:
            parts = [
                (f[name]["tick"][()], f[name]["aai"][()], f[name]["value"][()])
                for f in files
                if name in f
            ]
            yield name, parts
    finally:
        for f in files:
            f.close()


def finalize(run_dir: Path, staging: list[Path], metadata: dict[str, Any]) -> str:
    """Write ``results.h5`` from the staging files; returns the results digest."""
    h = hashlib.sha256()
    with h5py.File(run_dir / RESULTS_FILE, "w") as out:
        probes = out.create_group("probes")
        for name, parts in _staged_parts(staging):
            ticks, aais, values = canonical_series(parts)
            _digest_update(h, name, ticks, aais, values)
            g = probes.create_group(name)
            g.create_dataset("tick", data=ticks, compression="gzip", shuffle=True)
            g.create_dataset("aai", data=aais, compression="gzip", shuffle=True)
            g.create_dataset("value", data=values, compression="gzip", shuffle=True)
        digest = h.hexdigest()
        for key, value in {**metadata, "digest": digest}.items():
            out.attrs[key] = "" if value is None else value
    for path in staging:
        path.unlink(missing_ok=True)
    return digest


def versions() -> dict[str, str]:
    """Versions of what shaped the results, read without importing MPI."""
    out = {"python_version": platform.python_version()}
    for dist in ("pydiasca", "numpy", "numba", "h5py", "mpi4py"):
        try:
            out[f"{dist}_version"] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[f"{dist}_version"] = "not installed"
    return out


def git_commit() -> str:
    """The commit of the pydiasca checkout in use, or '' outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""
