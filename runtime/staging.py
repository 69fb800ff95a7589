"""Staging files: each rank's probe rows while the run goes, safe to read after a crash.

A staging file (``.staging-rank<r>.bin``) is an append-only sequence of frames,
each a fixed header, a payload and a CRC-32 over both. Frames are only ever
appended, so whatever happens to the process (SIGKILL, a full disk, a crash),
the file is a run of complete frames followed at worst by one torn frame,
which the reader detects and ignores. The frames are:

- ``HEADER``: JSON with the rank, the number of ranks and (rank 0) the run's
  metadata as known at the start; the first frame of every file.
- ``ROWS``: one chunk of one probe's rows, in the order the rank recorded them
  (tick order): ticks, AAIs, values.
- ``DECLARED``: JSON of the probe declarations (units, labels, plot modes) so far.
- ``MARK``: "every row of a tick below T is in the frames before this one". The
  runner writes marks at tick boundaries (``StagingSink.mark``); the sink's
  ``close`` writes the final mark ``ALL``. Rows after the last mark are ignored.

So a run folder left by a killed job can always be finalized up to the last
tick that every rank had marked (``runtime.finalize.recover``).

A write that fails (a full disk, a quota) does not raise inside the
simulation: the sink cuts the file back to its last mark, remembers the
problem in ``error`` and ignores later writes; the runner then stops the run.
Each sink holds a little disk space back (``.staging-rank<r>.reserve``) and
gives it up at that moment, so that the results of the ticks staged so far
can still be written.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from bisect import bisect_right
from pathlib import Path
from typing import Any

import numpy as np

from .storage import storage_message

ALL = (1 << 63) - 1  # the mark of a finished file: every tick is complete
_MAGIC = b"PDS1"
_HEAD = struct.Struct("<4sB3xIIqqqI")  # magic, kind, name length, width, rows, first, last, crc
HEADER, ROWS, DECLARED, MARK = 1, 2, 3, 4
_PIECE = 1 << 20  # bytes read at once when checking a frame
RESERVE_MAX = 16 << 20  # space held back per rank, for the results if the disk fills up
RESERVE_SHARE = 8  # ... at most 1/8 of the free space, shared by the ranks


def _frame(kind: int, name: bytes, width: int, n: int, first: int, last: int, parts) -> bytes:
    crc = zlib.crc32(_HEAD.pack(_MAGIC, kind, len(name), width, n, first, last, 0))
    for part in (name, *parts):
        crc = zlib.crc32(part, crc)
    head = _HEAD.pack(_MAGIC, kind, len(name), width, n, first, last, crc)
    return b"".join([head, name, *parts])


class StagingSink:
    """Appends frames to this rank's staging file; never raises for a failed write."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._reserve = reserve_path(path)
        self.error = ""  # set on the first failed write: one line for the user
        self._fd = -1
        self._size = 0  # bytes written
        self._marked = 0  # file size at the last mark: what a failure cuts back to
        self._declared: dict[str, Any] = {}
        self.rows: dict[str, int] = {}  # rows written per probe (checkpoints count them)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            self.error = storage_message(exc, path)
            return
        text = json.dumps(header, default=str).encode()
        self._append(_frame(HEADER, b"", 0, len(text), 0, 0, [text]))
        self._marked = self._size
        _hold_reserve(self._reserve, int(header.get("ranks", 1)))

    def write(self, name: str, ticks: np.ndarray, aais: np.ndarray, values: np.ndarray) -> None:
        width = values.shape[1] if values.ndim == 2 else 0
        n = ticks.shape[0]
        if n == 0:
            return
        self.rows[name] = self.rows.get(name, 0) + n
        parts = [name.encode(), ticks.astype("<i8").tobytes(), aais.astype("<i8").tobytes()]
        parts.append(np.ascontiguousarray(values, dtype="<f8").tobytes())
        self._append(_frame(ROWS, parts[0], width, n, int(ticks[0]), int(ticks[-1]), parts[1:]))

    def mark(self, tick: int, declarations: dict[str, Any] | None = None) -> None:
        """Every row of a tick below ``tick`` has been written (the caller flushed)."""
        if declarations and declarations != self._declared:
            self._declared = dict(declarations)
            text = json.dumps(
                {k: [d.unit, list(d.labels), d.plot] for k, d in declarations.items()}
            )
            self._append(_frame(DECLARED, b"", 0, len(text.encode()), 0, 0, [text.encode()]))
        self._append(_frame(MARK, b"", 0, 0, tick, tick, []))
        if not self.error:
            self._marked = self._size

    def sync(self) -> None:
        """Make what was written so far durable (checkpoints rely on the rows before them)."""
        if self._fd >= 0 and not self.error:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self.error = storage_message(exc, self.path)

    def close(self, declarations: dict[str, Any] | None = None) -> None:
        """The final mark: the file holds every row the rank recorded."""
        if self._fd < 0:
            return
        self.mark(ALL, declarations)
        self.abandon()

    def abandon(self) -> None:
        """Close the file as it stands (after a crash of the run: no final mark)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._reserve.unlink(missing_ok=True)

    def _append(self, data: bytes) -> None:
        if self.error or self._fd < 0:
            return
        view = memoryview(data)
        try:
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
                self._size += done
        except OSError as exc:
            self.error = storage_message(exc, self.path)
            self._reserve.unlink(missing_ok=True)  # room to write the results
            try:  # keep the file a run of complete frames, and give back what we can
                os.ftruncate(self._fd, self._marked)
            except OSError:
                pass
            self._size = self._marked


CARRIED_PREFIX = ".carried-"  # rows a resumed run carries over from before its checkpoint


def carried_files(run_dir: Path) -> list[Path]:
    """The files of rows that ``pydiasca resume`` carried over, in order (finalize reads them
    with the staging files: ``.carried-<i>.bin`` goes to rank ``i % ranks``)."""
    found = run_dir.glob(f"{CARRIED_PREFIX}*.bin")
    return sorted(found, key=lambda p: int(p.stem.removeprefix(CARRIED_PREFIX) or 0))


def carried_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"{CARRIED_PREFIX}{index}.bin"


def reserve_path(staging: Path) -> Path:
    """The space a rank holds back for writing the results if the disk fills up."""
    return staging.with_suffix(".reserve")


def _hold_reserve(path: Path, ranks: int) -> None:
    """Allocate a share of the free space (at most ``RESERVE_MAX``); nothing if it fails."""
    try:
        st = os.statvfs(path.parent)
        size = min(RESERVE_MAX, st.f_bavail * st.f_frsize // (RESERVE_SHARE * max(ranks, 1)))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except (OSError, AttributeError):  # no fallocate here (some network file systems)
        path.unlink(missing_ok=True)


class _Column:
    """One column of one staged probe, read from the file a slice at a time."""

    def __init__(self, staged: Staged, probe: StagedProbe, key: str) -> None:
        self._staged, self._probe, self._key = staged, probe, key
        width = probe.width if key == "value" else 0
        self.shape = (probe.n, width) if width else (probe.n,)
        self.ndim = len(self.shape)

    def __getitem__(self, index: slice | int) -> np.ndarray:
        if isinstance(index, int):
            i = index % self.shape[0]
            return self._probe.read(self._key, i, i + 1)[0]
        start, stop, _ = index.indices(self.shape[0])
        return self._probe.read(self._key, start, max(start, stop))


class StagedProbe:
    """A probe's frames in one staging file: ``group["tick"]`` etc. act as columns."""

    def __init__(self, staged: Staged, name: str, width: int) -> None:
        self.staged, self.name, self.width = staged, name, width
        self.frames: list[tuple[int, int, int, int]] = []  # (payload offset, rows, first, last)
        self.starts: list[int] = []  # first row index of each frame
        self.n = 0

    def add(self, offset: int, n: int, first: int, last: int) -> None:
        self.starts.append(self.n)
        self.frames.append((offset, n, first, last))
        self.n += n

    def limit(self, tick: int) -> None:
        """Keep only the rows of ticks below ``tick`` (rows are in tick order)."""
        kept = []
        for offset, n, first, last in self.frames:
            if first >= tick:
                break
            if last >= tick:
                ticks = self.staged.read_array(offset, n, np.int64)
                n = int(np.searchsorted(ticks, tick, "left"))
            if n:
                kept.append((offset, n, first, last))
        self.frames, self.starts, self.n = [], [], 0
        for frame in kept:
            self.add(*frame)

    def __getitem__(self, key: str) -> _Column:
        return _Column(self.staged, self, key)

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of one column, read into one array."""
        cells = max(self.width, 1) if key == "value" else 1
        dtype = np.dtype(np.float64 if key == "value" else np.int64).newbyteorder("<")
        column = {"tick": 0, "aai": 1, "value": 2}[key]
        out = np.empty(max(stop - start, 0) * cells, dtype=dtype)
        at, i = 0, max(bisect_right(self.starts, start) - 1, 0)
        while start < stop and i < len(self.frames):
            offset, n, _, _ = self.frames[i]
            full = self.staged.frame_rows[offset]  # the frame's own rows place its columns
            lo, hi = start - self.starts[i], min(stop - self.starts[i], n)
            where = offset + (column * full + lo * cells) * 8
            self.staged.read_into(where, out[at : at + (hi - lo) * cells])
            at += (hi - lo) * cells
            start = self.starts[i] + hi
            i += 1
        return out.reshape(-1, self.width) if key == "value" and self.width else out


class Staged(dict):
    """A staging file read back: ``{probe name: StagedProbe}`` up to its last mark.

    ``header`` is the header frame's JSON, ``complete_before`` the last mark
    (``ALL`` for a file closed normally, 0 when none), ``torn`` whether a
    damaged or partial frame ended the file early.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.header: dict[str, Any] = {}
        self.declarations: dict[str, tuple[str, list[str], str]] = {}
        self.complete_before = 0
        self.torn = False
        self.frame_rows: dict[int, int] = {}
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._scan(os.fstat(self._file.fileno()).st_size)

    def _scan(self, size: int) -> None:
        pending: list[tuple[str, int, int, int, int, int]] = []  # rows frames since the mark
        declared: dict[str, Any] = {}
        at = 0
        f = self._file
        while at + _HEAD.size <= size:
            f.seek(at)
            head = f.read(_HEAD.size)
            magic, kind, name_len, width, n, first, last, crc = _HEAD.unpack(head)
            cells = 2 + max(width, 1) if kind == ROWS else 0
            body = name_len + (n * cells * 8 if kind == ROWS else n)
            if magic != _MAGIC or at + _HEAD.size + body > size:
                break
            expected = zlib.crc32(head[:-4] + b"\0\0\0\0")
            payload = f.read(min(body, _PIECE)) if kind == ROWS else f.read(body)
            expected = zlib.crc32(payload, expected)
            for done in range(_PIECE, body, _PIECE):  # a big frame: checked a piece at a time
                expected = zlib.crc32(f.read(min(_PIECE, body - done)), expected)
            if expected != crc:
                break
            if kind == HEADER:
                self.header = json.loads(payload)
            elif kind == DECLARED:
                declared = json.loads(payload)
            elif kind == ROWS:
                name = payload[:name_len].decode()
                start = at + _HEAD.size + name_len
                pending.append((name, width, start, n, first, last))
            elif kind == MARK:
                for name, w, start, rows, lo, hi in pending:
                    probe = self.get(name)
                    if probe is None:
                        probe = self[name] = StagedProbe(self, name, w)
                    probe.add(start, rows, lo, hi)
                    self.frame_rows[start] = rows
                pending = []
                self.complete_before = first
                self.declarations = {
                    k: (v[0], list(v[1]), v[2] if len(v) > 2 else "") for k, v in declared.items()
                }
            at += _HEAD.size + body
        self.torn = at != size

    def limit(self, tick: int) -> None:
        """Keep only the rows of ticks below ``tick``, in every probe."""
        if tick == ALL:
            return
        for probe in self.values():
            probe.limit(tick)

    def read_array(self, offset: int, count: int, dtype) -> np.ndarray:
        out = np.empty(count, dtype=np.dtype(dtype).newbyteorder("<"))
        self.read_into(offset, out)
        return out

    def read_into(self, offset: int, out: np.ndarray) -> None:
        self._file.seek(offset)
        if self._file.readinto(out) != out.nbytes:
            raise OSError(f"{self.path}: shorter than its frames say; the file changed")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_header(path: Path) -> dict[str, Any]:
    """Just the header frame of a staging file ({} when it is unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                return {}
            magic, kind, name_len, _, n, _, _, crc = _HEAD.unpack(head)
            payload = f.read(name_len + n)
    except OSError:
        return {}
    good = magic == _MAGIC and kind == HEADER and len(payload) == name_len + n
    if not good or zlib.crc32(payload, zlib.crc32(head[:-4] + b"\0\0\0\0")) != crc:
        return {}
    return json.loads(payload)


__all__ = [
    "ALL",
    "Staged",
    "StagedProbe",
    "StagingSink",
    "carried_files",
    "carried_path",
    "read_header",
]
