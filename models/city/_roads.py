"""The road network: Sim-Diasca's proximity links, forced connectivity, then island repair.

1. Each junction gets ``min(5, 1 + gaussPosInt(2, 2))`` roads in, from its
   nearest points of interest, and one road out, to its nearest one.
2. Every other point with no road in or no road out gets one: the reverse of a
   road it has, or a two-way road with its nearest point when it has none.
3. Sim-Diasca stops there, and islands may remain. We go on: the islands
   (strongly connected components other than the largest) that nothing enters
   get a road in from the largest one, those that nothing leaves get a road out
   to it, always between nearest points. The whole network then is one strongly
   connected component: every point reaches, and is reached from, every
   incinerator and landfill.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from ._places import GenerationError
from .scales import JUNCTION, MAX_SPEED_KMH

MAX_IN_DEGREE = 5


def gauss_pos_int(
    rng: np.random.Generator, mu: np.ndarray | float, sigma: float, size: int
) -> np.ndarray:
    """Sim-Diasca's gaussPosInt: round(N(mu, sigma)), drawn again until it is >= 0."""
    mu = np.broadcast_to(np.asarray(mu, dtype=np.float64), (size,))
    out = np.floor(rng.normal(mu, sigma) + 0.5)
    bad = np.flatnonzero(out < 0)
    while len(bad):
        out[bad] = np.floor(rng.normal(mu[bad], sigma) + 0.5)
        bad = bad[out[bad] < 0]
    return out.astype(np.int64)


def junction_degrees(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(in-degrees, out-degrees) wanted by ``count`` junctions.

    Sim-Diasca draws the out-degree as min(1, 1 + gaussPosInt(2, 2)), which is
    always 1: it is stored, not drawn.
    """
    inbound = np.minimum(MAX_IN_DEGREE, 1 + gauss_pos_int(rng, 2.0, 2.0, count))
    return inbound, np.ones(count, dtype=np.int64)


def _nearest_others(tree: cKDTree, xy: np.ndarray, points: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest points to each of ``points``, nearest first, never the point itself.

    Missing neighbours (fewer than ``k`` other points) read as -1.
    """
    n = len(xy)
    kk = min(k + 1, n)
    _, idx = tree.query(xy[points], k=kk)
    idx = idx.reshape(len(points), kk)
    self_last = np.argsort(idx == points[:, None], axis=1, kind="stable")
    idx = np.take_along_axis(idx, self_last, axis=1)[:, :k]
    idx = np.where((idx == points[:, None]) | (idx >= n), -1, idx)
    if idx.shape[1] < k:
        idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])), constant_values=-1)
    return idx


def junction_roads(
    tree: cKDTree, xy: np.ndarray, junctions: np.ndarray, inbound: np.ndarray, outbound: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(sources, targets) of the junctions' roads, junction by junction."""
    k = int(max(inbound.max(initial=0), outbound.max(initial=0)))
    near = _nearest_others(tree, xy, junctions, k)
    col = np.arange(k)
    take_in = (col < inbound[:, None]) & (near >= 0)
    take_out = (col < outbound[:, None]) & (near >= 0)
    both = np.broadcast_to(junctions[:, None], near.shape)
    # Per junction: its inbound roads, then its outbound ones (creation order).
    src = np.concatenate([near[take_in], both[take_out]])
    dst = np.concatenate([both[take_in], near[take_out]])
    order = np.argsort(
        np.concatenate([np.nonzero(take_in)[0] * 2, np.nonzero(take_out)[0] * 2 + 1]),
        kind="stable",
    )
    return src[order], dst[order]


def force_connectivity(
    tree: cKDTree, xy: np.ndarray, kind: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Roads to add so that every non-junction point has a road in and a road out."""
    n = len(xy)
    pois = np.flatnonzero(kind != JUNCTION)
    has_in = np.zeros(n, bool)
    has_out = np.zeros(n, bool)
    has_in[dst] = True
    has_out[src] = True
    # The first road (in creation order) leaving, or entering, each point.
    first_out = np.full(n, -1)
    first_in = np.full(n, -1)
    u, at = np.unique(src, return_index=True)
    first_out[u] = dst[at]
    u, at = np.unique(dst, return_index=True)
    first_in[u] = src[at]
    alone = pois[~has_in[pois] & ~has_out[pois]]
    out_only = pois[~has_in[pois] & has_out[pois]]
    in_only = pois[has_in[pois] & ~has_out[pois]]
    near = _nearest_others(tree, xy, alone, 1)[:, 0] if len(alone) else np.empty(0, np.int64)
    linked = near >= 0
    alone, near = alone[linked], near[linked]
    add_src = np.concatenate([alone, near, first_out[out_only], in_only])
    add_dst = np.concatenate([near, alone, out_only, first_in[in_only]])
    return add_src, add_dst


def unique_roads(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Roads without duplicates or loops, sorted by (source, target)."""
    key = np.unique(src.astype(np.int64) * n + dst.astype(np.int64))
    s, t = np.divmod(key, n)
    keep = s != t
    return s[keep], t[keep]


def components(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[int, np.ndarray]:
    """Strongly connected components of the road graph: (count, label per point)."""
    graph = csr_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    return connected_components(graph, directed=True, connection="strong")


def unreached(n: int, src: np.ndarray, dst: np.ndarray, sinks: np.ndarray) -> np.ndarray:
    """Points that cannot be reached from any of ``sinks``, or cannot reach any of them."""
    hub = n  # one extra node, linked both ways with every sink
    s = np.concatenate([src, np.full(len(sinks), hub), sinks])
    t = np.concatenate([dst, sinks, np.full(len(sinks), hub)])
    graph = csr_matrix((np.ones(len(s), np.int8), (s, t)), shape=(n + 1, n + 1))
    seen = np.zeros(n + 1, bool)
    seen[breadth_first_order(graph, hub, directed=True, return_predecessors=False)] = True
    back = np.zeros(n + 1, bool)
    back[breadth_first_order(graph.T.tocsr(), hub, directed=True, return_predecessors=False)] = True
    return np.flatnonzero(~(seen & back)[:n])


def repair_islands(
    xy: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(sources, targets, islands repaired): one strongly connected network.

    In the graph of strongly connected components (a DAG), every component is
    reached from one with no road in and reaches one with no road out. So a road
    from the largest component (ties: the lowest label) into each other
    component with no road in, and one from each other component with no road
    out back to it, join everything; each runs between the island's point
    nearest to the largest component and that nearest point.
    """
    n = len(xy)
    count, label = components(n, src, dst)
    if count <= 1:
        return src, dst, 0
    giant = int(np.argmax(np.bincount(label, minlength=count)))
    across = label[src] != label[dst]
    entered = np.zeros(count, bool)
    left = np.zeros(count, bool)
    entered[label[dst[across]]] = True
    left[label[src[across]]] = True
    entered[giant] = left[giant] = True
    inside = np.flatnonzero(label == giant)
    outside = np.flatnonzero(~(entered & left)[label])  # points of islands needing a road
    dist, nearest = cKDTree(xy[inside]).query(xy[outside], k=1)
    # Per island, its point nearest to the giant component (ties: lowest index).
    order = np.lexsort((outside, dist, label[outside]))
    first = order[np.unique(label[outside][order], return_index=True)[1]]
    island = label[outside[first]]
    a, b = outside[first], inside[nearest[first]]
    into, out_of = ~entered[island], ~left[island]
    src, dst = unique_roads(
        np.concatenate([src, b[into], a[out_of]]), np.concatenate([dst, a[into], b[out_of]]), n
    )
    if components(n, src, dst)[0] != 1:  # cannot happen, by the argument above
        raise GenerationError("island repair left the road network split; this is a bug")
    return src, dst, len(island)


def road_attributes(
    rng: np.random.Generator, xy: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(length m, capacity in vehicles, maximum average speed km/h) of each road.

    Length is Euclidean; capacity = 1 + gaussPosInt(length / 4 m, 2);
    speed = min(110, 30 + 80 * length_km / 10).
    """
    length = np.hypot(*(xy[dst] - xy[src]).T)
    capacity = 1 + gauss_pos_int(rng, length / 4.0, 2.0, len(length))
    speed = np.minimum(MAX_SPEED_KMH, 30.0 + 80.0 * (length / 1000.0) / 10.0)
    return length, capacity, speed
