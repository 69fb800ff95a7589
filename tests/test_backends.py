"""Dense backends: cpu, threads and cuda give the same digest, on 1 and 2 ranks.

``cuda`` runs under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny
grids, so the suite needs no GPU; where a GPU is present, the real-GPU test
runs the shipped small scenarios on it too.
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
from dense_support import MPIEXEC, run_digest, run_env, run_pydiasca

from engine import Kernel, MemorySink, ProbeStore
from engine.dense import DensePopulation, rng
from engine.dense.backends import cell_kernel, default_backend
from models.heat import HeatPlate
from runtime import open_run

HEAT = """
[simulation]
name = "heat-tiny"
stop_tick = 10
seed = 3

[[populations]]
name = "plate"
class = "models.heat:HeatPlate"
[populations.args]
rows = 20
columns = 24
alpha = 0.2
boundary = "fixed"
wall = 1.5
initial = 15.0
regions = [2, 2]

[[actors]]
class = "models.heat:HeatSource"
args = { row = 3, column = 4, size = 3, power = 2.0 }

[[actors]]
class = "models.heat:HeatSource"
args = { row = 10, column = 11, size = 1, power = 5.0, target = 40.0 }
"""

EPIDEMIC = """
[simulation]
name = "epidemic-tiny"
stop_tick = 10
seed = 11

[[populations]]
name = "epidemic"
class = "models.epidemic:EpidemicGrid"
[populations.args]
rows = 20
columns = 24
beta = 0.3
sigma = 0.3
gamma = 0.1
initial_infected = 0.05
regions = [2, 2]

[[actors]]
id = "authority"
class = "models.epidemic:HealthAuthority"
count = 4
args = { first = "@authority-0", impose_above = 0.03, lift_below = 0.01, contact = 0.25 }
"""

SCENARIOS = {"heat": HEAT, "epidemic": EPIDEMIC}


def _env(simulate: bool) -> dict:
    return run_env(NUMBA_ENABLE_CUDASIM="1" if simulate else None)


def pydiasca(scenario: Path, out: Path, ranks: int, *extra: str, simulate: bool = True):
    return run_pydiasca(scenario, out, ranks, *extra, env=_env(simulate))


def digest(scenario: Path, out: Path, ranks: int, *extra: str, simulate: bool = True) -> str:
    return run_digest(scenario, out, ranks, *extra, env=_env(simulate))


@cache
def scenario_file(model: str, folder: Path) -> Path:
    path = folder / f"{model}-tiny.toml"
    path.write_text(SCENARIOS[model])
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backends")


@pytest.fixture(scope="module")
def reference(folder):
    """The cpu digest of each tiny scenario on one rank."""
    return {
        m: digest(scenario_file(m, folder), folder / f"ref-{m}", 1, "--backend", "cpu")
        for m in SCENARIOS
    }


@pytest.mark.parametrize("model", list(SCENARIOS))
@pytest.mark.parametrize("backend", ["threads", "cuda"])
def test_every_backend_gives_the_cpu_digest(folder, reference, model, backend):
    path = scenario_file(model, folder)
    got = digest(path, folder / f"{model}-{backend}", 1, "--backend", backend)
    assert got == reference[model]


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
@pytest.mark.parametrize("model", list(SCENARIOS))
@pytest.mark.parametrize("backend", ["cpu", "threads", "cuda"])
def test_two_ranks_give_the_one_rank_digest(folder, reference, model, backend):
    path = scenario_file(model, folder)
    run = folder / f"{model}-{backend}-2"
    got = digest(path, run, 2, "--backend", backend)
    assert got == reference[model]
    population = "plate" if model == "heat" else model
    assert _attrs(run)["backends"] == f"{population}={backend}"  # gathered from both ranks


@pytest.mark.parametrize(
    "scenario, expected", [("heat-small", "f406f6e0"), ("epidemic-small", "3bd2e425")]
)
def test_shipped_small_scenarios_keep_their_digest_on_threads(tmp_path, scenario, expected):
    path = ROOT / "scenarios" / f"{scenario}.toml"
    got = digest(path, tmp_path / "run", 1, "--set", "populations.backend=threads")
    assert got.startswith(expected)


# --- digest families ---------------------------------------------------------------------


def _attrs(run: Path) -> dict:
    with h5py.File(run / "results.h5", "r") as f:
        return {k: str(f.attrs[k]) for k in ("backends", "digest_family", "digest")}


def test_a_portable_run_records_its_backends_and_no_family_line(folder, reference):
    attrs = _attrs(folder / "ref-heat")  # the reference run: --backend cpu
    assert attrs["backends"] == "plate=cpu"
    assert attrs["digest_family"] == "portable"
    assert attrs["digest"] == reference["heat"]


@pytest.mark.parametrize("backend, family", [("threads", "cpu"), ("cuda", "cuda")])
def test_a_per_backend_population_records_its_digest_family(folder, backend, family):
    """A scenario that says its floats may differ on the GPU: cpu and threads share a
    family (one compiled loop), cuda has its own; the summary says so above the digest."""
    path = folder / "heat-per-backend.toml"
    path.write_text(
        HEAT.replace(
            '"models.heat:HeatPlate"\n', '"models.heat:HeatPlate"\ndigest = "per-backend"\n'
        )
    )
    assert 'digest = "per-backend"' in path.read_text()
    run = folder / f"per-backend-{backend}"
    proc = pydiasca(path, run, 1, "--backend", backend)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-2].split() == [
        "digest",
        "family",
        f"plate={family}:",
        *"compare with runs of the same family only".split(),
    ]
    assert lines[-1].startswith("results digest: ")
    attrs = _attrs(run)
    assert attrs["backends"] == f"plate={backend}"
    assert attrs["digest_family"] == f"plate={family}"
    assert open_run(run).digest_family == f"plate={family}"


def test_a_digest_key_other_than_portable_or_per_backend_is_refused(folder):
    path = folder / "heat-bad-digest.toml"
    path.write_text(
        HEAT.replace('"models.heat:HeatPlate"\n', '"models.heat:HeatPlate"\ndigest = "exact"\n')
    )
    proc = pydiasca(path, folder / "bad-digest", 1)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "digest" in lines[0] and "portable, per-backend" in lines[0]
    assert not (folder / "bad-digest").exists()


# --- choosing ------------------------------------------------------------------------------


def test_the_default_is_threads_alone_on_a_node_and_cpu_when_ranks_share_it(monkeypatch):
    assert default_backend(1) == "threads"
    assert default_backend(4) == "cpu"
    for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    assert _plate()[1]._backend == "threads"
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    assert _plate()[1]._backend == "cpu"


def _plate(backend=None, cls=HeatPlate):
    k = Kernel(stop_tick=2, probes=ProbeStore(MemorySink()))
    return k, k.add_population(cls, "plate", None, {"rows": 8, "columns": 8}, backend=backend)


def test_add_population_takes_a_backend():
    assert _plate("cpu")[1]._backend == "cpu"
    assert _plate("threads")[1]._backend == "threads"


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'gpu'; use cpu, threads, cuda"):
        _plate("gpu")


@cell_kernel
def _double(src, dst, i, j, y, x, tick, tk):
    dst[0][i, j] = 2 * src[0][i, j]


def test_a_whole_block_kernel_runs_on_cpu_only():
    class Old(DensePopulation):
        fields = {"v": np.int64}
        shape = (4, 4)

        @staticmethod
        def kernel(src, dst, tick, key, block):
            dst[0][...] = src[0]

    with pytest.raises(ValueError, match="needs a cell kernel"):
        _plate("threads", Old)
    assert _plate("cpu", Old)[1]._backend == "cpu"


@pytest.mark.parametrize("backend", ["cpu", "threads"])
def test_a_cell_kernel_runs_and_aggregates(backend):
    class Doubling(DensePopulation):
        fields = {"v": np.int64}
        shape = (6, 10)
        kernel = _double

        def initialize(self, local):
            local.v[...] = 1

    k = Kernel(stop_tick=3, probes=ProbeStore(MemorySink()))
    pop = k.add_population(Doubling, "d", backend=backend)
    k.run()
    assert (pop.local.v == 8).all()
    assert pop._aggregates.pending[0][0] == 8 * 60  # the sum after tick 2


def test_the_scenario_key_and_the_set_override_choose(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(HEAT.replace('name = "plate"', 'name = "plate"\nbackend = "cpu"', 1))
    from runtime.scenario import load_scenario

    assert load_scenario(path).populations[0].backend == "cpu"
    over = load_scenario(path, ["populations.backend=threads"])
    assert over.populations[0].backend == "threads"
    bad = pydiasca(path, tmp_path / "bad", 1, "--backend", "gpu")
    assert bad.returncode == 2
    assert "expected one of cpu, threads, cuda" in bad.stderr
    assert "Traceback" not in bad.stderr


def _has_gpu() -> bool:
    code = "from numba import cuda; print(cuda.is_available())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(False), timeout=120
    )
    return out.stdout.strip() == "True"


def test_cuda_without_a_gpu_is_one_line_and_exit_2(folder):
    if _has_gpu():
        pytest.skip("this machine has a GPU")
    proc = pydiasca(
        scenario_file("heat", folder), folder / "nogpu", 1, "--backend", "cuda", simulate=False
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "backend 'cuda' needs" in lines[0]


@pytest.mark.parametrize(
    "scenario, expected", [("heat-small", "f406f6e0"), ("epidemic-small", "3bd2e425")]
)
def test_a_real_gpu_gives_the_cpu_digest(tmp_path, scenario, expected):
    if not _has_gpu():
        pytest.skip("no CUDA GPU here")
    path = ROOT / "scenarios" / f"{scenario}.toml"
    got = digest(path, tmp_path / "gpu", 1, "--backend", "cuda", simulate=False)
    assert got.startswith(expected)


@pytest.mark.parametrize("model", ["heat", "epidemic"])
def test_threads_on_every_block_row_give_the_cpu_partials(monkeypatch, model):
    """Tiny tiles normally run on one thread; here every block row is a parallel task."""
    from engine.dense import backends
    from models.epidemic import EpidemicGrid

    monkeypatch.setattr(backends, "_MIN_PARALLEL_CELLS", 0)
    cls = HeatPlate if model == "heat" else EpidemicGrid
    args = {"rows": 40, "columns": 36, "regions": [2, 2]}
    seen = {}
    for backend in ("cpu", "threads"):
        k = Kernel(stop_tick=6, seed=5, probes=ProbeStore(MemorySink()))
        pop = k.add_population(cls, "p", None, args, backend=backend)
        if model == "heat":
            pop.local.T[...] = np.arange(pop.local.T.size).reshape(pop.local.T.shape) % 17
        k.run()
        total, byreg, _ = pop._aggregates.pending
        fields = b"".join(v.tobytes() for v in pop.local.fields.values())
        seen[backend] = (total.tobytes(), byreg.tobytes(), fields)
    assert seen["cpu"] == seen["threads"]


@cell_kernel
def _mix(src, dst, i, j, y, x, tick, tk):
    t, n, c = src
    u = rng.uniform(rng.cell_key(tk, y * 1000 + x), 0)
    # Signed zeros: the min keeps the first of equal values, so it shows the order.
    dst[0][i, j] = -0.0 if u < 0.1 else 0.0 if u < 0.2 else abs(t[i, j] * 0.5 + t[i - 1, j]) + u
    dst[1][i, j] = n[i, j + 1] - np.int32(7 * u)
    dst[2][i, j] = np.uint8(4 * u) % 3 if c[i, j] != 3 else 3


class _Mixed(DensePopulation):
    """Three fields (float sums, int sums, counts) on blocks that cut the groups of rows."""

    fields = {"t": np.float64, "n": np.int32, "c": np.uint8}
    categories = {"c": 4}
    stencil = "von_neumann"
    kernel = _mix

    def __init__(self, rows: int, columns: int, block: tuple, regions: tuple) -> None:
        self.shape, self.block, self.regions = (rows, columns), block, regions

    def initialize(self, local):
        local.t[...] = local.uniform(0) * 100 - 50
        local.n[...] = (local.uniform(1) * 1000).astype(np.int32) - 500
        local.c[...] = (local.uniform(2) * 4).astype(np.uint8)


@pytest.mark.parametrize("backend", ["cpu", "threads"])
@pytest.mark.parametrize("rows, columns, block", [(37, 29, (5, 7)), (23, 41, (3, 4))])
def test_the_fused_aggregates_equal_a_separate_pass(monkeypatch, backend, rows, columns, block):
    """The loop's block partials, taken by groups of rows, are those of _numba's separate pass."""
    from engine.dense import backends

    monkeypatch.setattr(backends, "_MIN_PARALLEL_CELLS", 0)
    k = Kernel(stop_tick=1, seed=2, probes=ProbeStore(MemorySink()))
    pop = k.add_population(
        _Mixed,
        "m",
        None,
        {"rows": rows, "columns": columns, "block": block, "regions": (1, 1)},
        backend=backend,
    )
    for tick in range(3):
        fused = pop._run_kernel(tick, ())
        separate = pop._aggregates.partials(pop._nxt)
        assert fused.tobytes() == separate.tobytes()
        pop._cur, pop._nxt = pop._nxt, pop._cur
        pop._src, pop._dst = pop._dst, pop._src


def test_combine_takes_the_blocks_in_global_order_whoever_sent_them():
    """Partials arrive rank after rank; ``order`` makes the combination that of global order."""
    from engine.dense import _numba as nb

    gen = np.random.default_rng(5)
    nblocks, nregions = 60, 4
    kinds = np.array([nb.SUM, nb.MIN, nb.MAX, nb.SUM], np.int64)
    partials = (
        gen.standard_normal((nblocks, kinds.size)) * 10.0 ** gen.integers(-8, 9, nblocks)[:, None]
    )
    region = gen.integers(0, nregions, nblocks)
    total, byreg = nb.combine(partials, np.arange(nblocks), region, nregions, kinds)
    sent = gen.permutation(nblocks)  # row k of what arrived is global block sent[k]
    order = np.empty(nblocks, np.int64)
    order[sent] = np.arange(nblocks)
    total2, byreg2 = nb.combine(partials[sent], order, region, nregions, kinds)
    assert total2.tobytes() == total.tobytes() and byreg2.tobytes() == byreg.tobytes()
    # Read in arrival order instead, the regions get other blocks' values.
    _, wrong = nb.combine(partials[sent], np.arange(nblocks), region, nregions, kinds)
    assert wrong.tobytes() != byreg.tobytes()
