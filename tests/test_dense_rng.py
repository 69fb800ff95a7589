"""The counter-based generator of dense kernels: its definition, its statistics, its keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from engine.dense import rng
from engine.random import mix64, stream_key

G = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1
KEY = rng.population_key(7, 2)


# --- the definition, in plain Python integers ---------------------------------------


def ref_tick_key(key: int, tick: int) -> int:
    return mix64(key ^ mix64((tick + G) & MASK))


def ref_cell_key(tkey: int, index: int) -> int:
    return mix64((tkey + (index + 1) * G) & MASK)


def ref_bits(ckey: int, n: int) -> int:
    return mix64((ckey + (n + 1) * G) & MASK)


def ref_uniform(ckey: int, n: int) -> float:
    return (ref_bits(ckey, n) >> 11) * 2.0**-53


def test_population_key_is_the_stream_key_of_seed_0_population():
    assert int(rng.population_key(7, 2)) == stream_key(7, 0, 2)
    assert rng.population_key(7, 2) != rng.population_key(7, 3)
    assert rng.population_key(7, 2) != rng.population_key(8, 2)


@pytest.mark.parametrize("tick", [0, 1, 99, -1, 2**40])
@pytest.mark.parametrize("index", [0, 1, 12345, 10**9])
def test_draws_follow_their_definition(tick, index):
    tk = ref_tick_key(int(KEY), tick)
    assert rng.tick_key(KEY, tick) == tk
    ck = ref_cell_key(tk, index)
    assert rng.cell_key(np.uint64(tk), index) == ck  # keys are uint64: wrap Python ints
    assert rng.stream(KEY, tick, index) == ck
    key = np.uint64(ck)
    for n in (0, 1, 5):
        assert rng.bits(key, n) == ref_bits(ck, n)
        assert rng.uniform(key, n) == ref_uniform(ck, n)
        assert rng.bernoulli(key, n, 0.5) == (ref_uniform(ck, n) < 0.5)
        assert rng.exponential(key, n, 2.0) == -2.0 * math.log1p(-ref_uniform(ck, n))


def test_a_draw_depends_only_on_its_key_so_partitioning_cannot_change_it():
    index = np.arange(10_000, dtype=np.int64)
    whole = rng.uniform_cells(KEY, 3, index, 0)
    pieces = [
        rng.uniform_cells(KEY, 3, index[a:b], 0) for a, b in ((0, 17), (17, 6000), (6000, 10_000))
    ]
    assert np.array_equal(np.concatenate(pieces), whole)
    shuffled = np.random.default_rng(1).permutation(index)
    assert np.array_equal(rng.uniform_cells(KEY, 3, shuffled, 0), whole[shuffled])


@njit(cache=True)
def _sample(key, cells, ticks, kind, a, b):
    out = np.empty(cells * ticks)
    for t in range(ticks):
        tk = rng.tick_key(key, t)
        for i in range(cells):
            ck = rng.cell_key(tk, i)
            if kind == 0:
                v = rng.uniform(ck, 0)
            elif kind == 1:
                v = rng.integers(ck, 1, a, b)
            elif kind == 2:
                v = rng.exponential(ck, 2, a)
            elif kind == 3:
                v = rng.normal(ck, 3, a, b)
            else:
                v = 1.0 if rng.bernoulli(ck, 4, a) else 0.0
            out[t * cells + i] = v
    return out


N_CELLS, N_TICKS = 20_000, 50  # 10^6 draws, across cells and ticks


def _z(mean: float, expected: float, variance: float, n: int) -> float:
    return abs(mean - expected) / math.sqrt(variance / n)


def test_uniform_mean_variance_and_chi_square():
    u = _sample(KEY, N_CELLS, N_TICKS, 0, 0.0, 0.0)
    n = u.size
    assert u.min() >= 0.0 and u.max() < 1.0
    assert _z(u.mean(), 0.5, 1 / 12, n) < 5
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / n)
    counts = np.bincount((u * 100).astype(np.int64), minlength=100)
    chi2 = ((counts - n / 100) ** 2 / (n / 100)).sum()
    assert chi2 < 170, chi2  # 99 degrees of freedom: P(chi2 > 170) < 1e-5


def test_uniform_draws_of_neighbouring_cells_ticks_and_numbers_are_uncorrelated():
    index = np.arange(200_000, dtype=np.int64)
    a = rng.uniform_cells(KEY, 0, index, 0)
    for b in (
        rng.uniform_cells(KEY, 0, index + 1, 0),  # next cell
        rng.uniform_cells(KEY, 1, index, 0),  # next tick
        rng.uniform_cells(KEY, 0, index, 1),  # next draw
        rng.uniform_cells(rng.population_key(7, 3), 0, index, 0),  # next population
    ):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(index.size)


@pytest.mark.parametrize("low, high", [(0, 6), (-5, 5), (3, 4), (0, 1000)])
def test_integers_range_and_chi_square(low, high):
    x = _sample(KEY, N_CELLS, 10, 1, low, high).astype(np.int64)
    assert x.min() >= low and x.max() < high
    span = high - low
    if span == 1:
        return
    counts = np.bincount(x - low, minlength=span)
    expected = x.size / span
    chi2 = ((counts - expected) ** 2 / expected).sum()
    dof = span - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof) + 10, chi2


def test_exponential_mean_and_variance():
    x = _sample(KEY, N_CELLS, N_TICKS, 2, 3.0, 0.0)
    assert x.min() >= 0.0
    assert _z(x.mean(), 3.0, 9.0, x.size) < 5
    assert abs(x.var() / 9.0 - 1) < 0.02


def test_normal_mean_variance_and_tails():
    x = _sample(KEY, N_CELLS, N_TICKS, 3, 1.5, 2.0)
    assert _z(x.mean(), 1.5, 4.0, x.size) < 5
    assert abs(x.var() / 4.0 - 1) < 0.01
    z = (x - 1.5) / 2.0
    assert abs((np.abs(z) > 1.96).mean() - 0.05) < 0.002
    assert abs(((z**4).mean()) - 3.0) < 0.05  # kurtosis of a normal


@pytest.mark.parametrize("p", [0.0, 0.01, 0.3, 1.0])
def test_bernoulli_mean(p):
    x = _sample(KEY, N_CELLS, 20, 4, p, 0.0)
    if p in (0.0, 1.0):
        assert x.mean() == p
    else:
        assert _z(x.mean(), p, p * (1 - p), x.size) < 5
