"""Compiled refills of the actors' generators (engine.random): a block of draws per call.

Kept apart so that Numba is imported only once some actor draws. Draw ``n``
of a stream is ``mix64(key + n * golden)``, computed here in unsigned 64-bit
arithmetic that wraps exactly as the Python code masks. Blocks are reversed,
so that taking draws from the end of a buffer gives them in increasing order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0**-53


@njit(cache=True, nogil=True)
def _draw(k, n):  # pragma: no cover - compiled
    z = k + n * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def fill_floats(key, count, floats):  # pragma: no cover - compiled
    """``floats[i]`` = draw ``count + len - i`` of stream ``key`` (int64), in [0, 1)."""
    n = len(floats)
    k = np.uint64(key)
    for i in range(n):
        floats[i] = (_draw(k, np.uint64(count) + np.uint64(n - i)) >> np.uint64(11)) * _TO_UNIT


@njit(cache=True, nogil=True)
def fill_both(key, count, floats, ints):  # pragma: no cover - compiled
    """``fill_floats``, and the same draws as 64-bit integers in ``ints``."""
    n = len(floats)
    k = np.uint64(key)
    for i in range(n):
        z = _draw(k, np.uint64(count) + np.uint64(n - i))
        ints[i] = z
        floats[i] = (z >> np.uint64(11)) * _TO_UNIT
