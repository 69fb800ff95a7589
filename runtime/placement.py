"""The load balancer: which rank each actor lives on.

Every rank builds the same placement object and the kernel calls its ``place``
for every actor, in the same order on every rank: initial actors in AAI order,
then the actors created at run time in canonical order. So each decision is a
pure function of that call sequence. Nothing here reads the rank number, a
clock, Python's salted ``hash()`` of strings, or the iteration order of a set
of objects. Where randomness would help (hints) a stable hash stands in.

Ranks form s_groups (``runtime.sgroups``). Every policy picks a group first,
then a rank of it.

Policies (see ``docs/clusters.md``):

- ``round_robin``: AAIs go round the groups, then round each group's ranks.
- ``hint``: a stable hash of the hint picks the rank; no hint, round robin.
- ``least_loaded``: greedy by declared weights, group first, then rank.
- ``graph``: the initial actors' reference graph is partitioned with METIS,
  into groups, then each group into its ranks; actors created at run time
  join their creator's rank until it holds too many.

Where actors are placed never changes results (AAIs, generators and message
order do not depend on it), only speed.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from array import array
from typing import TYPE_CHECKING, Any

from engine.transport import Placement

from .sgroups import SGroups

if TYPE_CHECKING:
    import numpy as np

    from .scenario import Scenario

POLICIES = ("round_robin", "hint", "least_loaded", "graph")

# METIS draws random numbers; a fixed seed makes its partition a function of the
# graph alone (for one METIS build: all ranks of a run must share an installation).
METIS_SEED = 4242
# After METIS, each part holds its quota of vertices within this many percent
# (rounded down to whole vertices); a repair pass enforces it.
BALANCE_PERCENT = 3
# A creator's rank keeps the actors it creates while it holds at most
# ceil(OVERLOAD * mean) actors (graph policy).
OVERLOAD_NUM, OVERLOAD_DEN = 11, 10


def make_placement(
    policy: str, *, size: int, group_size: int | None, scenario: Scenario | None = None
) -> Placement:
    """The placement object for ``policy``; ``group_size`` None means one group of all ranks.

    ``scenario`` gives ``least_loaded`` its ``[placement] weights`` and ``graph``
    the references between initial actors; without it they use class weights
    only, and round robin for initial actors, respectively.
    """
    cls = _POLICY_CLASSES.get(policy)
    if cls is None:
        raise ValueError(
            f"unknown placement policy {policy!r}; the policies: {', '.join(POLICIES)}"
        )
    group_size = size if group_size is None else group_size
    return cls(size=size, group_size=group_size, scenario=scenario)


class _Placement:
    """What every policy shares: groups, per-rank counts, the round-robin cycle."""

    policy = ""

    def __init__(self, *, size: int, group_size: int, scenario: Scenario | None = None) -> None:
        self.sgroups = sgroups = SGroups(size, group_size)
        self.groups = list(sgroups.groups)
        self.size = size
        self.group_size = sgroups.group_size
        self.group_of_rank = [sgroups.group_of(r) for r in range(size)]  # a list: fast to index
        self.counts = [0] * size
        self.loads: list = self.counts  # per-rank load; least_loaded keeps weights here
        # One lap of round robin: the first rank of every group, then the second of
        # every group, and so on. Each rank appears once per lap, and consecutive
        # entries are in different groups while at least two groups have ranks left.
        self.cycle = [
            ranks[j] for j in range(self.group_size) for ranks in self.groups if j < len(ranks)
        ]

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        raise NotImplementedError

    def actors_per_rank(self) -> list[int]:
        """Actors placed on each rank so far (deletions are not seen by the placement)."""
        return list(self.counts)

    def actors_per_group(self) -> list[int]:
        return self.sgroups.per_group(self.counts)

    def fingerprint(self) -> str:
        """A digest of the decisions' outcome: equal on every rank of a sound run."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{self.policy}/{self.size}/{self.group_size}:".encode())
        digest.update(repr(self.counts).encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, group_size={self.group_size})"


class RoundRobinPlacement(_Placement):
    """AAI ``a`` goes to ``cycle[(a - 1) % size]``: round the groups, then their ranks.

    With one group (``group_size >= size``) this is rank ``(a - 1) % size``.
    """

    policy = "round_robin"

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        rank = self.cycle[(aai - 1) % self.size]
        self.counts[rank] += 1
        return rank


def hint_key(hint: Any) -> bytes:
    """A canonical encoding of a hint: the same bytes in every process.

    Strings, whole numbers, booleans, floats, bytes and tuples or lists of these
    are accepted; a type tag keeps ``1``, ``"1"`` and ``True`` apart.
    """
    if type(hint) is str:
        return b"s" + hint.encode("utf-8", "surrogatepass")
    if type(hint) is bool:
        return b"b1" if hint else b"b0"
    if isinstance(hint, int):
        return b"i" + str(int(hint)).encode()
    if isinstance(hint, float):
        return b"f" + float(hint).hex().encode()
    if isinstance(hint, bytes):
        return b"y" + hint
    if isinstance(hint, tuple | list):
        parts = [hint_key(item) for item in hint]
        return b"t" + b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    raise TypeError(
        f"placement hint {hint!r} of type {type(hint).__name__} has no stable encoding; "
        f"use a string or a whole number"
    )


class HintPlacement(_Placement):
    """Same hint, same rank: a blake2b hash of the hint picks the group, then the rank.

    Groups are picked in proportion to their number of ranks, so a smaller last
    group gets its share only. Actors without a hint go round robin, counted
    among themselves.
    """

    policy = "hint"

    def __init__(self, *, size: int, group_size: int, scenario: Scenario | None = None) -> None:
        super().__init__(size=size, group_size=group_size, scenario=scenario)
        self._unhinted = 0
        self._cache: dict[tuple[type, Any], int] = {}

    def rank_of_hint(self, hint: Any) -> int:
        """The rank every actor with this hint goes to."""
        digest = hashlib.blake2b(hint_key(hint), digest_size=16, person=b"pydiasca-hint").digest()
        spot = int.from_bytes(digest[:8], "big") % self.size
        ranks = self.groups[self.group_of_rank[spot]]
        return ranks.start + int.from_bytes(digest[8:], "big") % len(ranks)

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        if hint is None:
            rank = self.cycle[self._unhinted % self.size]
            self._unhinted += 1
        elif type(hint) in (str, int):
            key = (type(hint), hint)  # the type keeps 1 and "1" apart; True is not int here
            rank = self._cache.get(key)
            if rank is None:
                rank = self._cache[key] = self.rank_of_hint(hint)
        else:
            rank = self.rank_of_hint(hint)
        self.counts[rank] += 1
        return rank


def class_weight(cls: type, weights: dict[type, float] | None = None) -> float:
    """An actor's weight: ``[placement] weights``, else the class's ``weight``, else 1.0.

    A class attribute ``weight`` counts only when it is a number; it must then
    be finite and > 0.
    """
    if weights and cls in weights:
        return float(weights[cls])
    value = getattr(cls, "weight", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"{cls.__module__}.{cls.__qualname__}.weight is {value!r}; "
                f"a placement weight must be a finite number > 0"
            )
        return float(value)
    return 1.0


class LeastLoadedPlacement(_Placement):
    """Greedy by weight: the group with the least weight per rank, then its lightest rank.

    Ties go to the lowest group, then the lowest rank. With groups of equal
    size, the least weight per rank is the least total weight. ``loads`` holds
    the total weight placed on each rank.
    """

    policy = "least_loaded"

    def __init__(self, *, size: int, group_size: int, scenario: Scenario | None = None) -> None:
        super().__init__(size=size, group_size=group_size, scenario=scenario)
        self._weights = dict(scenario.weights) if scenario is not None else {}
        self._weight_of: dict[type, float] = {}
        self.loads = [0.0] * size
        self._group_totals = [0.0] * len(self.groups)
        # Heaps of (load, index): the lowest load first, ties to the lowest index.
        # Only the popped entry's load ever changes, so entries are never stale.
        self._group_heap = [(0.0, g) for g in range(len(self.groups))]
        self._rank_heaps = [[(0.0, r) for r in ranks] for ranks in self.groups]

    def weight(self, cls: type) -> float:
        weight = self._weight_of.get(cls)
        if weight is None:
            weight = self._weight_of[cls] = class_weight(cls, self._weights)
        return weight

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        weight = self.weight(cls)
        _, g = heapq.heappop(self._group_heap)
        total = self._group_totals[g] = self._group_totals[g] + weight
        heapq.heappush(self._group_heap, (total / len(self.groups[g]), g))
        heap = self._rank_heaps[g]
        load, rank = heapq.heappop(heap)
        heapq.heappush(heap, (load + weight, rank))
        self.loads[rank] = load + weight
        self.counts[rank] += 1
        return rank

    def weights_per_group(self) -> list[float]:
        return list(self._group_totals)


class GraphPlacement(_Placement):
    """Co-locate actors that reference each other.

    Initial actors: the scenario's ``@id`` references make an undirected graph
    (vertex = initial actor, edge = one instance's args naming another), which
    METIS cuts into one part per group, balanced in vertices in proportion to
    the groups' sizes; each group's subgraph is then cut into one part per rank.
    A graph (or subgraph) without edges is cut into contiguous blocks instead:
    rank ``r`` gets the ``r``-th of ``size`` near-equal consecutive runs of AAIs.

    Actors created at run time go to their creator's rank, unless it holds more
    than ceil(1.1 * mean) actors; then to the least-loaded rank of the creator's
    group, unless that one is over the limit too; then to the least-loaded rank
    of all. Ties go to the lowest rank.
    """

    policy = "graph"

    def __init__(self, *, size: int, group_size: int, scenario: Scenario | None = None) -> None:
        super().__init__(size=size, group_size=group_size, scenario=scenario)
        self.initial = self._partition(scenario) if scenario is not None else array("i")
        self._rank_of = array("i", [-1])  # by AAI, slot 0 unused
        self._total = 0

    def _partition(self, scenario: Scenario) -> array:
        n = sum(entry.count for entry in scenario.actors)
        if n == 0:
            return array("i")
        if self.size == 1:
            return array("i", bytes(4 * n))
        xadj, adjncy = reference_graph(scenario)
        ranks = partition_hierarchically(xadj, adjncy, self.groups)
        return array("i", ranks.astype("int32").tobytes())

    def place(self, aai: int, cls: type, hint: Any, creator: int) -> int:
        rank_of, counts = self._rank_of, self.counts
        if creator == 0 and aai <= len(self.initial):
            rank = self.initial[aai - 1]
        elif 0 < creator < len(rank_of):
            rank = rank_of[creator]
            limit = -(-OVERLOAD_NUM * self._total // (OVERLOAD_DEN * self.size))
            if counts[rank] > limit:
                ranks = self.groups[self.group_of_rank[rank]]
                rank = min(ranks, key=counts.__getitem__)
                if counts[rank] > limit:
                    rank = min(range(self.size), key=counts.__getitem__)
        else:  # an initial actor the scenario did not declare
            rank = self.cycle[(aai - 1) % self.size]
        while len(rank_of) < aai:  # AAIs are dense and increasing; this is a guard
            rank_of.append(-1)
        if len(rank_of) == aai:
            rank_of.append(rank)
        else:
            rank_of[aai] = rank
        counts[rank] += 1
        self._total += 1
        return rank

    def fingerprint(self) -> str:
        """Also covers the initial partition, the one input an installation could change."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(super().fingerprint().encode())
        digest.update(self.initial.tobytes())
        return digest.hexdigest()


_POLICY_CLASSES = {
    "round_robin": RoundRobinPlacement,
    "hint": HintPlacement,
    "least_loaded": LeastLoadedPlacement,
    "graph": GraphPlacement,
}


# --- graph partitioning ----------------------------------------------------------


def reference_graph(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """The initial actors' undirected reference graph in CSR form (vertex = AAI - 1).

    Every instance of an entry is linked to every AAI in the entry's ``refs``;
    self-references and repeated links are dropped. Neighbours are sorted.
    """
    import numpy as np

    n = sum(entry.count for entry in scenario.actors)
    sources, targets = [], []
    for entry in scenario.actors:
        if entry.count == 0 or not entry.refs:
            continue
        instances = np.arange(entry.first_aai - 1, entry.first_aai - 1 + entry.count)
        for ref in entry.refs:
            sources.append(instances)
            targets.append(np.full(entry.count, ref - 1))
    if not sources:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    src = np.concatenate(sources).astype(np.int64)
    dst = np.concatenate(targets).astype(np.int64)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    keys = np.concatenate([src * n + dst, dst * n + src])  # both directions
    keys.sort()
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # sorted, each link once
    src, dst = keys // n, keys % n
    xadj = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=xadj[1:])
    return xadj, dst


def partition_hierarchically(
    xadj: np.ndarray, adjncy: np.ndarray, groups: list[range]
) -> np.ndarray:
    """The rank of every vertex: cut into the groups, then each group into its ranks."""
    import numpy as np

    n = len(xadj) - 1
    group_of = split(xadj, adjncy, [len(ranks) for ranks in groups])
    ranks = np.empty(n, dtype=np.int64)
    # Each group's vertices, ascending, and their index inside the group.
    order = np.argsort(group_of, kind="stable")
    sizes = np.bincount(group_of, minlength=len(groups))
    starts = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    local = np.empty(n, dtype=np.int64)
    local[order] = np.arange(n) - np.repeat(starts[:-1], sizes)
    # The edges inside each group, grouped by group, still sorted by (source, target).
    src = np.repeat(np.arange(n), np.diff(xadj))
    inside = group_of[src] == group_of[adjncy]
    src, dst = src[inside], adjncy[inside]
    by_group = np.argsort(group_of[src], kind="stable")
    src, dst = src[by_group], dst[by_group]
    edge_starts = np.searchsorted(group_of[src], np.arange(len(groups) + 1))
    for g, members in enumerate(groups):
        vertices = order[starts[g] : starts[g + 1]]
        if len(members) == 1:
            ranks[vertices] = members.start
            continue
        lo, hi = edge_starts[g], edge_starts[g + 1]
        sub_xadj = np.zeros(len(vertices) + 1, dtype=np.int64)
        np.cumsum(np.bincount(local[src[lo:hi]], minlength=len(vertices)), out=sub_xadj[1:])
        parts = split(sub_xadj, local[dst[lo:hi]], [1] * len(members))
        ranks[vertices] = members.start + parts
    return ranks


def quotas_of(n: int, shares: list[int]) -> list[int]:
    """``n`` split in proportion to ``shares``, as consecutive whole blocks."""
    total, bounds, before = sum(shares), [], 0
    for share in [0, *shares]:
        before += share
        bounds.append(n * before // total)
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def split(xadj: np.ndarray, adjncy: np.ndarray, shares: list[int]) -> np.ndarray:
    """Part of each vertex, parts sized in proportion to ``shares``, few edges cut.

    No edges, or no more vertices than parts: contiguous blocks in vertex order.
    Otherwise METIS (fixed seed), then :func:`rebalance` to the quotas.
    """
    import numpy as np

    n, k = len(xadj) - 1, len(shares)
    quotas = quotas_of(n, shares)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    if n <= k or len(adjncy) == 0:
        return np.repeat(np.arange(k, dtype=np.int64), quotas)
    import pymetis

    total = sum(shares)
    tpwgts = None if len(set(shares)) == 1 else [s / total for s in shares]
    result = pymetis.part_graph(
        k,
        pymetis.CSRAdjacency(
            np.ascontiguousarray(xadj, dtype=np.int64), np.ascontiguousarray(adjncy, np.int64)
        ),
        tpwgts=tpwgts,
        recursive=k <= 8,
        options=pymetis.Options(seed=METIS_SEED),
    )
    parts = np.asarray(result.vertex_part, dtype=np.int64)
    return rebalance(parts, xadj, adjncy, quotas)


def rebalance(
    parts: np.ndarray, xadj: np.ndarray, adjncy: np.ndarray, quotas: list[int]
) -> np.ndarray:
    """Move vertices until every part is within BALANCE_PERCENT of its quota.

    Each step moves, from the part most over its quota to the one most under,
    the vertices with the most neighbours in the target and the fewest in the
    source (ties: lowest vertex). Deterministic; a no-op when METIS balanced.
    """
    import numpy as np

    k, n = len(quotas), len(parts)
    quota = np.asarray(quotas, dtype=np.int64)
    slack = quota * BALANCE_PERCENT // 100  # rounded down: exact quotas for small parts
    high, low = quota + slack, quota - slack
    counts = np.bincount(parts, minlength=k)
    src = None
    while True:
        over, under = counts - high, low - counts
        if over.max() <= 0 and under.max() <= 0:
            return parts
        a = int(np.argmax(over)) if over.max() > 0 else int(np.argmax(counts - quota))
        b = int(np.argmax(under)) if under.max() > 0 else int(np.argmin(counts - quota))
        moves = int(min(counts[a] - quota[a], quota[b] - counts[b]))
        if src is None:
            src = np.repeat(np.arange(n), np.diff(xadj))
        near = parts[adjncy]
        in_a = parts[src] == a
        gain = np.bincount(
            src[in_a], weights=(near[in_a] == b).astype(np.int64) - (near[in_a] == a), minlength=n
        )
        candidates = np.flatnonzero(parts == a)
        chosen = candidates[np.lexsort((candidates, -gain[candidates]))[:moves]]
        parts[chosen] = b
        counts[a] -= moves
        counts[b] += moves
