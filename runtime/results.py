"""Run folders and ``results.h5``: where a run's files lie, and reading them back.

The layout is documented for users in docs/results.md. In short::

    results.h5               metadata attributes; /probes and /performance,
                             whose datasets are HDF5 virtual datasets over:
    data/rank-00000.h5 ...   the data, one file per rank, each written by its rank
    .staging-rank<r>.bin     while the run goes: rank r's probe rows (runtime.staging)

``runtime.finalize`` turns the staging files into the data files and
``results.h5`` (or, after a crash, ``recover`` does); ``runtime.digest``
defines the results digest. This module holds what both the running and the
reading side need: the names of the files, the probe filter, run metadata,
``pydiasca info``, and the Python reading API (``open_run``: a run's metadata,
probes and per-tick series; docs/analysis.md).

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
_STAGING = ".staging-rank{rank}.bin"
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


# --- file names ---------------------------------------------------------------------


def staging_path(run_dir: Path, rank: int) -> Path:
    return run_dir / _STAGING.format(rank=rank)


def staging_files(run_dir: Path) -> list[Path]:
    """The staging files left in a run folder, by rank."""
    found = run_dir.glob(_STAGING.format(rank="*"))
    return sorted(found, key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))


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


class RunNeedsRecovery(RunFolderUnreadable):
    """A run folder whose results were never completed, but whose staging files remain."""


def results_file(path: str | Path) -> Path:
    """The results file of a run folder (or the file itself), checked readable.

    A folder that still holds staging files and no complete results.h5 (one
    with a digest) is a run that ended before writing its results:
    ``RunNeedsRecovery`` says to run ``pydiasca recover``.
    """
    p = Path(path)
    results = p / RESULTS_FILE if p.is_dir() else p
    if not p.exists():
        raise RunFolderUnreadable(f"{p}: no such folder")
    staged = staging_files(results.parent)
    recover = (
        f"{results.parent}: the run ended before writing its results ({RESULTS_FILE} "
        f"{{what}}), but the staging files of its ranks are here; run "
        f"'pydiasca recover {results.parent}' to build {RESULTS_FILE} from them"
    )
    if not results.is_file():
        if staged:
            raise RunNeedsRecovery(recover.format(what="is missing"))
        raise RunFolderUnreadable(
            f"{p}: no {RESULTS_FILE} in it; give the folder of a finished pydiasca run"
        )
    try:
        with h5py.File(results, "r") as f:
            complete = "digest" in f.attrs
    except OSError as exc:
        if staged:
            raise RunNeedsRecovery(recover.format(what="is unreadable")) from None
        raise RunFolderUnreadable(f"{results}: not a readable HDF5 file ({exc})") from None
    if staged and not complete:
        raise RunNeedsRecovery(recover.format(what="is incomplete"))
    return results


def probe_names(results: Path) -> list[str]:
    """The probes of a results file, sorted."""
    with h5py.File(results, "r") as f:
        return sorted(f.get("probes", {}))


def missing_data_files(results: Path) -> list[str]:
    """Data files that results.h5 names but that are not next to it."""
    with h5py.File(results, "r") as f:
        files = [str(x) for x in f.attrs.get("data_files", [])]
    return [name for name in files if not (results.parent / name).is_file()]


def damaged_data(results: Path) -> list[str]:
    """What is wrong with the data files that results.h5 reads through: each one must
    open, and each column must hold every row the virtual datasets map to it (its
    first and last such rows are read)."""
    needed: dict[tuple[str, str], tuple[int, int]] = {}  # (file, dataset) -> first, last row

    def visit(_: str, ds: object) -> None:
        if isinstance(ds, h5py.Dataset) and ds.is_virtual:
            for source in ds.virtual_sources():
                lo, hi = source.src_space.get_select_bounds()
                key = (source.file_name, source.dset_name)
                first, last = needed.get(key, (lo[0], hi[0]))
                needed[key] = (min(first, lo[0]), max(last, hi[0]))

    with h5py.File(results, "r") as f:
        f.visititems(visit)
    problems: list[str] = []
    for name in sorted({file for file, _ in needed}):
        if not (results.parent / name).is_file():
            problems.append(f"{name} is missing")
            continue
        try:
            with h5py.File(results.parent / name, "r") as data:
                for (file, dataset), (first, last) in needed.items():
                    if file != name:
                        continue
                    column = data[dataset]
                    if column.shape[0] <= last:
                        rows = f"{column.shape[0]} rows, not {last + 1}"
                        raise OSError(f"{dataset} holds {rows}")
                    column[first], column[last]  # noqa: B018 (reading is the check)
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{name} is damaged ({_first_line(exc)})")
    return problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return "[" + ", ".join(_attr_text(v) for v in value.tolist()) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def _digest_line(attrs: dict) -> str:
    """The summary's last line: partial for a failed or interrupted run (runtime.digest)."""
    from .digest import digest_line

    status = _attr_text(attrs.get("status", "completed"))
    tick = attrs.get("last_tick", attrs.get("rows_before_tick"))
    return digest_line(
        _attr_text(attrs.get("digest", "")), status, None if tick is None else int(tick)
    )


def describe_run(results: Path) -> str:
    """What ``pydiasca info`` prints: metadata, probes with shapes and units, status.

    The last line is the results digest, as in the run summary (partial for a
    run that did not complete).
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
        damaged = [d for d in damaged_data(results) if not d.endswith(" is missing")]
        if missing:
            more = " ..." if len(missing) > 4 else ""
            row(
                "data files",
                f"MISSING {len(missing)} of {len(files)}: {', '.join(missing[:4])}{more} "
                f"(their rows read as fill values)",
            )
        if damaged:
            more = " ..." if len(damaged) > 4 else ""
            row(
                "data files",
                f"DAMAGED {len(damaged)} of {len(files)}: {'; '.join(damaged[:4])}{more}",
            )
        if files and not missing and not damaged:
            row("data files", f"{len(files)} in {DATA_FOLDER}/, all present and readable")
        probes = f.get("probes", {})
        row("probes", len(probes))
        wide = max([24, *(len(name) for name in probes)])
        for name, g in probes.items():
            value = g["value"]
            shape = "x".join(str(s) for s in value.shape)
            unit = str(g.attrs.get("unit", "")) or "-"
            labels = [str(x) for x in g.attrs.get("labels", [])]
            kind = f"vector[{value.shape[1]}]" if value.ndim == 2 else "scalar"
            mode = str(g.attrs.get("plot", ""))
            extra = f"  plot {mode}" if mode else ""
            if labels:
                more = f", ... ({len(labels)})" if len(labels) > 6 else ""
                extra += f"  labels {', '.join(labels[:6])}{more}"
            lines.append(
                f"  {name:<{wide}} {kind:<12} rows {value.shape[0]:>10,}  "
                f"value {shape:<12} unit {unit}{extra}"
            )
        lines.append(_digest_line(attrs))
    return "\n".join(lines)


# --- the Python reading API -------------------------------------------------------------


def per_tick(group: h5py.Group, block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct tick of a probe: the tick, the sum of the values recorded then
    (one column per vector component) and how many rows were recorded then.

    Read a block at a time, so that a huge probe needs bounded memory. Plots and
    ``Probe.series`` both use it: a ``sum`` plot shows exactly these numbers.
    """
    t_ds, v_ds = group["tick"], group["value"]
    width = v_ds.shape[1] if v_ds.ndim == 2 else 1
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, t_ds.shape[0], block):
        ticks = t_ds[start : start + block]
        values = v_ds[start : start + block].reshape(ticks.shape[0], width)
        uniq, which = np.unique(ticks, return_inverse=True)
        parts.append((uniq, _sum_by(which, values, uniq.shape[0]), np.bincount(which)))
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.empty(0, np.int64), np.empty((0, width)), np.empty(0, np.int64)
    ticks = np.concatenate([p[0] for p in parts])
    uniq, which = np.unique(ticks, return_inverse=True)  # ticks that span two blocks
    sums = _sum_by(which, np.concatenate([p[1] for p in parts]), uniq.shape[0])
    counts = np.bincount(which, weights=np.concatenate([p[2] for p in parts]))
    return uniq, sums, counts.astype(np.int64)


def _sum_by(which: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Column sums of the rows of ``values`` grouped by ``which`` (0 <= which < n)."""
    out = np.empty((n, values.shape[1]))
    for c in range(values.shape[1]):
        out[:, c] = np.bincount(which, weights=values[:, c], minlength=n)
    return out


class ProbeSeries:
    """A probe over time, one entry per tick at which it was recorded.

    ``tick`` and ``time`` (simulated seconds) index every array. ``sum`` and
    ``mean`` are over the rows of each tick (over actors, when each records once
    per tick), ``count`` is the number of rows; for a vector probe ``sum`` and
    ``mean`` have one column per component. These are the numbers that the plot
    modes ``sum``, ``mean`` and ``count`` draw.
    """

    def __init__(
        self, tick: np.ndarray, time: np.ndarray, sum: np.ndarray, count: np.ndarray
    ) -> None:
        self.tick, self.time, self.sum, self.count = tick, time, sum, count
        shape = (-1, 1) if sum.ndim == 2 else (-1,)
        self.mean = sum / np.maximum(count, 1).reshape(shape)

    def __len__(self) -> int:
        return self.tick.shape[0]

    def to_pandas(self) -> Any:
        """A DataFrame indexed by tick: time, sum, mean, count (sum_<label>... for vectors)."""
        pd = _pandas()
        columns: dict[str, np.ndarray] = {"time": self.time}
        if self.sum.ndim == 1:
            columns.update(sum=self.sum, mean=self.mean)
        else:
            for i in range(self.sum.shape[1]):
                columns[f"sum_{i}"] = self.sum[:, i]
                columns[f"mean_{i}"] = self.mean[:, i]
        columns["count"] = self.count
        return pd.DataFrame(columns, index=pd.Index(self.tick, name="tick"))


class Probe:
    """One probe of a run: its unit, labels, plot mode and rows, read on demand.

    Each method reads the probe from the run's files whole, into memory.
    """

    def __init__(self, run: Run, name: str) -> None:
        self.run, self.name = run, name
        with h5py.File(run.results, "r") as f:
            g = f["probes"][name]
            self.unit = str(g.attrs.get("unit", ""))
            self.labels = [str(x) for x in g.attrs.get("labels", [])]
            self.plot = str(g.attrs.get("plot", ""))
            self.width = int(g["value"].shape[1]) if g["value"].ndim == 2 else 0
            self.row_count = int(g["tick"].shape[0])

    def __repr__(self) -> str:
        shape = f"vectors of {self.width}" if self.width else "numbers"
        return f"<Probe {self.name!r}: {self.row_count:,} rows of {shape}>"

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row as (tick, aai, value) arrays, in canonical order (tick, then AAI)."""
        with h5py.File(self.run.results, "r") as f:
            g = f["probes"][self.name]
            return g["tick"][()], g["aai"][()], g["value"][()]

    def series(self) -> ProbeSeries:
        """Per tick: sum, mean and count over the rows recorded then (see ProbeSeries)."""
        with h5py.File(self.run.results, "r") as f:
            tick, sums, count = per_tick(f["probes"][self.name])
        if not self.width:
            sums = sums[:, 0]
        return ProbeSeries(tick, tick * self.run.tick_duration, sums, count)

    def per_actor(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ticks, aais, matrix): ``matrix[i, j]`` is actor ``aais[j]``'s value at
        ``ticks[i]`` (NaN where it recorded nothing; its last row when several).
        Vector probes give a third axis, one entry per component."""
        tick, aai, value = self.rows()
        ticks, row = np.unique(tick, return_inverse=True)
        aais, col = np.unique(aai, return_inverse=True)
        matrix = np.full((ticks.shape[0], aais.shape[0], *value.shape[1:]), np.nan)
        matrix[row, col] = value  # rows are in recording order: the last one stays
        return ticks, aais, matrix

    def to_pandas(self) -> Any:
        """Every row as a DataFrame: tick, time, aai, and value; a vector probe has one
        column per component, named by its labels (``value_0``, ``value_1``... when it
        has none, or when they repeat or clash with tick, time or aai)."""
        pd = _pandas()
        tick, aai, value = self.rows()
        columns: dict[str, np.ndarray] = {
            "tick": tick,
            "time": tick * self.run.tick_duration,
            "aai": aai,
        }
        if value.ndim == 1:
            columns["value"] = value
        else:
            names = self.labels
            if len(set(names) | set(columns)) != len(names) + len(columns):
                names = [f"value_{i}" for i in range(value.shape[1])]
            columns.update({label: value[:, i] for i, label in enumerate(names)})
        return pd.DataFrame(columns)


class Run:
    """A finished run folder, for reading in Python (``open_run``)."""

    def __init__(self, results: Path) -> None:
        self.results = results  # the results.h5 file
        self.folder = results.parent
        with h5py.File(results, "r") as f:
            self.metadata: dict[str, Any] = {k: _attr_python(v) for k, v in f.attrs.items()}
            self.probes: list[str] = sorted(f.get("probes", {}))

    def __repr__(self) -> str:
        return f"<Run {str(self.folder)!r}: {self.status}, {len(self.probes)} probe(s)>"

    @property
    def digest(self) -> str:
        """The results digest (the reproducibility check: see docs/results.md)."""
        return str(self.metadata.get("digest", ""))

    @property
    def digest_family(self) -> str:
        """Which runs' digests this digest compares with: "portable" (every backend
        and rank count) or per-backend populations such as "weather=cuda"."""
        return str(self.metadata.get("digest_family", "portable"))

    @property
    def status(self) -> str:
        """``completed``, ``failed`` or ``interrupted``."""
        return str(self.metadata.get("status", ""))

    @property
    def tick_duration(self) -> float:
        """Simulated seconds per tick."""
        return float(self.metadata.get("tick_duration", 1.0))

    def probe(self, name: str) -> Probe:
        """The probe called ``name``; an unknown name is a ``LookupError`` that lists the
        probes (with "did you mean" when one is close)."""
        if name not in self.probes:
            import difflib

            close = difflib.get_close_matches(name, self.probes, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise LookupError(
                f"{self.folder}: no probe {name!r}; {hint}probes: {', '.join(self.probes)}"
            )
        return Probe(self, name)


def open_run(path: str | Path) -> Run:
    """A run folder (or its results.h5), ready to read in Python.

    Raises ``RunFolderUnreadable`` (or ``RunNeedsRecovery``) with a one-line
    message when the folder holds no finished run.
    """
    return Run(results_file(path))


def _attr_python(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_attr_python(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "to_pandas() needs pandas, which pydiasca does not install: pip install pandas"
        ) from None
    return pandas
