"""A checkpoint part on disk: pickled records, their NumPy arrays out of band, one file.

The file is ``MAGIC`` and then one frame per record. A frame is a header (the
pickle's length, the number of buffers and each one's length, as little-endian
64-bit integers), the record pickled with protocol 5, and the buffers that
pickle handed out of band (the records' NumPy arrays), each padded to 8 bytes
so that arrays come back aligned. ``write`` pickles each record in the calling
thread while one thread hashes (SHA-256) the previous ones and another writes
them: hashing and writing release the GIL, so they overlap with the pickling
and with each other (a large array last, a population's field, is hashed while
it is written).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import queue
import struct
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAGIC = b"pydiasca-part-2\n"
_PROTOCOL = 5
_ALIGN = 8
_PAD = bytes(_ALIGN)
_BATCH = 8 << 20  # bytes handed to one writev


class WriteError(Exception):
    """Writing the part failed; ``__cause__`` is the OSError."""


def _padded(n: int) -> int:
    return -n % _ALIGN


def _frame(record: Any) -> list:
    buffers: list = []
    data = pickle.dumps(record, protocol=_PROTOCOL, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    head = struct.pack(f"<QQ{len(raws)}Q", len(data), len(raws), *(r.nbytes for r in raws))
    pieces = [head, data, _PAD[: _padded(len(data))]]
    for raw in raws:
        pieces += (raw, _PAD[: _padded(raw.nbytes)])
    return pieces


class _Hasher(threading.Thread):
    """Hashes the frames it is given, in order."""

    def __init__(self) -> None:
        super().__init__(name="checkpoint-hasher", daemon=True)
        self.digest = hashlib.sha256()
        self.frames: queue.Queue = queue.Queue(maxsize=4)

    def run(self) -> None:
        update = self.digest.update
        while (pieces := self.frames.get()) is not None:
            for piece in pieces:
                update(piece)


class _Writer(threading.Thread):
    """Writes the frames it is given, in order, with writev."""

    def __init__(self, fd: int) -> None:
        super().__init__(name="checkpoint-writer", daemon=True)
        self.fd, self.size = fd, 0
        self.frames: queue.Queue = queue.Queue(maxsize=4)
        self.error: OSError | None = None

    def run(self) -> None:
        while (pieces := self.frames.get()) is not None:
            if self.error is None:
                try:
                    self._write(pieces)
                except OSError as exc:
                    self.error = exc

    def _write(self, pieces: list) -> None:
        batch: list = []
        held = 0
        for piece in pieces:
            if not len(piece):
                continue
            batch.append(piece)
            held += len(piece)
            if held >= _BATCH or len(batch) >= 512:
                self._writev(batch)
                batch, held = [], 0
        self._writev(batch)

    def _writev(self, batch: list) -> None:
        views = [memoryview(p).cast("B") for p in batch]
        while views:
            done = os.writev(self.fd, views)
            self.size += done
            while views and done >= len(views[0]):
                done -= len(views[0])
                views.pop(0)
            if views and done:
                views[0] = views[0][done:]


def write(path: Path, records: Iterable[Any]) -> tuple[str, int]:
    """Write ``records`` to ``path`` atomically (temporary file, fsync, rename).

    Returns the file's SHA-256 and size. Raises what pickling a record raises
    (nothing is left on disk then), or WriteError when the disk refuses.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise WriteError(str(exc)) from exc
    writer, hasher = _Writer(fd), _Hasher()
    threads = (writer, hasher)
    for thread in threads:
        thread.frames.put([MAGIC])
        thread.start()
    done = False
    try:
        for record in records:  # pickling errors go to the caller
            frame = _frame(record)
            writer.frames.put(frame)
            hasher.frames.put(frame)
            if writer.error is not None:
                break
        for thread in threads:
            thread.frames.put(None)
            thread.join()
        try:
            if writer.error is not None:
                raise writer.error
            os.fsync(fd)
        except OSError as exc:
            raise WriteError(str(exc)) from exc
        done = True
    finally:
        for thread in threads:
            if thread.is_alive():
                thread.frames.put(None)
                thread.join()
        os.close(fd)
        if not done:
            tmp.unlink(missing_ok=True)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(str(exc)) from exc
    return hasher.digest.hexdigest(), writer.size


def read(path: Path) -> list[Any]:
    """Every record of the part at ``path``, in order (unpickling runs code)."""
    size = path.stat().st_size
    data = bytearray(size)
    view = memoryview(data)
    with open(path, "rb", buffering=0) as f:
        got = 0
        while got < size and (n := f.readinto(view[got:])):
            got += n
    if got != size or bytes(view[: len(MAGIC)]) != MAGIC:
        raise ValueError("not a pydiasca checkpoint part of this format")
    records, at = [], len(MAGIC)
    while at < size:
        length, count = struct.unpack_from("<QQ", data, at)
        sizes = struct.unpack_from(f"<{count}Q", data, at + 16)
        at += 16 + 8 * count
        pickled = view[at : at + length]
        at += length + _padded(length)
        buffers = []
        for n in sizes:
            buffers.append(view[at : at + n])
            at += n + _padded(n)
        if at > size:
            raise ValueError("truncated")
        records.append(pickle.loads(pickled, buffers=buffers))
    return records
