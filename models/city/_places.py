"""Where the points of interest go: uniform in the square, kept apart by minimum distances.

Sim-Diasca draws one point at a time and compares it with every point placed so
far (a linear scan). Here each round draws one candidate for every point still
to place, and checks all of them at once against KD-trees: one per kind placed
before, one for the points of this kind already accepted, and one over the
round's own candidates (of two too close, the later one is drawn again). A point that cannot
be placed in ``MAX_TRIES`` tries stops generation with one clear error.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .scales import KINDS, MAX_TRIES


class GenerationError(Exception):
    """The city cannot be generated as asked (too many points for its area)."""


def place_points(
    rng: np.random.Generator, counts: np.ndarray, side: float, required: np.ndarray
) -> np.ndarray:
    """Positions ``(n, 2)`` in metres, kind after kind in ``KINDS`` order.

    ``required[a, b]`` is the minimum distance between a point of kind ``a`` and
    one of kind ``b``; two points closer than that are never both kept.
    """
    placed: list[np.ndarray] = []
    trees: list[cKDTree | None] = []
    for kind, count in enumerate(counts):
        xy = _place_kind(rng, int(count), side, kind, required, placed, trees)
        placed.append(xy)
        trees.append(cKDTree(xy) if len(xy) else None)
    return np.concatenate(placed) if placed else np.empty((0, 2))


def _place_kind(
    rng: np.random.Generator,
    count: int,
    side: float,
    kind: int,
    required: np.ndarray,
    placed: list[np.ndarray],
    trees: list[cKDTree | None],
) -> np.ndarray:
    accepted = np.empty((count, 2))
    done = 0
    rounds = 0
    same = float(required[kind, kind])
    while done < count:
        want = count - done
        cand = rng.uniform(0.0, side, size=(want, 2))
        ok = np.ones(want, dtype=bool)
        for other, tree in enumerate(trees):  # kinds placed before this one
            if tree is not None:
                dist, _ = tree.query(cand, k=1, distance_upper_bound=required[kind, other])
                ok &= ~np.isfinite(dist) | (dist >= required[kind, other])
        if done:
            dist, _ = cKDTree(accepted[:done]).query(cand, k=1, distance_upper_bound=same)
            ok &= ~np.isfinite(dist) | (dist >= same)
        ok = _first_come(cand, ok, same)
        good = cand[ok]
        accepted[done : done + len(good)] = good
        done += len(good)
        # Every point still missing draws one candidate per round: after MAX_TRIES
        # rounds, each of them has been refused MAX_TRIES times.
        rounds += 1
        if done < count and rounds >= MAX_TRIES:
            raise GenerationError(
                f"cannot place {KINDS[kind]} {done + 1} of {count} after {MAX_TRIES:,} tries: "
                f"the {side / 1000:,.2f} km square is too crowded for its minimum distances"
            )
    return accepted


def _first_come(cand: np.ndarray, ok: np.ndarray, same: float) -> np.ndarray:
    """Drop each candidate closer than ``same`` to an earlier candidate still in the running.

    Of two kept candidates, the earlier one was in the running, so the later one
    would have been dropped: kept candidates are pairwise far enough apart. The
    earliest candidate in the running is always kept, so each round progresses.
    """
    if len(cand) < 2:
        return ok
    pairs = cKDTree(cand).query_pairs(same, output_type="ndarray")
    if len(pairs) == 0:
        return ok
    first, later = pairs.min(axis=1), pairs.max(axis=1)
    # query_pairs keeps pairs at distance <= same; too close is < same.
    close = np.hypot(*(cand[first] - cand[later]).T) < same
    keep = ok.copy()
    keep[later[close & ok[first]]] = False
    return keep
