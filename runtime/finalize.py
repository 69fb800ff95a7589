"""Finalisation: every rank's staged probes become ``data/`` files and ``results.h5``.

While a run goes, each rank spills its probe buffers into a staging file of its
own (``.staging-rank<r>.bin``), in the order it recorded them, which is tick
order. ``finalize`` then runs on every rank at once:

1. The ranks agree on the probes (names, widths, units, labels) and on a
   histogram of rows over ticks (two allreduces of fixed size).
2. The tick axis is cut into *windows* of bounded size (``window_bytes`` over
   all ranks), and consecutive windows are grouped into *rounds* in which every
   rank owns at most one window and sends at most about ``window_bytes``.
3. Round by round and probe by probe, each rank sends the rows it staged for
   each window to the window's owner (one ``Alltoallv``), and the owner sorts
   them by (tick, AAI), which is the canonical order, and appends them to its
   own ``data/rank-<r>.h5``. No rank ever holds more than about two windows.
4. Rank 0 writes ``results.h5``: attributes, and virtual datasets that join the
   owners' pieces in window order. Read with plain h5py, ``/probes/<name>/tick``
   is the whole run's series in canonical order, whatever the number of ranks.
5. The digest (``runtime.digest``): probes are hashed in parallel (probe ``i``
   by rank ``i % ranks``, streaming through the virtual datasets), and rank 0
   combines the per-probe digests in name order.

So every rank writes about ``1/ranks`` of the data, memory stays bounded by the
window size whatever the run's length, and the collectives carry only
fixed-size histograms and per-window counts besides the data itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine.trace import FIELDS as TRACE_FIELDS

from .comm import Comm
from .digest import combine_digests, stream_digest
from .results import RESULTS_FILE, data_file_name, data_path, staging_path
from .staging import ALL, Staged, StagedProbe, carried_files
from .storage import GuardedH5, StorageError, storage_message

# Window size: rows of all probes, as bytes (16 per row plus 8 per value).
WINDOW_BYTES = 32 << 20
_MIN_WINDOW_BYTES = 1 << 20
WINDOW_ENV = "PYDIASCA_WINDOW_BYTES"  # tuning and tests: overrides WINDOW_BYTES
_MAX_BINS = 1 << 20  # histogram bins over the tick axis
_BLOCK = 1 << 18  # rows read at once when streaming a column
_CHUNK_ROWS = 1 << 16  # HDF5 chunk of the data files

_FILL = {"tick": -1, "aai": -1, "value": np.nan}  # what a missing data file reads as

_log = logging.getLogger("pydiasca")


@dataclass
class ProbeInfo:
    """A probe as all ranks agree on it."""

    name: str
    width: int  # 0: numbers; n: vectors of length n
    unit: str = ""
    labels: list[str] = field(default_factory=list)
    plot: str = ""  # plot mode (engine.probes.PLOT_MODES), "" for the default drawing

    @property
    def row_bytes(self) -> int:
        return 16 + 8 * max(self.width, 1)


@dataclass
class Finalized:
    """What ``finalize`` returns on every rank."""

    digest: str
    imbalance: float  # time-weighted max/mean rank kernel time per tick
    communication: float  # share of rank time in exchange + consensus
    rows: int  # probe rows written, all ranks together
    probes: int  # probes written
    complete_before: int = ALL  # rows are those of the ticks below this one (ALL: every row)


def _window_bytes() -> int:
    text = os.environ.get(WINDOW_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else WINDOW_BYTES


def _agree_on_probes(c: Comm, sources: list[Staged], declarations: Mapping[str, Any]) -> list:
    """The probes of the run, from every rank's staging file and declarations."""
    mine = {name: g.width for staged in sources for name, g in staged.items() if g.n}
    declared = {name: (d.unit, list(d.labels), d.plot) for name, d in declarations.items()}
    everyone = c.allgather((mine, declared))
    widths: dict[str, set[int]] = {}
    decl: dict[str, tuple[str, list[str], str]] = {}
    for rank_widths, rank_declared in everyone:
        for name, width in rank_widths.items():
            widths.setdefault(name, set()).add(width)
        for name, d in rank_declared.items():
            if name in decl and decl[name] != d and c.rank == 0:
                _log.warning(
                    "probe %r declared differently on two ranks: %s, %s", name, decl[name], d
                )
            decl.setdefault(name, d)
    probes = []
    for name in sorted(set(widths) | set(decl)):
        unit, labels, plot = decl.get(name, ("", [], ""))
        found = widths.get(name, {len(labels)})
        if len(found) > 1:
            if c.rank == 0:
                _log.error(
                    "probe %r has different shapes on different ranks %s; left out", name, found
                )
            continue
        (width,) = found
        if labels and len(labels) != width:
            labels = []
        probes.append(ProbeInfo(name, width, unit, labels, plot))
    return probes


def _histogram(c: Comm, sources: list[Staged], probes: list[ProbeInfo]):
    """Bins over ticks, with the bytes all ranks (sum) and any one rank (max) hold."""
    lo, hi = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    columns = [(p, s[p.name]["tick"]) for s in sources for p in probes if p.name in s]
    for _, ticks in columns:
        if ticks.shape[0]:
            lo, hi = min(lo, int(ticks[0])), max(hi, int(ticks[-1]))
    lo = int(c.allreduce(np.array([lo], dtype=np.int64), "min")[0])
    hi = int(c.allreduce(np.array([hi], dtype=np.int64), "max")[0])
    if lo > hi:
        return None
    span = hi - lo + 1
    bin_width = -(-span // _MAX_BINS)
    n_bins = -(-span // bin_width)
    local = np.zeros(n_bins, dtype=np.int64)
    for p, ticks in columns:
        previous = lo
        for start in range(0, ticks.shape[0], _BLOCK):
            block = ticks[start : start + _BLOCK]
            if block[0] < previous or np.any(np.diff(block) < 0):
                raise RuntimeError(f"probe {p.name!r}: rows were not staged in tick order")
            previous = int(block[-1])
            bins = (block - lo) // bin_width  # sorted: add the counts where they start
            counts = np.bincount(bins - bins[0])
            local[bins[0] : bins[0] + counts.shape[0]] += counts * p.row_bytes
    total = c.allreduce(local, "sum")
    peak = c.allreduce(local, "max")
    return lo, bin_width, total, peak


def _plan(total: np.ndarray, peak: np.ndarray, window: int, size: int):
    """Windows (bin ranges) of at most ``window`` bytes, and rounds of at most ``size``
    windows in which no rank holds more than about ``window`` bytes."""
    target = min(window, max(int(total.sum()) // size + 1, min(window, _MIN_WINDOW_BYTES)))
    starts, acc = [0], 0
    for b, n in enumerate(total.tolist()):
        if acc and acc + n > target:
            starts.append(b)
            acc = 0
        acc += n
    edges = [*starts, len(total)]
    peak_sum = np.concatenate([[0], np.cumsum(peak)])
    rounds, first = [], 0
    while first < len(starts):
        last = first + 1  # windows [first, last) in this round
        while (
            last < len(starts)
            and last - first < size
            and peak_sum[edges[last + 1]] - peak_sum[edges[first]] <= window
        ):
            last += 1
        rounds.append((first, last))
        first = last
    return edges, rounds


class _Reader:
    """Reads one staged probe of several staging files forward, a tick range at a time."""

    def __init__(self, groups: list[StagedProbe], width: int) -> None:
        self.parts = [_PartReader(g, width) for g in groups] or [_PartReader(None, width)]

    def take_before(self, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        taken = [part.take_before(tick) for part in self.parts]
        if len(taken) == 1:
            return taken[0]
        return tuple(np.concatenate([t[i] for t in taken]) for i in range(3))  # type: ignore[return-value]


class _PartReader:
    """Reads one staged probe of one staging file forward."""

    def __init__(self, group: StagedProbe | None, width: int) -> None:
        self.group, self.width, self.pos = group, width, 0
        self.n = 0 if group is None else group.n

    def take_before(self, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        end = self.pos
        if self.group is not None:
            ticks = self.group["tick"]
            while end < self.n:
                block = ticks[end : min(end + _BLOCK, self.n)]
                if block[-1] >= tick:
                    end += int(np.searchsorted(block, tick, "left"))
                    break
                end += block.shape[0]
        s = slice(self.pos, end)
        self.pos = end
        if self.group is None or end == s.start:
            shape = (0, self.width) if self.width else (0,)
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(shape, np.float64)
        g = self.group
        return g["tick"][s], g["aai"][s], g["value"][s]


class _Writer:
    """Appends canonical rows to this rank's data file, one dataset per probe column."""

    def __init__(self, path: Path) -> None:
        self.rows: dict[str, int] = {}
        self.error = ""  # the first write the disk refused: the writer then only counts
        self._h5: GuardedH5 | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._h5 = GuardedH5(path)
        except OSError as exc:
            self.error = storage_message(exc, path)
        except StorageError as exc:
            self.error = str(exc)

    @property
    def file(self) -> h5py.File | None:
        """The data file, or None once a write failed (later writes are skipped)."""
        return None if self._h5 is None or self._h5.failed else self._h5.file

    def close(self) -> str:
        """Close the data file; the error that lost it, or ""."""
        try:
            if self._h5 is not None:
                self._h5.close()
        except StorageError as exc:
            self.error = self.error or str(exc)
        return self.error

    def append(self, p: ProbeInfo, ticks, aais, values) -> None:
        n = ticks.shape[0]
        self.rows[p.name] = self.rows.get(p.name, 0) + n
        if self.file is None:
            return
        g = self.file.get(f"probes/{p.name}")
        if g is None:
            g = self.file.create_group(f"probes/{p.name}")
            for key, arr in (("tick", ticks), ("aai", aais), ("value", values)):
                tail = arr.shape[1:]
                rows = max(1, _CHUNK_ROWS // max(1, int(np.prod(tail))))
                g.create_dataset(
                    key,
                    data=arr,
                    maxshape=(None, *tail),
                    chunks=(min(rows, max(n, 1)), *tail),
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                )
        else:
            for key, arr in (("tick", ticks), ("aai", aais), ("value", values)):
                ds = g[key]
                ds.resize(ds.shape[0] + n, axis=0)
                ds[-n:] = arr


def _merge_window(pieces, p: ProbeInfo, c: Comm, warned: set[str]):
    ticks = np.concatenate([x[0] for x in pieces])
    aais = np.concatenate([x[1] for x in pieces])
    values = np.concatenate([x[2] for x in pieces])
    order = np.lexsort((aais, ticks))  # stable: each actor's own order is kept
    ticks, aais, values = ticks[order], aais[order], values[order]
    if c.size > 1 and p.name not in warned:
        source = np.repeat(np.arange(len(pieces)), [x[0].shape[0] for x in pieces])[order]
        same = (ticks[1:] == ticks[:-1]) & (aais[1:] == aais[:-1]) & (source[1:] != source[:-1])
        if same.any():
            warned.add(p.name)
            _log.warning(
                "probe %r: AAI %d recorded at tick %d on two ranks; record such rows "
                "(e.g. aggregates under AAI 0) on one rank only, or the results depend on "
                "the number of ranks",
                p.name,
                int(aais[1:][same][0]),
                int(ticks[1:][same][0]),
            )
    return ticks, aais, values


def _redistribute(c, staged, probes, writer, hist, window):
    """Move every staged row to the owner of its window; returns counts per window."""
    if hist is None:
        return {}
    lo, bin_width, total, peak = hist
    edges, rounds = _plan(total, peak, window, c.size)
    tick_edges = [lo + b * bin_width for b in edges]
    readers = {p.name: _Reader([s[p.name] for s in staged if p.name in s], p.width) for p in probes}
    counts: dict[int, dict[str, int]] = {}  # window -> probe -> rows, for windows I own
    warned: set[str] = set()
    for first, last in rounds:
        # Window w belongs to rank w % size: a round holds at most one window per rank.
        mine = next((w for w in range(first, last) if w % c.size == c.rank), None)
        bounds = tick_edges[first : last + 1]
        for p in probes:
            ticks, aais, values = readers[p.name].take_before(bounds[-1])
            cuts = [0, *np.searchsorted(ticks, bounds[1:-1], "left").tolist(), ticks.shape[0]]
            parts = [slice(0, 0)] * c.size
            for i, w in enumerate(range(first, last)):
                parts[w % c.size] = slice(cuts[i], cuts[i + 1])
            flat = values.reshape(values.shape[0], p.width) if p.width else values[:, None]
            got_t = c.alltoallv([ticks[s] for s in parts])
            got_a = c.alltoallv([aais[s] for s in parts])
            got_v = c.alltoallv([flat[s].ravel() for s in parts])
            if mine is None:
                continue
            pieces = [
                (t, a, v.reshape(-1, p.width) if p.width else v)
                for t, a, v in zip(got_t, got_a, got_v, strict=True)
            ]
            if sum(t.shape[0] for t, _, _ in pieces) == 0:
                continue
            merged = _merge_window(pieces, p, c, warned)
            writer.append(p, *merged)
            counts.setdefault(mine, {})[p.name] = merged[0].shape[0]
    return counts


def _write_performance(c: Comm, writer: _Writer, trace: Mapping[str, np.ndarray]):
    """This rank's per-tick figures into its data file; the per-tick sums over ranks,
    and the maxima of wall and kernel time, to rank 0."""
    n = int(c.allreduce(np.array([len(trace["tick"])], dtype=np.int64), "min")[0])
    if writer.file is not None:
        g = writer.file.create_group("performance")
        for key, column in trace.items():
            g.create_dataset(key, data=column)
        writer.file.attrs["rank"] = c.rank
        writer.file.attrs["ranks"] = c.size
    sums = {key: c.reduce(np.ascontiguousarray(trace[key][:n]), "sum") for key in trace}
    maxima = {key: c.reduce(np.ascontiguousarray(trace[key][:n]), "max") for key in _MAXIMA}
    lengths = c.gather(len(trace["tick"]))
    return n, sums, maxima, lengths


_MAXIMA = ("wall_s", "kernel_s")


def _vds_probe(out: h5py.Group, p: ProbeInfo, pieces, files: list[str], rows_of: dict) -> None:
    """/probes/<name>/{tick,aai,value} as virtual datasets over the owners' files."""
    n = sum(count for _, count in pieces)
    tail = (p.width,) if p.width else ()
    g = out.create_group(p.name)
    for key in ("tick", "aai", "value"):
        dtype = np.float64 if key == "value" else np.int64
        shape = (n, *tail) if key == "value" else (n,)
        if n == 0:
            g.create_dataset(key, shape=shape, dtype=dtype)
            continue
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        # Consecutive pieces of one rank's file that follow each other become one mapping.
        merged: list[list[int]] = []  # [rank, src_start, dst_start, count]
        dst, src_at = 0, {}
        for rank, count in pieces:
            src = src_at.get(rank, 0)
            last = merged[-1] if merged else None
            if last and last[0] == rank and last[1] + last[3] == src and last[2] + last[3] == dst:
                last[3] += count
            else:
                merged.append([rank, src, dst, count])
            src_at[rank] = src + count
            dst += count
        for rank, src, dst0, count in merged:
            total = rows_of[rank]
            source = h5py.VirtualSource(
                files[rank],
                f"probes/{p.name}/{key}",
                shape=(total, *tail) if key == "value" else (total,),
            )
            layout[dst0 : dst0 + count] = source[src : src + count]
        g.create_virtual_dataset(key, layout, fillvalue=_FILL[key])
    g.attrs["unit"] = p.unit
    g.attrs["labels"] = np.array(p.labels, dtype=h5py.string_dtype())
    g.attrs["width"] = p.width
    g.attrs["plot"] = p.plot
    g.attrs["rows"] = n


def _vds_performance(out: h5py.File, n: int, lengths: list[int], files: list[str], sums, maxima):
    """/performance: per-rank figures as (ranks, ticks) virtual datasets, and the
    per-tick figures over all ranks; returns (imbalance, communication share)."""
    size = len(files)
    perf = out.create_group("performance")
    perf.attrs["ranks"] = size
    for key, (code, meaning) in TRACE_FIELDS.items():
        dtype = np.int64 if code == "q" else np.float64
        shape = (n,) if key == "tick" else (size, n)
        if n == 0:
            ds = perf.create_dataset(key, shape=shape, dtype=dtype)
        else:
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            for r in range(1 if key == "tick" else size):
                src = h5py.VirtualSource(files[r], f"performance/{key}", shape=(lengths[r],))
                if key == "tick":
                    layout[:] = src[:n]
                else:
                    layout[r, :] = src[:n]
            ds = perf.create_virtual_dataset(key, layout, fillvalue=-1 if code == "q" else np.nan)
        ds.attrs["meaning"] = meaning if key == "tick" else f"{meaning}; one row per rank"
        ds.attrs["unit"] = "s" if key.endswith("_s") else ""
    agg = perf.create_group("all_ranks")
    for key in TRACE_FIELDS:
        if key != "tick":
            agg.create_dataset(key, data=sums[key])
            agg[key].attrs["meaning"] = f"sum over ranks of {key}, per tick"
    for key, values in maxima.items():
        agg.create_dataset(f"{key}_max", data=values)
        agg[f"{key}_max"].attrs["meaning"] = f"largest {key} of any rank, per tick"
    # Wall time per tick is the same on every rank (they wait for each other in the
    # consensus), so imbalance is measured on the work: kernel time.
    mean = sums["kernel_s"] / size
    imbalance = np.divide(maxima["kernel_s"], mean, out=np.ones_like(mean), where=mean > 0)
    agg.create_dataset("imbalance", data=imbalance)
    agg["imbalance"].attrs["meaning"] = "largest over mean kernel_s of the ranks, per tick"
    wall = float(sums["wall_s"].sum())
    comm = float(sums["exchange_s"].sum() + sums["consensus_s"].sum())
    overall = float(maxima["kernel_s"].sum() / mean.sum()) if mean.sum() > 0 else 1.0
    share = comm / wall if wall > 0 else 0.0
    perf.attrs["imbalance"] = overall
    perf.attrs["communication_share"] = share
    return overall, share


def finalize(
    run_dir: Path,
    *,
    comm: Comm | None = None,
    declarations: Mapping[str, Any] | None = None,
    trace: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping[str, Any] | None = None,
    window_bytes: int | None = None,
) -> Finalized:
    """Turn every rank's staging file into ``data/rank-<r>.h5`` and ``results.h5``.

    Collective: every rank calls it, after closing its staging sink; ``metadata``
    matters on rank 0 only. Returns the same ``Finalized`` on every rank, or
    raises the same ``StorageError`` on every rank when a file cannot be written
    (the staging files are then kept, for ``recover``).
    """
    c = comm if comm is not None else Comm()
    path = staging_path(run_dir, c.rank)
    sources = [Staged(path)] if path.exists() else []
    sources += [Staged(p) for p in carried_files(run_dir)[c.rank :: c.size]]  # a resumed run's
    try:
        decl = declarations or {}
        return finalize_staged(c, run_dir, sources, decl, trace, metadata, window_bytes)
    finally:
        for staged in sources:
            staged.close()


def finalize_staged(
    c: Comm,
    run_dir: Path,
    sources: list[Staged],
    declarations: Mapping[str, Any],
    trace: Mapping[str, np.ndarray] | None,
    metadata: Mapping[str, Any] | None,
    window_bytes: int | None = None,
) -> Finalized:
    """``finalize`` over open staging files: this process's own (one per rank), or all
    of them in one process (``runtime.recovery``)."""
    window = window_bytes or _window_bytes()
    if trace is None:
        trace = {
            key: np.empty(0, np.int64 if code == "q" else np.float64)
            for key, (code, _) in TRACE_FIELDS.items()
        }
    # Rows count up to the last tick that every rank staged completely.
    mine = min((s.complete_before for s in sources), default=0)
    complete = int(c.allreduce(np.array([mine], dtype=np.int64), "min")[0])
    for staged in sources:
        staged.limit(complete)
    writer = _Writer(data_path(run_dir, c.rank))
    probes = _agree_on_probes(c, sources, declarations)
    hist = _histogram(c, sources, probes)
    counts = _redistribute(c, sources, probes, writer, hist, window)
    n, sums, maxima, lengths = _write_performance(c, writer, trace)
    rows_here = dict(writer.rows)
    problem = writer.close()
    gathered = c.gather((counts, rows_here, problem))  # every data file is closed past this point

    perf = (1.0, 0.0)
    total_rows = 0
    if c.rank == 0:
        assert gathered is not None
        problem = next((g[2] for g in gathered if g[2]), "")
        files = [data_file_name(r) for r in range(c.size)]
        owned: dict[int, tuple[int, dict[str, int]]] = {}
        for rank, (rank_counts, _, _) in enumerate(gathered):
            for w, per_probe in rank_counts.items():
                owned[w] = (rank, per_probe)
        if not problem:
            try:
                with GuardedH5(run_dir / RESULTS_FILE) as out:
                    meta = dict(metadata or {})
                    if complete != ALL:
                        meta["rows_before_tick"] = complete
                    for key, value in meta.items():
                        out.attrs[key] = _attr_value(value)
                    out.attrs["data_files"] = np.array(files, dtype=h5py.string_dtype())
                    group = out.create_group("probes")
                    group.attrs["order"] = (
                        "by tick, then AAI, then each actor's own recording order"
                    )
                    for p in probes:
                        pieces = [
                            (owned[w][0], owned[w][1][p.name])
                            for w in sorted(owned)
                            if owned[w][1].get(p.name)
                        ]
                        rows_of = {r: gathered[r][1].get(p.name, 0) for r in range(c.size)}
                        _vds_probe(group, p, pieces, files, rows_of)
                        total_rows += sum(cnt for _, cnt in pieces)
                    perf = _vds_performance(out, n, lengths, files, sums, maxima)
            except StorageError as exc:
                problem = str(exc)
    _give_up_if(c.bcast(problem), c, run_dir)  # results.h5 is closed: every rank may read it

    with h5py.File(run_dir / RESULTS_FILE, "r") as f:
        hashed = {
            p.name: stream_digest(p.name, f["probes"][p.name])
            for i, p in enumerate(probes)
            if i % c.size == c.rank and f["probes"][p.name]["tick"].shape[0]
        }
    everyone = c.gather(hashed)
    digest = ""
    problem = ""
    if c.rank == 0:
        assert everyone is not None
        per_probe = {name: d for part in everyone for name, d in part.items()}
        digest = combine_digests(per_probe)
        try:
            with GuardedH5(run_dir / RESULTS_FILE, "r+") as out:
                for name, d in per_probe.items():
                    out["probes"][name].attrs["digest"] = d.hex()
                out.attrs["digest"] = digest
        except StorageError as exc:
            problem = str(exc)
    _give_up_if(c.bcast(problem), c, run_dir)
    digest, perf, total_rows = c.bcast((digest, perf, total_rows))
    for staged in sources:  # every rank is past the digest: results.h5 is complete
        staged.path.unlink(missing_ok=True)
    return Finalized(digest, float(perf[0]), float(perf[1]), total_rows, len(probes), complete)


def _give_up_if(problem: str, c: Comm, run_dir: Path) -> None:
    """On every rank alike: remove what was written and raise, keeping the staging files."""
    if not problem:
        return
    data_path(run_dir, c.rank).unlink(missing_ok=True)
    if c.rank == 0:
        (run_dir / RESULTS_FILE).unlink(missing_ok=True)
    raise StorageError(
        f"{problem}; the staged rows are kept: free some space, then run "
        f"'pydiasca recover {run_dir}'"
    )


def _attr_value(value: Any) -> Any:
    """A metadata value as an HDF5 attribute: None as "", lists of text as string arrays."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) and (not value or all(isinstance(v, str) for v in value)):
        return np.array(list(value), dtype=h5py.string_dtype())
    return value


__all__ = ["Finalized", "ProbeInfo", "finalize", "finalize_staged"]
