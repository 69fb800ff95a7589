"""The per-rank agenda: which local actors planned which future tick."""

from __future__ import annotations

from heapq import heappop, heappush


class Agenda:
    """Planned ticks of the local actors.

    A dict maps each planned tick to the set of AAIs that planned it, and a heap
    gives the smallest tick. Withdrawn ticks leave stale heap entries that are
    dropped when they reach the top, so planning and withdrawing stay O(log n).
    """

    __slots__ = ("_by_tick", "_heap")

    def __init__(self) -> None:
        self._by_tick: dict[int, set[int]] = {}
        self._heap: list[int] = []

    def plan(self, tick: int, aai: int) -> None:
        actors = self._by_tick.get(tick)
        if actors is None:
            self._by_tick[tick] = {aai}
            heappush(self._heap, tick)
        else:
            actors.add(aai)

    def withdraw(self, tick: int, aai: int) -> bool:
        """Remove one plan; False when ``aai`` had not planned ``tick``."""
        actors = self._by_tick.get(tick)
        if actors is None or aai not in actors:
            return False
        actors.remove(aai)
        if not actors:
            del self._by_tick[tick]
        return True

    def remove_actor(self, aai: int) -> None:
        """Forget every plan of an actor that is leaving the simulation."""
        for tick in [t for t, actors in self._by_tick.items() if aai in actors]:
            self.withdraw(tick, aai)

    def next_tick(self) -> int | None:
        """The smallest planned tick, or None when nothing is planned."""
        heap, by_tick = self._heap, self._by_tick
        while heap and heap[0] not in by_tick:
            heappop(heap)
        return heap[0] if heap else None

    def pop(self, tick: int) -> set[int]:
        """Take the actors that planned ``tick`` (it must be the smallest planned tick)."""
        actors = self._by_tick.pop(tick, set())
        heap = self._heap
        while heap and heap[0] <= tick:
            heappop(heap)
        return actors

    def __len__(self) -> int:
        return sum(len(a) for a in self._by_tick.values())
