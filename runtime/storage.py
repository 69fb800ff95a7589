"""Writing a run's files so that a full disk is a clean failure, never a crash.

Every file a run writes goes through here, or through ``runtime.staging``:

- HDF5 files (``GuardedH5``) are written by h5py through a Python file object
  whose writes never fail as far as HDF5 can tell. HDF5 (2.0) crashes the
  process when it closes a file after a failed write, so a refused write is
  kept in memory (reads see it, so HDF5 stays consistent), the error is
  remembered, and ``close`` raises ``StorageError``. Writers check ``failed``
  between steps and stop early, so little is ever held in memory.
- Text files (``write_text``) and the run log (``SafeFileHandler``) turn
  ``OSError`` into ``StorageError`` or a remembered error.

``StorageError`` carries one line for the user: ``no space left on device
while writing <path>``.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from pathlib import Path

import h5py


class StorageError(Exception):
    """A file of the run could not be written; str() is the one line for the user."""


def storage_message(exc: OSError, path: Path | str) -> str:
    """``no space left on device while writing <path>``, or the like for other errors."""
    what = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
    }.get(exc.errno or 0, (exc.strerror or str(exc)).lower())
    return f"{what} while writing {path}"


class _GuardedIO(io.RawIOBase):
    """A file for h5py whose writes always succeed; those the disk refuses are kept here."""

    def __init__(self, path: Path, mode: str) -> None:
        super().__init__()
        self._f = open(path, "w+b" if mode == "w" else "r+b", buffering=0)  # noqa: SIM115
        self._pos = 0
        self._end = os.fstat(self._f.fileno()).st_size
        self._lost: dict[int, bytes] = {}  # offset -> bytes the disk refused, in write order
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._end}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._end - self._pos))
        self._f.seek(self._pos)
        got = 0
        while got < n:
            part = self._f.readinto(view[got:n])
            if not part:
                break
            got += part
        view[got:n] = bytes(n - got)
        for offset, data in self._lost.items():
            lo, hi = max(offset, self._pos), min(offset + len(data), self._pos + n)
            if lo < hi:
                view[lo - self._pos : hi - self._pos] = data[lo - offset : hi - offset]
        self._pos += n
        return n

    def write(self, buffer) -> int:  # type: ignore[override]
        data = memoryview(buffer).cast("B")
        if self.error is None:
            try:
                self._f.seek(self._pos)
                view = data
                while view:
                    view = view[self._f.write(view) :]
            except OSError as exc:
                self.error = exc
        if self.error is not None:
            self._lost[self._pos] = bytes(data)
        self._pos += len(data)
        self._end = max(self._end, self._pos)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                self._f.truncate(size)
            except OSError as exc:
                self.error = exc
        self._end = size
        return size

    def flush(self) -> None:
        return None  # unbuffered: every write has reached the file, or ``_lost``

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as exc:
            self.error = self.error or exc
        super().close()


class GuardedH5:
    """An HDF5 file being written (``.file``); ``close`` raises ``StorageError`` if the
    disk refused any of it, after deleting a file it created."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        self.path, self._mode = Path(path), mode
        try:
            self._io = _GuardedIO(self.path, mode)
        except OSError as exc:
            raise StorageError(storage_message(exc, path)) from None
        self.file = h5py.File(self._io, mode)

    @property
    def failed(self) -> bool:
        return self._io.error is not None

    def check(self) -> None:
        """Stop a writer early: raise ``StorageError`` (closing the file) once a write failed."""
        if self.failed:
            self.close()

    def close(self) -> None:
        if self.file:
            self.file.close()
        if not self._io.closed:
            self._io.close()
        if self._io.error is not None:
            if self._mode == "w":
                self.path.unlink(missing_ok=True)
            raise StorageError(storage_message(self._io.error, self.path))

    def __enter__(self) -> h5py.File:
        return self.file

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close()
        except StorageError:
            pass  # the exception on its way out says more


def write_text(path: Path, text: str) -> None:
    """Write a small text file, or raise ``StorageError`` (leaving no partial file)."""
    try:
        path.write_text(text)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StorageError(storage_message(exc, path)) from None


class SafeFileHandler(logging.FileHandler):
    """``run.log``: a write that fails is remembered in ``error``, not printed as a traceback,
    and the log stops there."""

    error = ""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if not self.error:
            self.error = f"{self.baseFilename}: the log stopped here: cannot write"
        self.setLevel(logging.CRITICAL + 1)

    def close(self) -> None:
        try:
            super().close()
        except OSError:
            self.error = self.error or "cannot write the run log"


__all__ = ["GuardedH5", "SafeFileHandler", "StorageError", "storage_message", "write_text"]
