"""Roads and junctions: Sim-Diasca's road model, FIFO, slower when loaded or in the rain.

A vehicle drives in by the message ``drive_in(truck)``. The road counts it,
computes the load (vehicles on the road, this one included, over the capacity)
and the speed ``5 + (Vmax - 5) * exp(-load / 45)`` km/h (``Vmax`` the road's
maximum average speed, at least 6), slowed by ``RAIN_SPEED_FACTOR`` while the
weather cell under the road's middle rains. The transit time, length over
speed, becomes 5 s ticks (at least one). Roads are FIFO: a vehicle that would
leave before the one ahead of it leaves at that one's exit tick + 1 +
gaussPosInt(ticks * load, 2). At the exit tick the road hands each leaving
vehicle to its target point (``vehicle_in``), which lets it go on
(``on_entered``).
"""

from __future__ import annotations

import math

from engine import Actor

from ._check import check_scenario
from ._layout import CLASSES, ROAD, whoami
from .scales import WEATHER_CELL_M
from .waste import _Point, gauss_pos_int, to_ticks
from .weather import RAIN_Z

LOAD_FACTOR = 45.0  # Sim-Diasca's load_factor
MIN_SPEED_KMH = 5.0
RAIN_SPEED_FACTOR = 0.7  # speed kept in the rain


class RoadJunction(_Point):
    """A passive point where roads meet: it knows its roads through the city's graph."""

    _code = CLASSES.index("RoadJunction")


class Road(Actor):
    """A one-way road from one point of interest to another."""

    _code = ROAD
    check_scenario = staticmethod(check_scenario)  # the runtime checks the entries first

    def __init__(
        self, city: str = "tiny:1", districts: int = 1, first: int = 1, weather: str = "weather"
    ) -> None:
        lay, r = whoami(city, districts, self.aai - first, ROAD)
        c = lay.city
        self.road = r
        self.source = first + int(lay.point_aai[c.road_source[r]])
        self.target = first + int(lay.point_aai[c.road_target[r]])
        self.length = float(c.road_length[r])
        self.capacity = int(c.road_capacity[r])
        self.max_speed = max(MIN_SPEED_KMH + 1, float(c.road_max_speed[r]))
        mid = (c.xy[c.road_source[r]] + c.xy[c.road_target[r]]) / 2
        rows, cols = c.spec.weather_shape
        self.cell = (
            min(rows - 1, int(mid[1] // WEATHER_CELL_M)),
            min(cols - 1, int(mid[0] // WEATHER_CELL_M)),
        )
        self.weather = weather
        self.vehicles = 0
        self.queue: list[list] = []  # [exit tick, [truck AAIs]], exit ticks increasing
        self.passed = 0
        self.rainy_entries = 0

    def on_first_diasca(self) -> None:
        self.declare_probe("road.load", unit="vehicles / capacity", plot="bands")
        if self.weather:
            self.population(self.weather).watch("z", self.cell)

    def _raining(self) -> bool:
        if not self.weather or self.tick == 0:  # a watched cell is readable from tick 1 on
            return False
        return self.population(self.weather).value("z", self.cell) > RAIN_Z

    def drive_in(self, truck: int) -> None:
        """A vehicle enters: plan its exit, after the vehicle ahead of it."""
        self.vehicles += 1
        load = self.vehicles / self.capacity
        speed = MIN_SPEED_KMH + (self.max_speed - MIN_SPEED_KMH) * math.exp(-load / LOAD_FACTOR)
        if self._raining():
            speed *= RAIN_SPEED_FACTOR
            self.rainy_entries += 1
        ticks = to_ticks(self.length / (speed / 3.6))
        leave = self.tick + ticks
        queue = self.queue
        if queue and queue[-1][0] > leave:  # no overtaking
            leave = queue[-1][0] + 1 + gauss_pos_int(self.random, ticks * load, 2.0)
        if queue and queue[-1][0] == leave:
            queue[-1][1].append(truck)
        else:
            queue.append([leave, [truck]])
            self.add_spontaneous_tick(leave)
        self.record("road.load", load)

    def act_spontaneous(self) -> None:
        leave, trucks = self.queue.pop(0)
        for truck in trucks:
            self.send(self.target, "vehicle_in", truck)
        self.vehicles -= len(trucks)
        self.passed += len(trucks)
        self.record("road.load", self.vehicles / self.capacity)
