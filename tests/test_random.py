"""The per-actor generators: reproducible from (seed, AAI), and statistically sane."""

from __future__ import annotations

import math

import pytest

from engine import Random
from engine.random import mix64, stream_key

N = 40_000


def gen(seed: int = 1, aai: int = 1) -> Random:
    return Random(stream_key(seed, aai))


def test_streams_depend_on_seed_and_aai_only():
    a = [gen(1, 5).random() for _ in range(3)]
    assert a == [gen(1, 5).random() for _ in range(3)]
    draws = lambda g: [g.random() for _ in range(5)]  # noqa: E731
    assert draws(gen(1, 5)) == draws(gen(1, 5))
    assert draws(gen(1, 5)) != draws(gen(1, 6))
    assert draws(gen(1, 5)) != draws(gen(2, 5))


def test_state_rebuilds_the_generator():
    g = gen(3, 9)
    for _ in range(17):
        g.random()
    twin = Random(*g.state)
    assert [g.random() for _ in range(10)] == [twin.random() for _ in range(10)]


def test_uniform_mean_variance_and_chi_square():
    g = gen()
    xs = [g.random() for _ in range(N)]
    assert all(0.0 <= x < 1.0 for x in xs)
    mean = sum(xs) / N
    var = sum((x - mean) ** 2 for x in xs) / N
    assert abs(mean - 0.5) < 4 * math.sqrt(1 / 12 / N)
    assert abs(var - 1 / 12) < 0.003
    bins = [0] * 20
    for x in xs:
        bins[int(x * 20)] += 1
    expected = N / 20
    chi2 = sum((b - expected) ** 2 / expected for b in bins)
    assert chi2 < 43.8  # 19 degrees of freedom, p = 0.001


def test_neighbouring_streams_are_uncorrelated():
    n = 5000
    xs = [gen(1, aai).random() for aai in range(1, n + 1)]
    ys = [gen(1, aai).random() for aai in range(2, n + 2)]
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / n
    assert abs(cov / (1 / 12)) < 4 / math.sqrt(n)


@pytest.mark.parametrize("low, high", [(0, 2), (0, 6), (-3, 4), (10, 11), (0, 1 << 40)])
def test_integers_cover_the_range_uniformly(low, high):
    g = gen(7)
    span = high - low
    draws = [g.integers(low, high) for _ in range(N // 4)]
    assert all(low <= d < high for d in draws)
    if span <= 6:
        counts = [draws.count(v) for v in range(low, high)]
        expected = len(draws) / span
        chi2 = sum((c - expected) ** 2 / expected for c in counts)
        assert chi2 < 20.5  # at most 6 degrees of freedom, p = 0.002
    else:
        assert abs(sum(draws) / len(draws) - (low + high - 1) / 2) < span * 0.02


def test_integers_refuse_empty_ranges():
    with pytest.raises(ValueError, match="need low < high"):
        gen().integers(3, 3)


def test_exponential_and_normal_moments():
    g = gen(11)
    ex = [g.exponential(2.5) for _ in range(N)]
    assert min(ex) >= 0
    assert abs(sum(ex) / N - 2.5) < 4 * 2.5 / math.sqrt(N)
    nx = [g.normal(3.0, 2.0) for _ in range(N)]
    mean = sum(nx) / N
    var = sum((x - mean) ** 2 for x in nx) / N
    assert abs(mean - 3.0) < 4 * 2.0 / math.sqrt(N)
    assert abs(var - 4.0) < 0.15
    within = sum(abs(x - 3.0) < 2.0 for x in nx) / N
    assert abs(within - 0.6827) < 0.015


def test_choice_and_shuffle():
    g = gen(5)
    seq = ["a", "b", "c"]
    picks = [g.choice(seq) for _ in range(3000)]
    assert {p: picks.count(p) for p in seq} == pytest.approx({p: 1000 for p in seq}, abs=120)
    with pytest.raises(ValueError):
        g.choice([])
    items = list(range(10))
    g.shuffle(items)
    assert sorted(items) == list(range(10)) and items != list(range(10))
    firsts = [0] * 4
    for _ in range(4000):
        xs = [0, 1, 2, 3]
        g.shuffle(xs)
        firsts[xs[0]] += 1
    assert all(abs(f - 1000) < 120 for f in firsts)


# --- the generator is a fixed function of (key, draw number) ----------------------------
_GOLDEN = 0x9E3779B97F4A7C15


class _Reference:
    """Each draw written out from its definition: what the generator must equal."""

    def __init__(self, key: int, count: int = 0) -> None:
        self.key, self.count = key, count

    def next64(self) -> int:
        self.count += 1
        return mix64(self.key + self.count * _GOLDEN)

    def random(self) -> float:
        return (self.next64() >> 11) * 2.0**-53

    def integers(self, low: int, high: int) -> int:
        span = high - low
        if span & (span - 1) == 0:
            return low + (self.next64() >> (65 - span.bit_length())) if span > 1 else low
        while True:
            z = self.next64()
            if z < 2**64 - 2**64 % span:
                return low + z % span


@pytest.mark.parametrize("aai", [1, 2, 3, 17, 10**6, 2**40 + 1])
def test_draws_are_a_fixed_function_of_key_and_draw_number(aai):
    import random as stdlib_random

    script = stdlib_random.Random(aai)  # which calls, in which order
    key = stream_key(7, aai)
    g, ref = Random(key), _Reference(key)
    spans = [1, 2, 3, 7, 64, 1000, 2**40 + 3, 2**63 + 11, 2**64 - 1]
    for step in range(600):
        op = script.randrange(4)
        if op == 0:
            assert g.random() == ref.random(), step
        elif op == 1:
            lo = script.randrange(-50, 50)
            hi = lo + script.choice(spans)
            assert g.integers(lo, hi) == ref.integers(lo, hi), step
        elif op == 2:
            assert g.state == (key, ref.count), step
        else:  # rebuilt from its state
            g = Random(*g.state)
    assert g.state == (key, ref.count)


def test_keys_above_two_to_the_63_draw_like_the_others():
    key = next(k for k in (stream_key(1, a) for a in range(1, 100)) if k >= 2**63)
    g, ref = Random(key, 5), _Reference(key, 5)
    assert [g.random() for _ in range(40)] == [ref.random() for _ in range(40)]


def test_integers_take_numpy_bounds_and_refuse_empty_spans():
    import numpy as np

    g, ref = Random(stream_key(1, 2)), _Reference(stream_key(1, 2))
    value = g.integers(np.int64(3), np.int64(10))
    assert type(value) is int and value == ref.integers(3, 10)
    for low, high in [(5, 5), (3, 1), (0, 2**64 + 1)]:
        with pytest.raises(ValueError, match="need low < high"):
            g.integers(low, high)


# --- the compiled streams (engine/_stream.c) against the reference -------------------------

from engine.random import COMPILED, _PyStream  # noqa: E402


def test_the_compiled_streams_are_built_where_a_compiler_is():
    import shutil
    import sysconfig

    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the Python streams are used")
    assert COMPILED, "engine/_stream.c was not built: reinstall with `pip install -e .`"


SPANS = [
    (0, 1),
    (0, 2),
    (5, 9),
    (0, 1000),
    (-7, 3),
    (0, 3),
    (0, 2**20 + 1),
    (0, 2**62),
    (0, 2**62 + 1),  # beyond the compiled fast path
    (-(2**63), 2**63 - 1),
    (0, 2**64 - 1),
    (10**30, 10**30 + 7),
]


@pytest.mark.parametrize("key", [0, 1, 2**63 + 5, 2**64 - 1, stream_key(7, 12)])
def test_compiled_and_reference_streams_draw_the_same(key):
    import numpy as np

    fast, ref = Random(key), _PyStream(key)
    for i in range(400):
        assert fast.random() == ref.random()
        low, high = SPANS[i % len(SPANS)]
        assert fast.integers(low, high) == ref.integers(low, high)
        assert fast.integers(np.int64(3), np.int32(11)) == ref.integers(3, 11)
        assert fast._next64() == ref._next64()
        assert fast.exponential(2.5) == ref.exponential(2.5)
        assert fast.exponential(3) == ref.exponential(3)  # an int mean: the reference's path
        assert fast.normal() == ref.normal()
        assert fast.normal(3.0, 0.25) == ref.normal(3.0, 0.25)
        assert fast.normal(1, sigma=np.float64(2.0)) == ref.normal(1, sigma=2.0)
        assert (fast._key, fast._count) == (ref._key, ref._count)
    with pytest.raises(ValueError, match="need low < high"):
        fast.integers(3, 3)


def test_a_stream_pickles_and_copies_with_its_count():
    import copy
    import pickle

    r = Random(stream_key(1, 2))
    r.random()
    r.integers(0, 10)
    state, following = r.state, Random(*r.state).random()
    for twin in (pickle.loads(pickle.dumps(r, protocol=5)), copy.deepcopy(r)):
        assert type(twin) is Random and twin.state == state
        assert twin.random() == following
