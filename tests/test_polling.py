"""How a rank waits for its peers: spin first, then yield the core, then nap."""

from __future__ import annotations

import re
import time

import pytest
from conftest import ROOT

from runtime import polling


def test_a_wait_spins_then_yields_then_naps(monkeypatch):
    now = [100.0]
    calls: list[str] = []
    monkeypatch.setattr(polling.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(polling, "_yield", lambda: calls.append("yield"))
    monkeypatch.setattr(polling.time, "sleep", lambda s: calls.append(f"sleep {s:g}"))
    backoff = polling.Backoff(deadline=float("inf"))
    for _ in range(polling._SPINS):
        backoff.pause()
    assert calls == []  # spinning: the answer may be microseconds away
    backoff.pause()
    backoff.pause()
    assert calls == ["yield", "yield"]  # a rank sharing the core runs now
    now[0] += polling._YIELD_S * 1.01
    backoff.pause()
    assert calls[-1] == f"sleep {polling._NAP_S:g}"  # a long wait burns no core
    backoff.reset()  # progress: wait afresh
    calls.clear()
    backoff.pause()
    assert calls == []


def test_a_wait_gives_up_at_its_deadline():
    backoff = polling.Backoff(deadline=0.0)  # long past
    assert all(backoff.pause() for _ in range(polling._SPINS))  # spinning costs no clock
    assert not backoff.pause()
    start = time.monotonic()
    with pytest.raises(polling.Silence, match="^rank 3 went quiet$"):
        polling.wait_until(lambda: False, start + 0.05, "rank 3 went quiet")
    assert time.monotonic() - start < 5
    polling.wait_until(lambda: True, 0.0, "never said")  # ready: no deadline applies


# Blocking MPI calls wait forever for a silent rank. Only the modules below touch
# MPI; in them every wait is non-blocking and polled with a deadline. (A receive
# follows a probe that found its message, so it does not wait.)
_MPI_MODULES = {"comm.py", "launch.py", "mpi_halo.py", "mpi_transport.py"}
_BLOCKING = re.compile(
    r"\w*(?:comm|mpi|MPI\.Request)\.(Barrier|Bcast|bcast|Gatherv?|gather|Allgatherv?|allgather"
    r"|Allreduce|allreduce|Reduce|reduce|Alltoallv?|alltoall|Scatterv?|scatter|Send|send|Ssend"
    r"|Sendrecv|sendrecv|Probe|probe|Wait|Waitall|Waitany|wait)\("
)


def test_no_wait_in_the_runtime_lacks_a_deadline():
    runtime = ROOT / "runtime"
    importing = {
        str(p.relative_to(runtime))
        for p in runtime.rglob("*.py")
        if re.search(r"^\s*from mpi4py import|^\s*import mpi4py", p.read_text(), re.M)
    }
    assert importing <= _MPI_MODULES, importing - _MPI_MODULES
    for name in sorted(_MPI_MODULES):
        found = _BLOCKING.findall((runtime / name).read_text())
        assert not found, f"runtime/{name} blocks in MPI: {found}"
