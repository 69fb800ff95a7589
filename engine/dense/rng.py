"""Counter-based random numbers for Numba kernels, keyed by position rather than by order.

A draw is a pure function of (seed, population, global index, tick, draw
number), so no partitioning of a population over ranks can change it, and a
kernel needs no generator state at all. The construction is SplitMix64's:

- ``population_key(seed, population)``: the population's key (the kernel gets it);
- ``tick_key(key, tick)``: one per tick, computed once per update;
- ``cell_key(tkey, index)``: one per cell or agent, from its *global* index;
- ``bits(ckey, n)``: the n-th 64-bit draw of that cell at that tick.

Every sampler takes a cell key and a draw number and uses that one draw number
(``normal`` derives its second uniform from the same draw), so a kernel numbers
its draws 0, 1, 2, ... per cell and tick. All functions are ``@njit`` and can
also be called from Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..random import stream_key

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TO_UNIT = 2.0**-53
_TWO_PI = 2.0 * np.pi

# Part of a population's key: actor streams use (seed, AAI) with AAI >= 1.
_DENSE = 0


def population_key(seed: int, population: int) -> np.uint64:
    """The stream key of population number ``population`` (scenario order) under ``seed``."""
    return np.uint64(stream_key(seed, _DENSE, population))


@njit(cache=True, inline="always")
def mix64(z):
    """SplitMix64's bijective finaliser (the same as ``engine.random.mix64``)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def tick_key(key, tick):
    """Key of one tick of a population: compute it once per update."""
    return mix64(np.uint64(key) ^ mix64(np.uint64(tick) + _GOLDEN))


@njit(cache=True, inline="always")
def cell_key(tkey, index):
    """Key of the cell (or agent) with global flat index ``index`` at that tick."""
    return mix64(np.uint64(tkey) + (np.uint64(index) + _ONE) * _GOLDEN)


@njit(cache=True, inline="always")
def stream(key, tick, index):
    """``cell_key(tick_key(key, tick), index)`` in one call (two mixes more per cell)."""
    return cell_key(tick_key(key, tick), index)


@njit(cache=True, inline="always")
def bits(ckey, n):
    """Draw ``n`` (>= 0) of a cell: 64 random bits."""
    return mix64(np.uint64(ckey) + (np.uint64(n) + _ONE) * _GOLDEN)


@njit(cache=True, inline="always")
def uniform(ckey, n):
    """A float uniform on [0, 1), 53 random bits."""
    return np.float64(bits(ckey, n) >> _S11) * _TO_UNIT


@njit(cache=True, inline="always")
def bernoulli(ckey, n, p):
    """True with probability ``p``."""
    return uniform(ckey, n) < p


@njit(cache=True)
def integers(ckey, n, low, high):
    """An integer uniform on [low, high) (high > low), without modulo bias."""
    span = np.uint64(high - low)
    threshold = (np.uint64(0) - span) % span  # 2**64 mod span: reject the short block
    z = bits(ckey, n)
    while z < threshold:  # probability threshold / 2**64: almost never
        z = mix64(z + _GOLDEN)
    return low + np.int64(z % span)


@njit(cache=True, inline="always")
def exponential(ckey, n, mean):
    """An exponential variate of the given mean (inverse transform)."""
    return -mean * np.log1p(-uniform(ckey, n))


@njit(cache=True, inline="always")
def normal(ckey, n, mu, sigma):
    """A normal variate (Box-Muller; the second uniform is mixed from the same draw)."""
    z = bits(ckey, n)
    u1 = np.float64((z >> _S11) + _ONE) * _TO_UNIT  # (0, 1]: the log is finite
    u2 = np.float64(mix64(z + _GOLDEN) >> _S11) * _TO_UNIT
    return mu + sigma * np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@njit(cache=True)
def uniform_cells(key, tick, index, n):
    """Draw ``n`` of each cell in the int64 array ``index`` at ``tick``, as a float array.

    For vectorised initialisation: ``tick = -1`` is the convention for "before tick 0".
    """
    tk = tick_key(key, tick)
    out = np.empty(index.shape[0], np.float64)
    for i in range(index.shape[0]):
        out[i] = uniform(cell_key(tk, index[i]), n)
    return out


__all__ = [
    "bernoulli",
    "bits",
    "cell_key",
    "exponential",
    "integers",
    "mix64",
    "normal",
    "population_key",
    "stream",
    "tick_key",
    "uniform",
    "uniform_cells",
]
