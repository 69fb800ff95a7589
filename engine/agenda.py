"""The per-rank agenda: which local actors planned which future tick."""

from __future__ import annotations

from heapq import heappop, heappush


class Agenda(dict):
    """Planned ticks of the local actors: each tick maps to the set of AAIs that planned it.

    Planning is ``agenda[tick].add(aai)``: a tick not planned yet gets its set
    and enters the heap that gives the smallest planned tick, so planning costs
    no Python call. Withdrawn ticks leave stale heap entries that are dropped
    when they reach the top, so planning and withdrawing stay O(log n). Read
    with ``get``: looking a tick up with ``[]`` plans it.
    """

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[int] = []

    def __missing__(self, tick: int) -> set[int]:
        actors = self[tick] = set()
        heappush(self._heap, tick)
        return actors

    def withdraw(self, tick: int, aai: int) -> bool:
        """Remove one plan; False when ``aai`` had not planned ``tick``."""
        actors = self.get(tick)
        if actors is None or aai not in actors:
            return False
        actors.remove(aai)
        if not actors:
            del self[tick]
        return True

    def remove_actor(self, aai: int) -> None:
        """Forget every plan of an actor that is leaving the simulation."""
        for tick in [t for t, actors in self.items() if aai in actors]:
            self.withdraw(tick, aai)

    def next_tick(self) -> int | None:
        """The smallest planned tick, or None when nothing is planned."""
        heap = self._heap
        while heap and heap[0] not in self:
            heappop(heap)
        return heap[0] if heap else None

    def take(self, tick: int) -> set[int]:
        """Take the actors that planned ``tick`` (it must be the smallest planned tick)."""
        actors = self.pop(tick, set())
        heap = self._heap
        while heap and heap[0] <= tick:
            heappop(heap)
        return actors

    def plans(self) -> int:
        """How many (tick, actor) plans there are."""
        return sum(map(len, self.values()))
