"""Property: the order in which a rank runs its actors inside a diasca changes nothing.

Hypothesis draws random actor programs (sends, plans, creations, terminations,
records). Each program runs once in the kernel's natural order and again with
that order shuffled; the results digests must be equal.
"""

from __future__ import annotations

from conftest import kernel_digest
from data.programs import Wanderer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Kernel, MemorySink, ProbeStore


def _digest(n: int, p: dict, seed: int, stop: int, mode: str, run_order_seed: int | None):
    k = Kernel(
        stop_tick=stop,
        seed=seed,
        mode=mode,
        probes=ProbeStore(MemorySink()),
        run_order_seed=run_order_seed,
    )
    k.add_actors(Wanderer, n, contacts=list(range(1, n + 1)), p=p)
    stats = k.run()
    assert stats.status == "completed", stats.failures
    return kernel_digest(k), stats


programs = st.fixed_dictionaries(
    {
        "fanout": st.integers(0, 2),
        "ttl": st.integers(0, 3),
        "plan": st.floats(0.0, 1.0),
        "create": st.floats(0.0, 0.5),
        "leave": st.floats(0.0, 0.6),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    p=programs,
    n=st.integers(1, 6),
    seed=st.integers(0, 2**32),
    stop=st.integers(2, 12),
    shuffles=st.lists(st.integers(0, 2**32), min_size=1, max_size=2),
    mode=st.sampled_from(["reproducible", "ergodic"]),
)
def test_run_order_inside_a_diasca_does_not_change_the_digest(p, n, seed, stop, shuffles, mode):
    reference, stats = _digest(n, p, seed, stop, mode, None)
    for s in shuffles:
        digest, other = _digest(n, p, seed, stop, mode, s)
        assert digest == reference
        assert (other.messages, other.created, other.deleted) == (
            stats.messages,
            stats.created,
            stats.deleted,
        )


def test_the_property_has_teeth():
    """Programs do exercise creation, termination and messaging, and seeds matter."""
    p = {"fanout": 2, "ttl": 3, "plan": 0.9, "create": 0.4, "leave": 0.3}
    a, stats = _digest(5, p, 1, 12, "reproducible", None)
    assert stats.created > 0 and stats.deleted > 0 and stats.messages > 0
    b, _ = _digest(5, p, 2, 12, "reproducible", None)
    assert a != b
