"""Per-actor random streams that are cheap to hold by the million.

Each actor owns a counter-based generator: its whole state is a 64-bit key,
derived from (seed, AAI) alone, and a draw counter. Draw ``n`` is a bijective
64-bit mix (SplitMix64's finaliser) of ``key + n * golden``. Two plain integers
are all there is to checkpoint or migrate, and no rank layout can change a draw.
"""

from __future__ import annotations

import math
import operator
from collections.abc import MutableSequence, Sequence
from typing import TypeVar

import numpy as np

_MASK = (1 << 64) - 1
_TWO64 = 1 << 64
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_TO_UNIT = 2.0**-53
_TWO_PI = 2.0 * math.pi

T = TypeVar("T")


def mix64(z: int) -> int:
    """Bijective 64-bit finaliser: turns nearby integers into unrelated ones."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def stream_key(seed: int, *parts: int) -> int:
    """Key of the stream named by ``parts`` under ``seed``, e.g. (seed, AAI)."""
    k = mix64(seed + _GOLDEN)
    for p in parts:
        k = mix64(k ^ mix64(p + _GOLDEN))
    return k


def stream_keys(seed: int, aais: Sequence[int]) -> list[int]:
    """``[stream_key(seed, aai) for aai in aais]``, computed for the whole batch at once.

    NumPy's unsigned 64-bit arithmetic wraps exactly as ``mix64`` masks, so the
    keys are the same; building 10^6 actors then costs no 10^6 Python mixes.
    """
    if len(aais) < 64:
        return [stream_key(seed, aai) for aai in aais]
    with np.errstate(over="ignore"):
        a = np.asarray(aais, dtype=np.uint64) + np.uint64(_GOLDEN)
        keys = _mix64_array(np.uint64(mix64(seed + _GOLDEN)) ^ _mix64_array(a))
    return keys.tolist()


def _mix64_array(z):  # noqa: ANN001, ANN202 - NumPy uint64 arrays
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


class _PyStream:
    """The reference stream: (key, count) and the draws, in Python.

    ``engine._stream.Stream`` (C, built with the package when a compiler is at
    hand) gives the same draws several times faster; the tests compare both.
    """

    __slots__ = ("_key", "_count")

    def __init__(self, key: int, count: int = 0) -> None:
        self._key = key
        self._count = count

    def _next64(self) -> int:
        self._count += 1
        z = (self._key + self._count * _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * _M1) & _MASK
        z = ((z ^ (z >> 27)) * _M2) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float uniform on [0, 1), with 53 random bits."""
        # _next64 inlined: this is the hottest draw.
        self._count = c = self._count + 1
        z = (self._key + c * _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * _M1) & _MASK
        z = ((z ^ (z >> 27)) * _M2) & _MASK
        return ((z ^ (z >> 31)) >> 11) * _TO_UNIT

    def integers(self, low: int, high: int) -> int:
        """An integer uniform on [low, high), without modulo bias."""
        span = high - low
        if type(span) is not int:  # NumPy integers: draw with Python's
            low, high = operator.index(low), operator.index(high)
            span = high - low
        threshold = _THRESHOLDS.get(span)
        if threshold is None:
            threshold = _threshold(low, high)
        if threshold <= 0:  # a power of two: the top bits are exactly uniform
            return low + (self._next64() >> -threshold) if threshold else low
        key, c = self._key, self._count
        while True:  # _next64 inlined; rejects the incomplete last block of 2**64 % span
            c += 1
            z = (key + c * _GOLDEN) & _MASK
            z = ((z ^ (z >> 30)) * _M1) & _MASK
            z = ((z ^ (z >> 27)) * _M2) & _MASK
            z ^= z >> 31
            if z < threshold:
                self._count = c
                return low + z % span

    def exponential(self, mean: float) -> float:
        """An exponential variate of the given mean (inverse transform)."""
        return -mean * math.log(1.0 - self.random())

    def normal(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        """A normal variate (Box-Muller, two draws, nothing cached)."""
        u1 = 1.0 - self.random()
        u2 = self.random()
        return mu + sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


try:
    from ._stream import Stream as _Stream
except ImportError:  # built without a C compiler: the same draws, slower
    _Stream = _PyStream  # type: ignore[misc,assignment]

COMPILED = _Stream is not _PyStream  # whether draws run in C (benchmarks report it)


class Random(_Stream):
    """An actor's own generator: reproducible from (seed, AAI), 2 integers of state."""

    __slots__ = ()
    # The compiled draws hand unusual arguments (NumPy integers, huge spans, means
    # that are no floats, errors) to the reference implementation: the same rules.
    _integers = _PyStream.integers
    _exponential = _PyStream.exponential
    _normal = _PyStream.normal

    @property
    def state(self) -> tuple[int, int]:
        """(key, draws so far): enough to rebuild the generator exactly."""
        return (self._key, self._count)

    def choice(self, seq: Sequence[T]) -> T:
        """One element of a non-empty sequence, uniformly."""
        if not seq:
            raise ValueError("choice() from an empty sequence")
        return seq[self.integers(0, len(seq))]

    def shuffle(self, items: MutableSequence) -> None:
        """Shuffle a list in place (Fisher-Yates)."""
        for i in range(len(items) - 1, 0, -1):
            j = self.integers(0, i + 1)
            items[i], items[j] = items[j], items[i]


if COMPILED:  # the draws as Random's own methods: see bind in engine/_stream.c
    from ._stream import bind as _bind

    _bind(Random)

_THRESHOLDS: dict[int, int] = {}  # span -> the rejection threshold of integers()


def _threshold(low: int, high: int) -> int:
    """How ``integers`` draws from a span: > 0, the rejection threshold; <= 0, minus the
    shift that keeps a power of two's top bits (0 for a span of 1: no draw)."""
    span = high - low
    if not 0 < span <= _MASK:
        raise ValueError(f"integers({low}, {high}): need low < high and a span below 2**64")
    if len(_THRESHOLDS) > 4096:  # many distinct spans (a shuffle of a long list): forget
        _THRESHOLDS.clear()
    if span & (span - 1) == 0:
        threshold = -(65 - span.bit_length()) if span > 1 else 0
    else:
        threshold = _TWO64 - _TWO64 % span
    _THRESHOLDS[span] = threshold
    return threshold
