"""Run folders and ``results.h5``: where a run's files lie, and reading them back.

The layout is documented for users in docs/results.md. In short::

    results.h5               metadata attributes; /probes and /performance,
                             whose datasets are HDF5 virtual datasets over:
    data/rank-00000.h5 ...   the data, one file per rank, each written by its rank
    .staging-rank<r>.h5      while the run goes: rank r's probe rows, in tick order

``runtime.finalize`` turns the staging files into the data files and
``results.h5``; ``runtime.digest`` defines the results digest. This module
holds what both the running and the reading side need: the names of the files,
the staging sink, the probe filter, run metadata, and ``pydiasca info``.

Nothing is ever pickled into a file.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

RESULTS_FILE = "results.h5"
DATA_FOLDER = "data"
_STAGING = ".staging-rank{rank}.h5"
_DATA_FILE = "rank-{rank:05d}.h5"

# --- probe selection -----------------------------------------------------------


def probe_filter(
    include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Callable[[str], bool] | None:
    """``[results] include/exclude``: a probe is kept when an include pattern finds it
    (or there are none) and no exclude pattern does. Patterns are searched, as grep does.

    Returns None when everything is kept, so that recording pays no filter at all.
    """
    if not include and not exclude:
        return None
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]

    def wanted(name: str) -> bool:
        if inc and not any(p.search(name) for p in inc):
            return False
        return not any(p.search(name) for p in exc)

    return wanted


# --- staging during the run ------------------------------------------------------


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
        if self._file:
            self._file.close()


def staging_path(run_dir: Path, rank: int) -> Path:
    return run_dir / _STAGING.format(rank=rank)


def data_path(run_dir: Path, rank: int) -> Path:
    return run_dir / data_file_name(rank)


def data_file_name(rank: int) -> str:
    """Rank ``rank``'s data file, relative to the run folder (as results.h5 names it)."""
    return f"{DATA_FOLDER}/{_DATA_FILE.format(rank=rank)}"


# --- run metadata -----------------------------------------------------------------


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


# --- reading a run folder back ---------------------------------------------------------


def read_probes(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every probe of a results file, as (tick, aai, value) arrays (all in memory)."""
    with h5py.File(path, "r") as f:
        group = f.get("probes", {})
        return {name: (g["tick"][()], g["aai"][()], g["value"][()]) for name, g in group.items()}


class RunFolderUnreadable(Exception):
    """A path that is not a readable run folder; str() is the one-line message."""


def open_run(path: str | Path) -> Path:
    """The results file of a run folder (or the file itself), checked readable."""
    p = Path(path)
    results = p / RESULTS_FILE if p.is_dir() else p
    if not p.exists():
        raise RunFolderUnreadable(f"{p}: no such folder")
    if not results.is_file():
        raise RunFolderUnreadable(
            f"{p}: no {RESULTS_FILE} in it; give the folder of a finished pydiasca run"
        )
    try:
        with h5py.File(results, "r") as f:
            f.attrs.get("status")
    except OSError as exc:
        raise RunFolderUnreadable(f"{results}: not a readable HDF5 file ({exc})") from None
    return results


def missing_data_files(results: Path) -> list[str]:
    """Data files that results.h5 names but that are not next to it."""
    with h5py.File(results, "r") as f:
        files = [str(x) for x in f.attrs.get("data_files", [])]
    return [name for name in files if not (results.parent / name).is_file()]


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return "[" + ", ".join(_attr_text(v) for v in value.tolist()) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def describe_run(results: Path) -> str:
    """What ``pydiasca info`` prints: metadata, probes with shapes and units, status.

    The last line is the results digest, as in the run summary.
    """
    lines = []

    def row(key: str, value: object) -> None:
        lines.append(f"{key:<21} {value}")

    with h5py.File(results, "r") as f:
        attrs = dict(f.attrs)
        row("run folder", results.parent)
        row("status", _attr_text(attrs.get("status", "?")))
        if attrs.get("failure"):
            row("failure", str(attrs["failure"]).splitlines()[0])
        skip = {"scenario", "failure", "digest", "status", "data_files"}
        for key in sorted(attrs):
            if key not in skip:
                row(key, _attr_text(attrs[key]))
        scenario = str(attrs.get("scenario", ""))
        row("scenario", f"{len(scenario.splitlines())} lines (attribute 'scenario'; scenario.toml)")
        if "performance" in f:
            perf = f["performance"]
            row(
                "performance",
                f"{perf['tick'].shape[0]:,} ticks x {int(perf.attrs.get('ranks', 1))} rank(s); "
                f"load imbalance {float(perf.attrs.get('imbalance', 1.0)):.2f}, communication "
                f"{float(perf.attrs.get('communication_share', 0.0)):.1%}",
            )
        files = [str(x) for x in attrs.get("data_files", [])]
        missing = missing_data_files(results)
        if missing:
            more = " ..." if len(missing) > 4 else ""
            row(
                "data files",
                f"MISSING {len(missing)} of {len(files)}: {', '.join(missing[:4])}{more} "
                f"(their rows read as fill values)",
            )
        elif files:
            row("data files", f"{len(files)} in {DATA_FOLDER}/, all present")
        probes = f.get("probes", {})
        row("probes", len(probes))
        wide = max([24, *(len(name) for name in probes)])
        for name, g in probes.items():
            value = g["value"]
            shape = "x".join(str(s) for s in value.shape)
            unit = str(g.attrs.get("unit", "")) or "-"
            labels = [str(x) for x in g.attrs.get("labels", [])]
            kind = f"vector[{value.shape[1]}]" if value.ndim == 2 else "scalar"
            extra = ""
            if labels:
                more = f", ... ({len(labels)})" if len(labels) > 6 else ""
                extra = f"  labels {', '.join(labels[:6])}{more}"
            lines.append(
                f"  {name:<{wide}} {kind:<12} rows {value.shape[0]:>10,}  "
                f"value {shape:<12} unit {unit}{extra}"
            )
        lines.append(f"results digest: {_attr_text(attrs.get('digest', ''))}")
    return "\n".join(lines)
