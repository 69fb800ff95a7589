"""Dense populations under real mpiexec: digests on 1 to 4 ranks and several process grids.

Each case is one ``mpiexec`` job (at most 4 ranks, small scenarios, no plots)
whose ``results digest:`` line must equal the single-process run's. Halos,
ghost agents, posts, watched cells and aggregates all cross ranks here.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT
from dense_support import MPIEXEC, run_digest, run_pydiasca

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")

EPIDEMIC = ROOT / "scenarios" / "epidemic-small.toml"
HEAT = ROOT / "scenarios" / "heat-small.toml"
CONTACTS = ROOT / "tests" / "data" / "contacts.toml"
_runs = iter(range(10**6))


def pydiasca(scenario: Path, out: Path, ranks: int, *extra: str) -> str:
    return run_digest(scenario, out, ranks, *extra, timeout=180)


@cache
def reference(scenario: Path, tmp: Path) -> str:
    return pydiasca(scenario, tmp / f"ref-{scenario.stem}", 1)


def grid(rows: int, columns: int) -> tuple[str, ...]:
    return ("--set", f"deployment.process_grid=[{rows}, {columns}]")


CASES = [
    (EPIDEMIC, 2, ()),
    (EPIDEMIC, 3, ()),
    (EPIDEMIC, 4, grid(2, 2)),
    (EPIDEMIC, 4, grid(1, 4)),
    (HEAT, 2, grid(1, 2)),
    (HEAT, 3, grid(3, 1)),
    (HEAT, 4, grid(4, 1)),
    (CONTACTS, 2, ()),
    (CONTACTS, 4, ()),
]


@pytest.mark.parametrize(
    "scenario, ranks, extra", CASES, ids=lambda v: getattr(v, "stem", None) or str(v)
)
def test_digest_is_that_of_one_process(scenario, ranks, extra, tmp_path_factory):
    ref = reference(scenario, tmp_path_factory.getbasetemp())
    out = tmp_path_factory.mktemp("dense") / f"run{next(_runs)}"
    assert pydiasca(scenario, out, ranks, *extra) == ref


def test_multi_rank_run_records_each_aggregate_once(tmp_path):
    pydiasca(EPIDEMIC, tmp_path / "r", 3)
    with h5py.File(tmp_path / "r" / "results.h5") as f:
        g = f["probes/epidemic.state.counts"]
        assert g["tick"][()].tolist() == list(range(80))  # one row per tick, not per rank
        assert set(g["aai"][()].tolist()) == {0}
        counts = g["value"][()]
        assert (counts.sum(axis=1) == 64 * 96).all()
        assert counts[-1, 3] > counts[0, 3]  # people recovered
        measures = f["probes/measures/value"][()]
        assert np.any(measures == 1)  # authorities imposed measures


def test_dense_benchmark_quick(tmp_path):
    """benchmarks/dense.py runs (tiny sizes, 1 and 2 ranks) and prints its table; no timing."""
    out = tmp_path / "dense.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dense.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in ("measured bandwidth", "ms/tick", "vs numpy", "2-rank x", "Targets", "threads"):
        assert text in proc.stdout, proc.stdout
    import json

    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["heat", "epidemic"]
    for r in rows:
        assert r["updates_per_s"] > 0 and r["numpy_ms"] > 0 and r["tick_ms_2_ranks"] > 0


def test_a_process_grid_that_does_not_fit_is_one_line_and_exit_2(tmp_path):
    proc = run_pydiasca(EPIDEMIC, tmp_path / "run", 2, *grid(3, 1), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {EPIDEMIC}: [[populations]] epidemic: process grid [3, 1] does not have 2 "
        f"ranks; give [rows, columns] whose product is the number of ranks\n"
    )
    assert not (tmp_path / "run").exists()
