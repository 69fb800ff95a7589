"""Where waste is made, burnt and buried: sources, incinerators and landfills.

Masses are whole kilograms (Sim-Diasca counts tonnes as floats), so that the
conservation of waste mass holds exactly: every kilogram produced is, at any
tick's end, in a source, on a truck, in an incinerator (tanks, burners, ash
tank), burnt, or in a landfill.

Waste types: 0 household and 1 industrial (incinerable; Sim-Diasca's burn rules
of its types 1 and 2) and 2 bottom ash (what incinerators leave; only landfills
take it).

Trucks talk to these points with two handlers, each answered at the next diasca:
``collect(truck, room_kg, waste_type)`` (``waste_type`` -1: any) answered by
``on_loaded(point, waste_type, kg)``, and ``unload(truck, waste_type, kg)``
answered by ``on_unloaded(point, kg_accepted)``.
"""

from __future__ import annotations

import math

from engine import Actor

from ._check import check_scenario
from ._layout import CLASSES, whoami

WASTE_TYPES = ("household", "industrial", "bottom_ash")
INCINERABLE = (0, 1)
ASH = 2
TICK_S = 5.0  # Sim-Diasca's City tick
ASH_PERCENT = (5, 25)  # bottom ash left per incinerable type, percent of the mass burnt
ASH_TANK_KG = 40_000
INCINERATOR_TANK_KG = 30_000


def gauss_pos_int(rng, mu: float, sigma: float) -> int:
    """Sim-Diasca's gaussPosInt: round(N(mu, sigma)), drawn again until it is >= 0."""
    while True:
        value = math.floor(rng.normal(mu, sigma) + 0.5)
        if value >= 0:
            return int(value)


def pos_int_exp(rng, rate: float) -> int:
    """Sim-Diasca's posIntExp: round(Exp(rate)), drawn again until it is >= 1."""
    while True:
        value = math.floor(rng.exponential(1.0 / rate) + 0.5)
        if value >= 1:
            return int(value)


def to_ticks(seconds: float) -> int:
    """Seconds to 5 s ticks, at least 1 (City durations are model figures, not exact)."""
    return max(1, round(seconds / TICK_S))


def _declare_waste_probe(actor: Actor, name: str) -> None:
    actor.declare_probe(name, unit="kg", labels=WASTE_TYPES, plot="sum")


class _Point(Actor):
    """A point of interest: its index in the city, its position and kind."""

    _code = -1
    check_scenario = staticmethod(check_scenario)  # the runtime checks the entries first

    def __init__(self, city: str = "tiny:1", districts: int = 1, first: int = 1) -> None:
        lay, index = whoami(city, districts, self.aai - first, self._code)
        self.city = city
        self.districts = districts
        self.first = first
        self.point = index
        self.x, self.y = (float(v) for v in lay.city.xy[index])
        self.passages = 0

    def vehicle_in(self, road: int, truck: int) -> None:
        """A truck leaves ``road`` onto this point: let it go on."""
        self.passages += 1
        self.send(truck, "on_entered", self.point)

    def collect(self, truck: int, room: int, waste_type: int) -> None:
        self.send(truck, "on_loaded", waste_type, 0)

    def unload(self, truck: int, waste_type: int, kg: int) -> None:
        self.send(truck, "on_unloaded", 0)


class _WasteSource(_Point):
    """Produces one incinerable type in cycles into a tank that saturates."""

    def _setup(self, quantity_kg: float, storage_kg: int, sigma_kg: float, cycle: int) -> None:
        self.waste_type = INCINERABLE[self.random.integers(0, len(INCINERABLE))]
        self.quantity = quantity_kg
        self.sigma = sigma_kg
        self.capacity = storage_kg
        self.cycle = cycle  # mean ticks between productions
        self.level = 0
        self.produced = 0
        self.lost = 0  # produced by the cycle but refused by a full tank (never counted)

    def on_first_diasca(self) -> None:
        _declare_waste_probe(self, "waste.produced")
        _declare_waste_probe(self, "waste.collected")
        self._plan()

    def _plan(self) -> None:
        self.schedule_in(max(1, round(self.random.exponential(self.cycle))))

    def act_spontaneous(self) -> None:
        made = round(abs(self.random.normal(self.quantity, self.sigma)))
        added = min(made, self.capacity - self.level)
        self.lost += made - added
        if added:
            self.level += added
            self.produced += added
            vec = [0, 0, 0]
            vec[self.waste_type] = added
            self.record("waste.produced", vec)
        self._plan()

    def collect(self, truck: int, room: int, waste_type: int) -> None:
        given = 0
        if waste_type in (-1, self.waste_type):
            given = min(room, self.level)
            self.level -= given
        if given:
            vec = [0, 0, 0]
            vec[self.waste_type] = given
            self.record("waste.collected", vec)
        self.send(truck, "on_loaded", self.waste_type, given)


class ResidentialWasteSource(_WasteSource):
    """Households: small quantities, a 3.5-day mean cycle."""

    _code = CLASSES.index("ResidentialWasteSource")

    def __init__(self, city: str = "tiny:1", districts: int = 1, first: int = 1) -> None:
        super().__init__(city, districts, first)
        rng = self.random
        quantity_t = max(0.01, rng.exponential(0.06))
        storage_t = 0.3 + pos_int_exp(rng, 0.2)
        self._setup(1000 * quantity_t, round(1000 * storage_t), 2000.0, to_ticks(3.5 * 86400))


class IndustrialWasteSource(_WasteSource):
    """Factories: larger quantities, a cycle of 2 h + about 6 h."""

    _code = CLASSES.index("IndustrialWasteSource")

    def __init__(self, city: str = "tiny:1", districts: int = 1, first: int = 1) -> None:
        super().__init__(city, districts, first)
        rng = self.random
        quantity_t = max(0.4, rng.exponential(1 / 0.5))
        storage_t = 20 + pos_int_exp(rng, 1 / 6)
        cycle_s = 2 * 3600 + gauss_pos_int(rng, 6 * 3600, 20_000)
        self._setup(1000 * quantity_t, round(1000 * storage_t), 1000.0, to_ticks(cycle_s))


def burn_seconds(waste_type: int, kg: int) -> float:
    """Sim-Diasca's burn times, m in t: 2.7 * 40 * sqrt(12 m) s (type 1), 5.8 * 40 * sqrt(4 m) s."""
    t = kg / 1000.0
    return 2.7 * 40 * math.sqrt(12 * t) if waste_type == 0 else 5.8 * 40 * math.sqrt(4 * t)


class Incinerator(_Point):
    """Tanks of incinerable waste feed burners; burning leaves bottom ash in an ash tank.

    Tanks start full (their mass is counted as ``initial``). A burner takes
    waste from a tank of a type it accepts, burns it for the type's burn time,
    then puts the ash (5% or 25% of the mass) in the ash tank; the rest is
    ``burnt``. A burner starts only when the ash tank has room for its ash.
    """

    _code = CLASSES.index("Incinerator")

    def __init__(self, city: str = "tiny:1", districts: int = 1, first: int = 1) -> None:
        super().__init__(city, districts, first)
        rng = self.random
        tanks = min(8, max(1, gauss_pos_int(rng, 3, 2)))
        self.tank_type = [INCINERABLE[rng.integers(0, 2)] for _ in range(tanks)]
        self.tank_level = [INCINERATOR_TANK_KG] * tanks
        self.tank_capacity = INCINERATOR_TANK_KG
        self.initial = INCINERATOR_TANK_KG * tanks
        burners = min(tanks, pos_int_exp(rng, 1 / 3))
        # Burner 0 takes every type; the others one type each.
        self.burner_types = [list(INCINERABLE)]
        self.burner_capacity = [round(1000 * (1 + rng.random() * 3))]
        for _ in range(1, burners):
            self.burner_types.append([INCINERABLE[rng.integers(0, 2)]])
            self.burner_capacity.append(max(1, round(1000 * abs(rng.normal(6, 3)))))
        self.burner_load = [0] * burners  # kg being burnt
        self.burner_kind = [-1] * burners
        self.burner_until = [-1] * burners
        self.ash = 0
        self.ash_reserved = 0  # ash that burning loads will leave
        self.burnt = 0

    def on_first_diasca(self) -> None:
        _declare_waste_probe(self, "waste.burnt")
        _declare_waste_probe(self, "waste.delivered")
        _declare_waste_probe(self, "waste.collected")
        self._start_burners()

    @property
    def stock(self) -> int:
        """Waste in tanks and burners (kg), ash excluded."""
        return sum(self.tank_level) + sum(self.burner_load)

    def act_spontaneous(self) -> None:
        burnt = [0, 0, 0]
        for b, until in enumerate(self.burner_until):
            if until == self.tick:
                kind, load = self.burner_kind[b], self.burner_load[b]
                ash = load * ASH_PERCENT[kind] // 100
                self.ash += ash
                self.ash_reserved -= ash
                self.burnt += load - ash
                burnt[kind] += load
                self.burner_load[b], self.burner_kind[b], self.burner_until[b] = 0, -1, -1
        if any(burnt):
            self.record("waste.burnt", burnt)
        self._start_burners()

    def _start_burners(self) -> None:
        for b, load in enumerate(self.burner_load):
            if load:
                continue
            for t, kind in enumerate(self.tank_type):
                if kind not in self.burner_types[b] or not self.tank_level[t]:
                    continue
                take = min(self.burner_capacity[b], self.tank_level[t])
                ash = take * ASH_PERCENT[kind] // 100
                if self.ash + self.ash_reserved + ash > ASH_TANK_KG:
                    continue
                self.tank_level[t] -= take
                self.ash_reserved += ash
                self.burner_load[b], self.burner_kind[b] = take, kind
                self.burner_until[b] = self.tick + to_ticks(burn_seconds(kind, take))
                self.add_spontaneous_tick(self.burner_until[b])
                break

    def unload(self, truck: int, waste_type: int, kg: int) -> None:
        accepted = 0
        if waste_type in INCINERABLE:
            for t, kind in enumerate(self.tank_type):
                if kind == waste_type and accepted < kg:
                    put = min(kg - accepted, self.tank_capacity - self.tank_level[t])
                    self.tank_level[t] += put
                    accepted += put
        if accepted:
            vec = [0, 0, 0]
            vec[waste_type] = accepted
            self.record("waste.delivered", vec)
            if not all(self.burner_load):
                self.schedule_in(1)  # idle burners start at the next tick
        self.send(truck, "on_unloaded", accepted)

    def collect(self, truck: int, room: int, waste_type: int) -> None:
        given = min(room, self.ash) if waste_type in (-1, ASH) else 0
        self.ash -= given
        if given:
            self.record("waste.collected", [0, 0, given])
        if given and not all(self.burner_load):
            self.schedule_in(1)  # burners waiting for room in the ash tank
        self.send(truck, "on_loaded", ASH, given)


class Landfill(_Point):
    """Takes everything, in one effectively unlimited tank per type."""

    _code = CLASSES.index("Landfill")

    def __init__(self, city: str = "tiny:1", districts: int = 1, first: int = 1) -> None:
        super().__init__(city, districts, first)
        self.stored = [0, 0, 0]

    def on_first_diasca(self) -> None:
        _declare_waste_probe(self, "waste.landfilled")

    def unload(self, truck: int, waste_type: int, kg: int) -> None:
        self.stored[waste_type] += kg
        vec = [0, 0, 0]
        vec[waste_type] = kg
        self.record("waste.landfilled", vec)
        self.send(truck, "on_unloaded", kg)
