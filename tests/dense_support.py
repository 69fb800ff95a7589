"""Test support for dense populations: several ranks in one process, on threads.

``ThreadTransport`` implements the whole ``engine.Transport`` seam (messages,
consensus, halo exchange, allgather) between kernels running on threads, so the
partition invariance of populations can be checked for many rank counts and
process grids in seconds. The real MPI path is checked by tests/test_dense_mpi.py
and tests/test_backends.py, through ``run_pydiasca`` and ``run_digest`` (a
``pydiasca run`` in a process of its own, under mpiexec for several ranks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from conftest import ROOT

from engine import Kernel, MemorySink, ProbeStore, Report
from runtime.digest import canonical_series, digest_of
from runtime.launch import find_mpiexec

MPIEXEC = find_mpiexec()
DIGEST = re.compile(r"^results digest: ([0-9a-f]{64})$", re.M)


def run_env(**changes: str | None) -> dict:
    """The environment of a ``pydiasca`` process: this tree on the path, ``changes``
    applied (None removes a name), no fixed hash seed (the digest must not need one)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONHASHSEED", None)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_pydiasca(
    scenario: Path, out: Path, ranks: int, *extra: str, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """``pydiasca run scenario --out out`` without plots, under mpiexec when ``ranks`` > 1."""
    cmd = [sys.executable, "-m", "runtime.cli", "run", str(scenario), "--out", str(out)]
    cmd += ["--set", "results.plots=false", *extra]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    env = run_env() if env is None else env
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def run_digest(scenario: Path, out: Path, ranks: int, *extra: str, **kwargs) -> str:
    """The one ``results digest:`` line of a successful ``run_pydiasca``."""
    proc = run_pydiasca(scenario, out, ranks, *extra, **kwargs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = DIGEST.findall(proc.stdout)
    assert len(found) == 1, proc.stdout
    return found[0]


class _Hub:
    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=120)
        self.slots: list = [None] * size

    def allgather(self, rank: int, obj):
        self.slots[rank] = obj
        self.barrier.wait()
        out = list(self.slots)
        self.barrier.wait()
        return out


class ThreadTransport:
    def __init__(self, hub: _Hub, rank: int) -> None:
        self.hub, self.rank, self.size = hub, rank, hub.size

    def exchange(self, outgoing):
        everyone = self.hub.allgather(self.rank, outgoing)
        return [env for sent in everyone for env in sent.get(self.rank, [])]

    def agree(self, report):
        return Report.merge(self.hub.allgather(self.rank, report))

    def halo_exchange(self, sends, recvs):
        mine = {(peer, tag): np.array(buf, copy=True) for peer, tag, buf in sends}
        everyone = self.hub.allgather(self.rank, mine)
        for peer, tag, buf in recvs:
            np.copyto(buf.reshape(-1), everyone[peer][(self.rank, tag)].reshape(-1))

    def allgather_arrays(self, array):
        return [a.reshape(-1) for a in self.hub.allgather(self.rank, np.array(array, copy=True))]


def run_ranks(size: int, build: Callable[[Kernel], None], **kernel_args) -> list[Kernel]:
    """Run ``size`` kernels on threads; ``build(kernel)`` declares actors and populations."""
    hub = _Hub(size)
    kernels = [
        Kernel(transport=ThreadTransport(hub, r), probes=ProbeStore(MemorySink()), **kernel_args)
        for r in range(size)
    ]
    errors: list[BaseException] = []

    def go(k: Kernel) -> None:
        try:
            build(k)
            k.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)
            hub.barrier.abort()

    threads = [threading.Thread(target=go, args=(k,)) for k in kernels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return kernels


def digest(kernels: list[Kernel]) -> str:
    """The results digest over the probes of every rank, as a run would compute it."""
    parts: dict[str, list] = {}
    for k in kernels:
        for name, chunks in k.probes.sink.chunks.items():
            parts.setdefault(name, []).extend(chunks)
    return digest_of({name: canonical_series(p) for name, p in parts.items()})


def probe(kernels: list[Kernel], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [c for k in kernels for c in k.probes.sink.chunks.get(name, [])]
    return canonical_series(parts)


def global_field(kernels: list[Kernel], population: str, field: str) -> np.ndarray:
    """A field's current state assembled from every rank's block."""
    pops = [k.population(population) for k in kernels]
    local = pops[0].local
    out = np.zeros(local.gshape, dtype=pops[0]._dtypes[field])
    for pop in pops:
        loc = pop.local
        box = tuple(slice(o, o + n) for o, n in zip(loc.origin, loc.shape, strict=True))
        out[box] = getattr(loc, field)
    return out
