"""Dense populations: kernels against NumPy references, partition invariance, coupling.

Multi-rank runs here use tests/dense_support.py (ranks on threads, the whole
Transport seam in memory); tests/test_dense_mpi.py runs real mpiexec jobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dense_support import digest, global_field, probe, run_ranks
from numba import njit

from engine import Actor, DensePopulation, Kernel, MemorySink, ProbeStore
from engine.dense import partition, rng
from engine.dense.partition import default_block
from models.epidemic import EpidemicGrid, HealthAuthority, Hospital
from models.epidemic.model import infection_table
from models.heat import HeatPlate, HeatSource
from models.heat.model import diffuse_numpy

M1, M2, G = (
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
    np.uint64(0x9E3779B97F4A7C15),
)


# --- the counter-based generator, vectorised in NumPy -----------------------------------


def np_mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * M1
    z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


def np_uniform(key: int, tick: int, index: np.ndarray, n: int) -> np.ndarray:
    tk = np.uint64(rng.tick_key(key, tick))
    ck = np_mix64(tk + (index.astype(np.uint64) + np.uint64(1)) * G)
    bits = np_mix64(ck + np.uint64((n + 1) * int(G) % 2**64))
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def kernel(**kwargs) -> Kernel:
    return Kernel(probes=ProbeStore(MemorySink()), **kwargs)


def state(k: Kernel, pop: str, field: str) -> np.ndarray:
    return global_field([k], pop, field).copy()


def pad(a: np.ndarray, h: int, periodic: bool, fill: float = 0) -> np.ndarray:
    if periodic:
        return np.pad(a, h, mode="wrap")
    return np.pad(a, h, mode="constant", constant_values=fill)


# --- kernels against NumPy ---------------------------------------------------------------


@pytest.mark.parametrize("boundary", ["fixed", "periodic"])
def test_heat_kernel_equals_numpy(boundary):
    shape, alpha, wall = (13, 17), 0.23, -2.0
    k = kernel(stop_tick=9, seed=3)
    k.add_population(
        HeatPlate,
        "plate",
        None,
        dict(rows=13, columns=17, alpha=alpha, boundary=boundary, wall=wall, initial=5.0),
    )
    pop = k.population("plate")
    t = np.random.default_rng(0).normal(20, 5, shape)
    pop.local.T[...] = t
    k.run()
    for _ in range(9):
        t = diffuse_numpy(pad(t, 1, boundary == "periodic", wall), alpha)
    np.testing.assert_array_max_ulp(state(k, "plate", "T"), t, maxulp=1)


def epidemic_numpy(s, key, tick, beta, contact, sigma, gamma, omega, onset, regions):
    ny, nx = s.shape
    ry, rx = regions
    by, bx = default_block((ny, nx), (ry, rx))

    def axis(n, b, r):  # region edges at the block boundary nearest to each equal split
        edges = [int(k * n / (r * b) + 0.5) * b for k in range(1, r)]
        return np.searchsorted(edges, np.arange(n), side="right")

    region = axis(ny, by, ry)[:, None] * rx + axis(nx, bx, rx)[None, :]
    p = pad(s, 1, True)
    k = sum(
        (p[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx] == 2).astype(np.int64)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dy, dx) != (0, 0)
    )
    u = np_uniform(key, tick, np.arange(ny * nx, dtype=np.int64).reshape(ny, nx), 0)
    table = infection_table(beta, np.asarray(contact, dtype=np.float64))
    out = s.copy()
    out[(s == 0) & (k > 0) & (u < table[region, k])] = onset
    out[(s == 1) & (u < sigma)] = 2
    out[(s == 2) & (u < gamma)] = 3
    if omega > 0:
        out[(s == 3) & (u < omega)] = 0
    return out


@pytest.mark.parametrize("latent, omega", [(True, 0.0), (False, 0.05)])
def test_epidemic_kernel_equals_numpy_exactly(latent, omega):
    args = dict(
        rows=24,
        columns=40,
        beta=0.3,
        sigma=0.4,
        gamma=0.2,
        omega=omega,
        latent=latent,
        initial_infected=0.05,
        regions=[2, 2],
    )
    contact = [1.0, 0.5, 0.2, 1.0]

    class Setter(Actor):
        def on_first_diasca(self):
            for r, c in enumerate(contact):
                self.population("e").post_set("contact", r, c)

    k = kernel(stop_tick=12, seed=9)
    pop = k.add_population(EpidemicGrid, "e", None, args)
    k.add_actors(Setter)
    s = state(k, "e", "state")
    assert 0 < (s == 2).sum() < s.size
    k.run()
    onset = 1 if latent else 2
    for tick in range(12):
        c = [1.0] * 4 if tick == 0 else contact  # posted at tick 0, seen from tick 1
        s = epidemic_numpy(s, pop.key, tick, 0.3, c, 0.4, 0.2, omega, onset, (2, 2))
    assert np.array_equal(state(k, "e", "state"), s)
    assert len(np.unique(s)) >= 3


@njit(cache=True)
def ring_step(src, dst, tick, key, block, weight):
    """1-D, halo 2: a smoothed value plus noise, and a noisy rule-90 automaton."""
    x, bit = src
    y, out = dst
    h, ox = block[0], block[1]
    n = y.shape[0] - 2 * h
    tk = rng.tick_key(key, tick)
    for i in range(h, h + n):
        ck = rng.cell_key(tk, ox + i - h)
        y[i] = weight * (x[i - 2] + x[i - 1] + x[i] + x[i + 1] + x[i + 2]) + rng.normal(
            ck, 0, 0.0, 0.01
        )
        flip = rng.bernoulli(ck, 1, 0.02)
        out[i] = (bit[i - 1] ^ bit[i + 1]) ^ (1 if flip else 0)


class Ring(DensePopulation):
    fields = {"x": np.float64, "bit": np.int8}
    stencil = [-2, -1, 1, 2]
    kernel = staticmethod(ring_step)
    regions = 3

    def __init__(self, n=100, boundary="periodic", weight=0.2):
        self.shape = n
        self.boundary = boundary
        self.fill = {"x": 1.5, "bit": 1}
        self.weight = weight

    def initialize(self, local):
        local.x[...] = local.uniform(0) * 10
        local.bit[...] = local.uniform(1) < 0.5

    def kernel_args(self):
        return (self.weight,)


def ring_numpy(x, bit, key, tick, weight, periodic):
    n = x.size
    px, pb = pad(x, 2, periodic, 1.5), pad(bit, 2, periodic, 1)
    idx = np.arange(n, dtype=np.int64)
    tk = np.uint64(rng.tick_key(key, tick))
    ck = np_mix64(tk + (idx.astype(np.uint64) + np.uint64(1)) * G)
    z = np_mix64(ck + G)
    u1 = ((z >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
    u2 = (np_mix64(z + G) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    noise = 0.0 + 0.01 * np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    y = weight * (px[:-4] + px[1:-3] + px[2:-2] + px[3:-1] + px[4:]) + noise
    flip = np_uniform(key, tick, idx, 1) < 0.02
    out = (pb[1:-3] ^ pb[3:-1]) ^ flip.astype(np.int8)
    return y, out


@pytest.mark.parametrize("boundary", ["periodic", "fixed"])
def test_one_dimensional_stencil_kernel_equals_numpy(boundary):
    k = kernel(stop_tick=6, seed=4)
    pop = k.add_population(Ring, "ring", None, dict(n=150, boundary=boundary))
    x, bit = state(k, "ring", "x"), state(k, "ring", "bit")
    k.run()
    for tick in range(6):
        x, bit = ring_numpy(x, bit, pop.key, tick, 0.2, boundary == "periodic")
    np.testing.assert_allclose(state(k, "ring", "x"), x, rtol=4e-16, atol=0)
    assert np.array_equal(state(k, "ring", "bit"), bit)


# --- a network population (CSR neighbour lists) ---------------------------------------


@njit(cache=True)
def sis_step(src, dst, tick, key, block, indptr, indices, beta, gamma):
    (s,) = src
    (out,) = dst
    ox = block[1]
    n = indptr.shape[0] - 1
    tk = rng.tick_key(key, tick)
    for i in range(n):
        u = rng.uniform(rng.cell_key(tk, ox + i), 0)
        if s[i]:
            out[i] = 0 if u < gamma else 1
        else:
            k = 0
            for e in range(indptr[i], indptr[i + 1]):
                k += s[indices[e]]
            out[i] = 1 if u < 1.0 - (1.0 - beta) ** k else 0


def random_graph(n: int, degree: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ring lattice plus random shortcuts, as CSR over global agent numbers."""
    r = np.random.default_rng(seed)
    rows = [
        sorted({(i + 1) % n, (i - 1) % n, *r.integers(0, n, degree).tolist()} - {i})
        for i in range(n)
    ]
    indptr = np.concatenate(([0], np.cumsum([len(x) for x in rows])))
    return indptr, np.concatenate(rows).astype(np.int64)


class Contacts(DensePopulation):
    fields = {"s": np.int8}
    categories = {"s": 2}
    kernel = staticmethod(sis_step)

    def __init__(self, n=300, beta=0.15, gamma=0.1, seed=1):
        self.shape = n
        self.csr = random_graph(n, 3, seed)
        self.beta, self.gamma = beta, gamma

    def initialize(self, local):
        local.s[...] = local.uniform(0) < 0.1

    def kernel_args(self):
        return (self.beta, self.gamma)


class GeneratedContacts(Contacts):
    """The same graph, generated row range by row range instead of given whole."""

    def __init__(self, n=300, beta=0.15, gamma=0.1, seed=1):
        super().__init__(n, beta, gamma, seed)
        self.full, self.csr = self.csr, None

    def edges(self, lo, hi):
        indptr, indices = self.full
        return indptr[lo : hi + 1] - indptr[lo], indices[indptr[lo] : indptr[hi]]


def sis_numpy(s, key, tick, indptr, indices, beta, gamma):
    n = s.size
    k = np.add.reduceat(s[indices].astype(np.int64), indptr[:-1])
    k[indptr[:-1] == indptr[1:]] = 0
    u = np_uniform(key, tick, np.arange(n, dtype=np.int64), 0)
    infected = np.where(u < 1.0 - (1.0 - beta) ** k, 1, 0)
    return np.where(s == 1, np.where(u < gamma, 0, 1), infected).astype(np.int8)


@pytest.mark.parametrize("cls", [Contacts, GeneratedContacts])
def test_network_kernel_equals_numpy(cls):
    k = kernel(stop_tick=10, seed=2)
    pop = k.add_population(cls, "net", None, dict(n=300))
    s = state(k, "net", "s")
    k.run()
    indptr, indices = random_graph(300, 3, 1)
    for tick in range(10):
        s = sis_numpy(s, pop.key, tick, indptr, indices, 0.15, 0.1)
    assert np.array_equal(state(k, "net", "s"), s)
    counts = probe([k], "net.s.counts")[2]
    assert counts[-1].tolist() == [int((s == 0).sum()), int((s == 1).sum())]


# --- aggregates ----------------------------------------------------------------------------


def test_aggregates_match_numpy_and_are_recorded_every_tick():
    k = kernel(stop_tick=5, seed=1)
    k.add_population(
        HeatPlate, "plate", None, dict(rows=40, columns=36, initial=1.0, regions=[2, 3])
    )
    t0 = np.random.default_rng(3).random((40, 36))
    k.population("plate").local.T[...] = t0
    k.run()
    t = t0
    for _ in range(5):
        t = diffuse_numpy(pad(t, 1, False), 0.2)
    ticks, aais, sums = probe([k], "plate.T.sum")
    assert ticks.tolist() == [0, 1, 2, 3, 4] and set(aais.tolist()) == {0}
    assert sums[-1] == pytest.approx(t.sum(), rel=1e-13)
    assert probe([k], "plate.T.min")[2][-1] == t.min()
    assert probe([k], "plate.T.max")[2][-1] == t.max()
    by_region = probe([k], "plate.T.sum_by_region")[2][-1]
    pop = k.population("plate")
    expected = [t[pop.region_box(r)].sum() for r in range(6)]
    np.testing.assert_allclose(by_region, expected, rtol=1e-13)


def test_epidemic_counts_by_region_are_exact():
    k = kernel(stop_tick=4, seed=5)
    k.add_population(
        EpidemicGrid, "e", None, dict(rows=32, columns=48, initial_infected=0.1, regions=[2, 2])
    )
    k.run()
    s = state(k, "e", "state")
    pop = k.population("e")
    counts = probe([k], "e.state.counts")[2][-1]
    assert counts.tolist() == np.bincount(s.ravel(), minlength=4).tolist()
    by_region = probe([k], "e.state.counts_by_region")[2][-1].reshape(4, 4)
    for r in range(4):
        assert (
            by_region[r].tolist() == np.bincount(s[pop.region_box(r)].ravel(), minlength=4).tolist()
        )


# --- partition invariance: 1 to 4 ranks, several process grids -----------------------------


def heat_world(k: Kernel, grid=None) -> None:
    k.add_population(
        HeatPlate,
        "plate",
        grid,
        dict(rows=30, columns=44, initial=10.0, regions=[2, 2], boundary="fixed"),
    )
    k.add_actors(HeatSource, 1, None, row=5, column=7, size=3, power=4.0)
    k.add_actors(HeatSource, 1, None, row=20, column=40, power=9.0, period=3)
    k.add_actors(HeatSource, 1, None, row=14, column=22, size=2, power=6.0, target=30.0)


def epidemic_world(k: Kernel, grid=None) -> None:
    k.add_population(
        EpidemicGrid,
        "epidemic",
        grid,
        dict(rows=36, columns=48, beta=0.15, initial_infected=0.01, regions=[2, 2]),
    )
    first = k.add_actors(HealthAuthority, 4, None, first=1, impose_above=0.02, lift_below=0.01)
    k.add_actors(Hospital, 4, None, first=5, authorities=first[0], capacity=5, stay=4)


def network_world(k: Kernel, grid=None) -> None:
    k.add_population(GeneratedContacts, "net", grid, dict(n=257))


def ring_world(k: Kernel, grid=None) -> None:
    k.add_population(Ring, "ring", grid, dict(n=203, boundary="fixed"))


LAYOUTS = [(2, None), (3, None), (4, None), (2, (2, 1)), (3, (1, 3)), (4, (1, 4)), (4, (4, 1))]


@pytest.mark.parametrize("world", [heat_world, epidemic_world, network_world, ring_world])
def test_results_and_state_do_not_depend_on_the_partitioning(world):
    field = {"heat_world": ("plate", "T"), "epidemic_world": ("epidemic", "state")}.get(
        world.__name__
    )
    ref = run_ranks(1, world, stop_tick=25, seed=8)
    ref_digest = digest(ref)
    for size, grid in LAYOUTS:
        if grid is not None and world in (network_world, ring_world) and grid[0] > 1:
            continue  # 1-D populations always lie along one line of ranks
        kernels = run_ranks(size, lambda k, g=grid: world(k, g), stop_tick=25, seed=8)
        assert digest(kernels) == ref_digest, (size, grid)
        if field:
            assert np.array_equal(global_field(kernels, *field), global_field(ref, *field))


# --- coupling with actors: timing and canonical order --------------------------------------


@njit(cache=True)
def count_step(src, dst, tick, key, block, gain):
    (x,) = src
    (y,) = dst
    h = block[0]
    for i in range(h, y.shape[0] - h):
        y[i] = x[i] + 1


class Counter(DensePopulation):
    """Every cell counts the ticks: x' = x + 1."""

    fields = {"x": np.int64}
    kernel = staticmethod(count_step)
    shape = 10
    params = {"gain": [1.0, 2.0]}


class Prober(Actor):
    """At every tick: reads, records what it read, and posts ``1000 * tick`` to cell 3."""

    def on_first_diasca(self):
        self.population("counter").watch("x", 3)
        self.act_spontaneous()

    def act_spontaneous(self):
        pop = self.population("counter")
        agg = pop.aggregate("x")
        self.record("seen_sum", agg.sum)
        self.record("seen_max", agg.max)
        if self.tick >= 1:
            self.record("seen_cell", pop.value("x", 3))
        pop.post_set("x", 3, 1000 * self.tick)
        if self.tick + 1 < 8:
            self.schedule_in(1)


def test_coupling_timing_posts_reach_the_next_update_reads_see_the_previous_tick():
    k = kernel(stop_tick=8)
    k.add_population(Counter, "counter")
    k.add_actors(Prober)
    k.run()
    sums = probe([k], "counter.x.sum")[2]
    maxes = probe([k], "counter.x.max")[2]
    seen_sum = probe([k], "seen_sum")[2]
    seen_cell = probe([k], "seen_cell")[2]
    # The update at tick t applies what was posted at t-1: cell 3 becomes 1000 (t-1) + 1.
    for t in range(1, 8):
        assert maxes[t] == max(t + 1, 1000 * (t - 1) + 1)  # the other cells count ticks
        assert sums[t] == 9 * (t + 1) + 1000 * (t - 1) + 1
    assert sums[0] == 10 and maxes[0] == 1
    # What an actor reads at tick t is what the update of tick t-1 produced.
    assert seen_sum[0] == 0  # the initial state
    for t in range(1, 8):
        assert seen_sum[t] == sums[t - 1]
        assert seen_cell[t - 1] == (1 if t == 1 else 1000 * (t - 2) + 1)


class Poster(Actor):
    def __init__(self, op, value):
        self.op, self.value = op, value

    def on_first_diasca(self):
        pop = self.population("counter")
        for v in self.value:
            getattr(pop, self.op)("x", (slice(2, 6),), v)
        pop.post_add("gain", 1, self.value[0])


@pytest.mark.parametrize("order_seed", [None, 1, 2, 3])
def test_posts_apply_in_canonical_order_whatever_the_run_order(order_seed):
    k = kernel(stop_tick=2, run_order_seed=order_seed)
    k.add_population(Counter, "counter")
    k.add_actors(Poster, 1, None, op="post_add", value=[5, 7])
    k.add_actors(Poster, 1, None, op="post_set", value=[100])
    k.add_actors(Poster, 1, None, op="post_add", value=[-1])
    k.run()
    x = state(k, "counter", "x")
    # tick 0 -> 1 everywhere; posts: +5, +7 (actor 1), = 100 (actor 2), -1 (actor 3); then +1.
    assert x.tolist() == [2, 2, 100, 100, 100, 100, 2, 2, 2, 2]
    assert k.population("counter").view(k.actor(1)).param("gain").tolist() == [1.0, 106.0]


def test_posts_and_reads_across_ranks_are_those_of_one_rank():
    def world(k):
        k.add_population(Counter, "counter", None)
        k.add_actors(Prober)
        k.add_actors(Poster, 1, None, op="post_add", value=[5, 7])

    ref = run_ranks(1, world, stop_tick=8)
    for size in (2, 3):
        got = run_ranks(size, world, stop_tick=8)
        assert digest(got) == digest(ref)
        assert np.array_equal(global_field(got, "counter", "x"), global_field(ref, "counter", "x"))


def test_a_population_keeps_the_kernel_ticking():
    class Once(Actor):
        def on_first_diasca(self):
            self.add_spontaneous_tick(5)

    k = kernel(stop_tick=9)
    k.add_population(Counter, "counter")
    k.add_actors(Once)
    stats = k.run()
    assert stats.ticks == 9 and stats.last_tick == 8
    assert probe([k], "counter.x.sum")[0].tolist() == list(range(9))


# --- errors ------------------------------------------------------------------------------


class Reader(Actor):
    def __init__(self, what):
        self.what = what

    def on_first_diasca(self):
        self.schedule_in(1)

    def act_spontaneous(self):
        pop = self.population("counter")
        if self.what == "unwatched":
            pop.value("x", 4)
        elif self.what == "field":
            pop.post_set("y", 1, 1.0)
        elif self.what == "index":
            pop.post_set("x", 10, 1.0)
        elif self.what == "value":
            pop.post_add("x", 1, float("nan"))
        elif self.what == "name":
            self.population("counters")


@pytest.mark.parametrize(
    "what, message",
    [
        ("unwatched", "population 'counter': cell 4 of 'x' is not watched; call watch('x', 4)"),
        ("field", "population 'counter' has no field or parameter 'y'; it has x, gain"),
        ("index", "population 'counter': index 10 of 'x' is outside 0..9"),
        ("value", "needs a finite number; got nan"),
        ("name", "no population is called 'counters'; populations: 'counter'"),
    ],
)
def test_model_errors_name_the_population(what, message):
    k = kernel(stop_tick=3)
    k.add_population(Counter, "counter")
    k.add_actors(Reader, 1, None, what=what)
    stats = k.run()
    assert stats.status == "failed"
    assert message in stats.failures[0].message


@njit(cache=True)
def bad_step(src, dst, tick, key, block, gain):
    (x,) = src
    if tick == 2:
        raise ValueError("negative temperature")
    dst[0][:] = x


class Bad(Counter):
    kernel = staticmethod(bad_step)


def test_kernel_exception_stops_the_run_with_the_population_named():
    stats = kernel(stop_tick=5)
    stats.add_population(Bad, "bad")
    out = stats.run()
    assert out.status == "failed"
    f = out.failures[0]
    assert (f.tick, f.diasca, f.handler) == (2, 0, "update of population 'bad'")
    assert "negative temperature" in f.message


@njit(cache=True)
def half_step(src, dst, tick, key, block, gain):
    if tick == 3 and block[1] > 0:  # only the rank that does not hold cell 0
        raise ValueError("boom")
    dst[0][:] = src[0]


class Half(Counter):
    kernel = staticmethod(half_step)


def test_kernel_exception_on_one_rank_stops_every_rank():
    kernels = run_ranks(2, lambda k: k.add_population(Half, "half"), stop_tick=6)
    for k in kernels:
        assert k.stats.status == "failed" and k.stats.last_tick == 3
    messages = [f.message for f in kernels[0].stats.failures]
    assert any("boom" in m for m in messages)


def test_declaration_errors():
    with pytest.raises(ValueError, match="give the run a stop_tick"):
        Kernel().add_population(Counter)
    with pytest.raises(TypeError, match="not a subclass of engine.DensePopulation"):
        kernel(stop_tick=2).add_population(Prober)
    k = kernel(stop_tick=2)
    k.add_population(Counter, "c")
    with pytest.raises(ValueError, match="two populations are called 'c'"):
        k.add_population(Counter, "c")

    class NoKernel(DensePopulation):
        fields = {"x": np.float64}
        shape = 4

    with pytest.raises(ValueError, match="declares no kernel"):
        kernel(stop_tick=2).add_population(NoKernel)
    with pytest.raises(ValueError, match="unknown stencil 'hex'"):
        kernel(stop_tick=2).add_population(type("Hex", (Counter,), {"stencil": "hex"}))


def test_process_grid_and_thin_tiles_are_checked():
    with pytest.raises(ValueError, match=r"process grid \[1, 3\] does not have 2 ranks"):
        run_ranks(2, lambda k: epidemic_world(k, (1, 3)), stop_tick=2)
    wide = type("Wide", (HeatPlate,), {"stencil": [(-2, 0), (2, 0), (0, -2), (0, 2)]})
    plate = dict(rows=4, columns=64, block=[1, 8])
    run_ranks(2, lambda k: k.add_population(wide, "p", (2, 1), plate), stop_tick=2)
    with pytest.raises(ValueError, match=r"1 x 64 cells, thinner than the halo \(2 x 2\)"):
        run_ranks(4, lambda k: k.add_population(wide, "p", (4, 1), plate), stop_tick=2)


@njit(cache=True)
def weighted_step(src, dst, tick, key, block, gain):
    x, w = src
    y = dst[0]
    for i in range(y.shape[0]):
        y[i] = x[i] + w[i]


class Weighted(Counter):
    """``w`` is static: one buffer, read by the kernel, changed only by posts."""

    fields = {"x": np.int64, "w": np.int16}
    static = ("w",)
    kernel = staticmethod(weighted_step)

    def initialize(self, local):
        local.w[...] = 1


class Reweigh(Actor):
    def on_first_diasca(self):
        self.add_spontaneous_tick(2)

    def act_spontaneous(self):
        self.population("counter").post_set("w", slice(5, 10), 3)


def test_static_fields_keep_their_value_and_take_posts():
    k = kernel(stop_tick=6)
    pop = k.add_population(Weighted, "counter")
    k.add_actors(Reweigh)
    k.run()
    assert pop._cur["w"] is pop._nxt["w"]
    # ticks 0..5 add w: 1 each tick, then 3 from the update of tick 3 on for cells 5..9.
    assert state(k, "counter", "x").tolist() == [6] * 5 + [12] * 5
    assert probe([k], "counter.w.max")[2].tolist() == [1, 1, 1, 3, 3, 3]


def test_vector_probes_are_labelled():
    k = kernel(stop_tick=2)
    k.add_population(EpidemicGrid, "e", None, dict(rows=16, columns=16, regions=[1, 2]))
    k.run()
    decl = k.probes.declarations
    assert decl["e.state.counts"].labels == ("S", "E", "I", "R")
    assert decl["e.state.counts_by_region"].labels[:5] == (
        "region 0 S",
        "region 0 E",
        "region 0 I",
        "region 0 R",
        "region 1 S",
    )


def test_single_process_population_run_imports_no_mpi(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import sys; from runtime.cli import main; "
        f"rc = main(['run', 'scenarios/heat-small.toml', '--out', r'{tmp_path / 'run'}', "
        "'--set', 'results.plots=false']); "
        "assert rc == 0, rc; assert 'mpi4py' not in sys.modules, 'mpi4py was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_population_aggregates_carry_their_field_units(tmp_path):
    import h5py

    from runtime.runner import run_scenario
    from runtime.scenario import load_scenario

    scenario = load_scenario(
        Path(__file__).resolve().parent.parent / "scenarios" / "heat-small.toml",
        ["simulation.stop_tick=3"],
    )
    outcome = run_scenario(scenario, out=tmp_path / "run")
    with h5py.File(outcome.run_dir / "results.h5") as f:
        for stat in ("sum", "min", "max"):
            assert f[f"probes/plate.T.{stat}"].attrs["unit"] == "°C"


# --- the modeller's side: live parameters, unwatch, equal regions, regional means ------------


class Gained(Counter):
    """Adds ``gain[0]`` to every cell each tick, reading the parameter through the public API."""

    kernel = staticmethod(weighted_step)
    fields = {"x": np.int64, "w": np.int16}
    static = ("w",)

    def kernel_args(self):
        self.local.w[...] = int(self.param("gain")[0])  # what a population reads of its posts
        self.seen = self.params["gain"].tolist()
        return (self.params["gain"],)


class Raise(Actor):
    def on_first_diasca(self):
        self.population("counter").post_set("gain", 0, 5.0)


def test_a_population_reads_posted_parameters_through_params_and_param():
    k = kernel(stop_tick=3)
    pop = k.add_population(Gained, "counter")
    k.add_actors(Raise)
    k.run()
    # tick 0 adds the declared gain 1; the post of tick 0 is live from the update of tick 1.
    assert pop.seen == [5.0, 2.0]
    assert state(k, "counter", "x").tolist() == [1 + 5 + 5] * 10
    assert pop.params is pop._posts.params and Gained.params == {"gain": [1.0, 2.0]}
    with pytest.raises(Exception, match="no parameter 'gian'; its parameters: gain"):
        pop.param("gian")


class Mover(Actor):
    """Watches cell ``tick`` at each tick and unwatches the one before: the watch moves."""

    def __init__(self, keep: bool = False):
        self.keep = keep

    def on_first_diasca(self):
        self.act_spontaneous()

    def act_spontaneous(self):
        pop = self.population("counter")
        t = self.tick
        if t >= 1:
            self.record("seen", pop.value("x", t - 1))
        if t >= 2 and not self.keep:
            pop.unwatch("x", t - 2)
        pop.watch("x", t)
        if t + 1 < 6:
            self.schedule_in(1)


class Late(Actor):
    """Reads cell 0 at tick 4: readable only while some actor still watches it."""

    def on_first_diasca(self):
        self.add_spontaneous_tick(4)

    def act_spontaneous(self):
        self.record("late", self.population("counter").value("x", 0))


@pytest.mark.parametrize("ranks", [1, 2])
def test_unwatched_cells_stop_being_gathered(ranks):
    def world(k):
        k.add_population(Counter, "counter", None)
        k.add_actors(Mover)

    kernels = run_ranks(ranks, world, stop_tick=6)
    assert probe(kernels, "seen")[2].tolist() == [1, 2, 3, 4, 5]  # cell t-1 as at the end of t-1
    for k in kernels:  # the last update (tick 5) applied tick 4's: watch 4, unwatch 2
        assert k.population("counter")._aggregates._watch_keys.tolist() == [3, 4]


def test_a_cell_stays_watched_while_another_actor_watches_it():
    def world(k, keep):
        k.add_population(Counter, "counter", None)
        k.add_actors(Mover, 1, None, keep=keep)
        k.add_actors(Late)

    kept = run_ranks(1, lambda k: world(k, True), stop_tick=6)
    assert probe(kept, "late")[2].tolist() == [4]
    k = kernel(stop_tick=6)
    world(k, False)
    stats = k.run()
    assert stats.status == "failed" and "cell 0 of 'x' is not watched" in stats.failures[0].message


@pytest.mark.parametrize(
    ("n", "block", "regions", "sizes"),
    [
        (300, 18, 3, [108, 90, 102]),  # whole blocks: the edge nearest each third
        (300, 10, 3, [100, 100, 100]),
        (3125, 64, 2, [1536, 1589]),
        (10, 4, 3, [4, 4, 2]),  # never an empty region
        (64, 4, 2, [32, 32]),
    ],
)
def test_region_edges_are_the_block_boundaries_nearest_equal_shares(n, block, regions, sizes):
    edges = partition.region_edges(n, block, regions)
    cells = np.minimum(edges * block, n)
    assert np.diff(cells).tolist() == sizes


def test_default_blocks_make_declared_regions_equal_where_the_grid_allows():
    assert default_block((300, 300), (3, 3)) == (10, 10)  # 18 without regions: 108/108/84 before
    assert default_block((300, 300)) == (18, 18)
    assert default_block((3200, 3125), (2, 2)) == (64, 64)  # 1600 rows: 64 divides; 3125 odd
    k = kernel(stop_tick=1)
    pop = k.add_population(
        HeatPlate, "plate", None, dict(rows=300, columns=300, initial=1.0, regions=[3, 3])
    )
    rows = {pop.region_box(r)[0].stop - pop.region_box(r)[0].start for r in range(9)}
    assert rows == {100}
    assert np.bincount(pop.local.region().ravel()).tolist() == [100 * 100] * 9


def test_regional_means_are_recorded_next_to_the_sums():
    k = kernel(stop_tick=3, seed=1)
    k.add_population(HeatPlate, "plate", None, dict(rows=40, columns=36, regions=[2, 3]))
    t0 = np.random.default_rng(4).random((40, 36))
    pop = k.population("plate")
    pop.local.T[...] = t0
    k.run()
    t = state(k, "plate", "T")
    means = probe([k], "plate.T.mean_by_region")[2][-1]
    expected = [t[pop.region_box(r)].mean() for r in range(6)]
    np.testing.assert_allclose(means, expected, rtol=1e-13)
    assert k.probes.declarations["plate.T.mean_by_region"].labels[0] == "region 0"
