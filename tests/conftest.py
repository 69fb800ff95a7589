"""Shared helpers: run actors on a bare kernel and read back their probes."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The optional C cores of the engine (setup.py). PYDIASCA_TEST_PURE_PYTHON=1 in the
# environment blocks them, so that the tests run on their Python references (test_pure.py).
C_CORES = ("engine._stream", "engine._mail", "engine._actor", "engine._packing")
PURE_PYTHON = "PYDIASCA_TEST_PURE_PYTHON"
if os.environ.get(PURE_PYTHON):
    for _name in C_CORES:
        sys.modules[_name] = None  # type: ignore[assignment] - makes the import fail

# A suite started in the background (nohup, `cmd &` in a script) inherits SIGINT
# ignored, and so would every process it starts: the tests of Ctrl-C need it live.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from engine import Kernel, MemorySink, ProbeStore  # noqa: E402
from runtime.digest import canonical_series, digest_of  # noqa: E402


def series(kernel: Kernel, name: str) -> list[tuple[int, int, object]]:
    """A probe's rows as (tick, aai, value) in canonical order; vectors become tuples."""
    chunks = kernel.probes.sink.chunks.get(name, [])
    if not chunks:
        return []
    ticks, aais, values = canonical_series(chunks)
    return [
        (int(t), int(a), tuple(v.tolist()) if values.ndim == 2 else v.item())
        for t, a, v in zip(ticks, aais, values, strict=True)
    ]


def kernel_digest(kernel: Kernel) -> str:
    chunks = kernel.probes.sink.chunks
    return digest_of({name: canonical_series(parts) for name, parts in chunks.items()})


@pytest.fixture
def make_kernel():
    def make(**kwargs) -> Kernel:
        kwargs.setdefault("probes", ProbeStore(MemorySink()))
        return Kernel(**kwargs)

    return make
