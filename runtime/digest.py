"""The results digest: the reproducibility contract, as one SHA-256.

ARCHITECTURE.md section 2 promises that a scenario, a seed and mode
``reproducible`` give bitwise-identical results whatever the number of ranks,
the s_groups, the routing or the placement. The digest is how users and tests
check that promise, so its definition lives here alone:

- a probe's rows are taken in canonical order: by tick, then AAI, then each
  actor's own recording order (``canonical_series``);
- a probe's digest is SHA-256 over its name, its width (0 for numbers), its row
  count, then every tick (``<i8``), every AAI (``<i8``) and every value
  (``<f8``), each column whole and in that order (``probe_digest``);
- the results digest is SHA-256 over the probes' digests in name order,
  leaving out probes without rows (``combine_digests``).

Nothing here knows about ranks or MPI: the same bytes give the same digest in
any process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

_BLOCK = 1 << 18  # rows read at once when streaming a column from a file

Series = tuple[np.ndarray, np.ndarray, np.ndarray]  # (ticks, AAIs, values) of one probe


def canonical_series(parts: list[Series]) -> Series:
    """Concatenate chunks and sort rows by (tick, AAI), keeping each actor's own order."""
    ticks = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
    aais = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
    values = np.concatenate([p[2] for p in parts]).astype(np.float64, copy=False)
    order = np.lexsort((aais, ticks))  # lexsort is stable: last key is primary
    return ticks[order], aais[order], values[order]


def _probe_hash(name: str, width: int, n: int) -> Any:
    h = hashlib.sha256()
    h.update(name.encode() + b"\0")
    h.update(np.int64(width).astype("<i8").tobytes())
    h.update(np.int64(n).astype("<i8").tobytes())
    return h


def probe_digest(name: str, ticks: np.ndarray, aais: np.ndarray, values: np.ndarray) -> bytes:
    """SHA-256 of one probe in canonical order: name, width, rows, then each column."""
    width = values.shape[1] if values.ndim == 2 else 0
    h = _probe_hash(name, width, ticks.shape[0])
    h.update(np.ascontiguousarray(ticks, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(aais, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return h.digest()


def stream_digest(name: str, group: h5py.Group) -> bytes:
    """``probe_digest`` of a probe group (``tick``, ``aai``, ``value``), a block at a time.

    Memory stays bounded however long the probe; the bytes hashed are the same.
    """
    value = group["value"]
    n = value.shape[0]
    h = _probe_hash(name, value.shape[1] if value.ndim == 2 else 0, n)
    for key, dtype in (("tick", "<i8"), ("aai", "<i8"), ("value", "<f8")):
        ds = group[key]
        step = max(1, _BLOCK // max(1, int(np.prod(ds.shape[1:]))))
        for start in range(0, n, step):
            block = ds[start : start + step]
            h.update(np.ascontiguousarray(block, dtype=dtype).tobytes())
    return h.digest()


def combine_digests(per_probe: Mapping[str, bytes]) -> str:
    """The results digest: SHA-256 over the probes' own digests, in name order."""
    h = hashlib.sha256()
    for name in sorted(per_probe):
        h.update(per_probe[name])
    return h.hexdigest()


def digest_of(probes: Mapping[str, Series]) -> str:
    """The results digest of probes held in memory, each in canonical order.

    Probes without rows do not count, as in ``results.h5``.
    """
    return combine_digests(
        {name: probe_digest(name, *rows) for name, rows in probes.items() if len(rows[0])}
    )


def digest_line(digest: str, status: str = "completed", tick: int | None = None) -> str:
    """The line that ends a run's summary: ``results digest: <hex>`` for a completed run only.

    A failed or interrupted run's results stop short, so their digest must not
    pass for a finished run's in a script: ``partial results digest (failed at
    tick T): <hex>``, where T is the tick the run stopped in (omitted when unknown).
    """
    if status == "completed":
        return f"results digest: {digest}"
    where = f" at tick {tick}" if tick is not None else ""
    return f"partial results digest ({status}{where}): {digest}"


def digest_file(path: Path) -> str:
    """Recompute the results digest of a results file (streaming, bounded memory)."""
    with h5py.File(path, "r") as f:
        probes = f.get("probes", {})
        return combine_digests(
            {name: stream_digest(name, g) for name, g in probes.items() if g["tick"].shape[0]}
        )


__all__ = [
    "Series",
    "canonical_series",
    "combine_digests",
    "digest_file",
    "digest_line",
    "digest_of",
    "probe_digest",
    "stream_digest",
]
