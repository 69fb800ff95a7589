"""The waste truck: Sim-Diasca's loading / unloading state machine on the road graph.

A truck carries one waste type at a time, up to 11 t (kept in kg). Empty, it
goes to load: at the nearest waste source, or incinerator (bottom ash). Loaded,
it goes on loading with probability 1/3 while not full, and otherwise goes to
unload: incinerable waste at the nearest incinerator or landfill, ash at the
nearest landfill. "Nearest" is by breadth-first search over the road graph from
where the truck is. Sim-Diasca's truck asks points for their outbound roads by
message; here the road graph is static and every rank holds it, so the truck
searches it itself, with the same result and fewer messages. A point that
refuses (nothing to give, no room, wrong type) is avoided until the truck's
next success; when every compatible point has refused, the truck waits
``WAIT_S`` and starts afresh. Loading takes (3 + 2m) min, unloading (2 + m)
min, m in tonnes. Sim-Diasca's opportunistic stops at points passed on the way
are not modelled.

Moving: the truck sends ``drive_in`` to the first road of its path; the road
hands it to its target point at the exit tick, and the point answers
``on_entered``; the truck then takes the next road, or arrives.
"""

from __future__ import annotations

from engine import Actor

from ._check import check_scenario
from ._layout import TRUCK, is_kind, layout, nearest, whoami
from .scales import INCINERATOR, INDUSTRIAL, LANDFILL, RESIDENTIAL
from .waste import ASH, to_ticks

CAPACITY_KG = 11_000
WAIT_S = 600.0
MORE_LOAD_PROBABILITY = 1 / 3
STATES = ("idle", "driving", "loading", "unloading", "waiting")
IDLE, DRIVING, LOADING, UNLOADING, WAITING = range(len(STATES))
LOAD, UNLOAD = 0, 1


class WasteTruck(Actor):
    """A truck moving waste from sources to incinerators and landfills."""

    _code = TRUCK
    check_scenario = staticmethod(check_scenario)  # the runtime checks the entries first

    def __init__(self, city: str = "tiny:1", districts: int = 1, first: int = 1) -> None:
        lay, t = whoami(city, districts, self.aai - first, TRUCK)
        self.city, self.districts, self.first = city, districts, first
        self.truck = t
        self.at = int(lay.city.truck_start[t])  # point index
        self.cargo_type = -1
        self.cargo = 0
        self.intent = LOAD
        self.dest = -1
        self.path: list[int] = []  # road indices still to drive
        self.avoid: list[int] = []
        self.state = IDLE
        self.collected = 0
        self.delivered = 0
        self.trips = 0

    def on_first_diasca(self) -> None:
        self.declare_probe("truck.state", labels=None, plot="")
        self.declare_probe("truck.cargo", unit="kg", plot="bands")
        self.record("truck.state", self.state)
        self._decide()

    def _set_state(self, state: int) -> None:
        if state != self.state:
            self.state = state
            self.record("truck.state", state)

    def _wanted(self) -> tuple[int, ...]:
        if self.intent == LOAD:
            if self.cargo == 0:
                return (INCINERATOR, INDUSTRIAL, RESIDENTIAL)
            return (INCINERATOR,) if self.cargo_type == ASH else (INDUSTRIAL, RESIDENTIAL)
        return (LANDFILL,) if self.cargo_type == ASH else (INCINERATOR, LANDFILL)

    def _decide(self) -> None:
        lay = layout(self.city, self.districts)
        found = nearest(lay, self.at, is_kind(lay, self._wanted()), set(self.avoid))
        if found is None:
            self.avoid = []
            self._set_state(WAITING)
            self.schedule_in(to_ticks(WAIT_S))
            return
        self.dest, self.path = found
        if self.path:
            self._set_state(DRIVING)
            self.trips += 1
            self._drive(lay)
        else:
            self._arrive(lay)

    def _drive(self, lay) -> None:
        road = self.path.pop(0)
        self.send(self.first + int(lay.road_aai[road]), "drive_in")

    def _arrive(self, lay) -> None:
        self._set_state(IDLE)
        point = self.first + int(lay.point_aai[self.dest])
        if self.intent == LOAD:
            kind = -1 if self.cargo == 0 else self.cargo_type
            self.send(point, "collect", CAPACITY_KG - self.cargo, kind)
        else:
            self.send(point, "unload", self.cargo_type, self.cargo)

    def on_entered(self, point: int, index: int) -> None:
        """The truck left a road onto point ``index``."""
        self.at = index
        lay = layout(self.city, self.districts)
        if self.path:
            self._drive(lay)
        else:
            self._arrive(lay)

    def on_loaded(self, point: int, waste_type: int, kg: int) -> None:
        if kg == 0:
            self.avoid.append(self.at)
            self._decide()
            return
        self.cargo += kg
        self.cargo_type = waste_type
        self.collected += kg
        self.record("truck.cargo", self.cargo)
        self._set_state(LOADING)
        self.schedule_in(to_ticks((3 + 2 * kg / 1000) * 60))

    def on_unloaded(self, point: int, kg: int) -> None:
        if kg == 0:
            self.avoid.append(self.at)
            self._decide()
            return
        self.cargo -= kg
        self.delivered += kg
        if self.cargo == 0:
            self.cargo_type = -1
        self.record("truck.cargo", self.cargo)
        self._set_state(UNLOADING)
        self.schedule_in(to_ticks((2 + kg / 1000) * 60))

    def act_spontaneous(self) -> None:
        if self.state == LOADING:
            more = self.cargo < CAPACITY_KG and self.random.random() < MORE_LOAD_PROBABILITY
            self.intent = LOAD if more else UNLOAD
            self.avoid = [self.at] if more else []
        elif self.state == UNLOADING:
            self.intent = UNLOAD if self.cargo else LOAD
            self.avoid = [self.at] if self.cargo else []
        self._decide()
