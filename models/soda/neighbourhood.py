"""The neighbourhood: where new customers come from while the simulation runs.

New residents move in at planned ticks. Each one is a new actor made with
``create_actor``; the neighbourhood learns its AAI one diasca later, in
``on_actor_created``, and keeps the AAIs of its current residents. A resident
that leaves sends ``on_resident_left`` first, which frees its place: the
neighbourhood houses at most ``capacity`` residents, and a newcomer who finds
it full goes elsewhere (is counted in ``turned_away``).

What this file shows about the engine:

- planning many ticks at once with ``add_spontaneous_ticks`` (deterministic
  arrivals) or one at a time with ``schedule_in`` (random arrivals);
- ``create_actor`` with a ``tag`` and a placement ``hint``, and the answer in
  ``on_actor_created``;
- a class attribute to choose the class of the actors to create (classes are
  code, not state: keep them out of ``self``).
"""

from __future__ import annotations

from engine import Actor

from .customer import Customer, StochasticCustomer


class Neighbourhood(Actor):
    """Newcomers arrive every ``arrival_period`` seconds, ``arrivals`` in all.

    Scenario arguments:

    - ``machines``: AAIs of the machines residents may use (in a scenario:
      ``["@machine-0", "@machine-1"]``). Newcomers are given them in turn.
    - ``arrivals``: how many newcomers arrive in all.
    - ``arrival_period``: seconds between arrivals; the first arrives one
      period after the start.
    - ``capacity``: most residents at a time (``None``: no limit).
    - ``budget``, ``thirst_rate``, ``thirst_threshold``, ``retry_after``,
      ``patience``: passed to each newcomer (see ``Customer``).

    Probe: ``residents`` (how many live here), at each change.
    """

    # The class of the actors this neighbourhood creates. A subclass changes it.
    customer_class: type[Customer] = Customer

    def __init__(
        self,
        machines: list[int],
        arrivals: int,
        arrival_period: float,
        capacity: int | None = None,
        budget: float = 10.0,
        thirst_rate: float = 1.0,
        thirst_threshold: float = 10.0,
        retry_after: float = 5.0,
        patience: int = 10,
    ) -> None:
        if not machines or not all(isinstance(m, int) and m >= 1 for m in machines):
            raise ValueError(f"machines must be a non-empty list of AAIs; got {machines!r}")
        if not isinstance(arrivals, int) or arrivals < 0:
            raise ValueError(f"arrivals must be a whole number >= 0; got {arrivals!r}")
        if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
            raise ValueError(
                f"capacity must be a whole number >= 1 (or left out); got {capacity!r}"
            )
        self.machines = list(machines)
        self.arrivals = arrivals
        self.arrival_ticks = self.seconds_to_ticks(arrival_period)
        self.capacity = capacity
        # What every newcomer gets, as a dict of plain data.
        self.newcomer = {
            "budget": float(budget),
            "thirst_rate": float(thirst_rate),
            "thirst_threshold": float(thirst_threshold),
            "retry_after": float(retry_after),
            "patience": patience,
        }
        self.arrived = 0  # newcomers so far, housed or not
        self.turned_away = 0
        self.moving_in = 0  # created, AAI not yet known
        self.residents: list[int] = []  # AAIs of the residents, in arrival order

    # --- callbacks ------------------------------------------------------------
    def on_first_diasca(self) -> None:
        self.declare_probe("residents", unit="customers")
        self.record("residents", 0)
        self._plan_arrivals()

    def act_spontaneous(self) -> None:
        # A newcomer arrives.
        number = self.arrived
        self.arrived += 1
        if self.capacity is not None and len(self.residents) + self.moving_in >= self.capacity:
            self.turned_away += 1
        else:
            machine = self._machine_for(number)
            # The new actor's constructor and on_first_diasca run at the next
            # diasca; its AAI is assigned by the engine, in an order that does
            # not depend on placement. ``hint`` asks the placement policy to put
            # it near its machine; ``tag`` comes back in on_actor_created.
            self.create_actor(
                self.customer_class,
                hint=machine,
                tag=number,
                machine=machine,
                neighbourhood=self.aai,
                **self._newcomer_args(),
            )
            self.moving_in += 1
        self._plan_next_arrival()

    def on_actor_created(self, aai: int, tag: int) -> None:
        # One diasca after create_actor: ``aai`` is the newcomer's identifier
        # and ``tag`` the arrival number we gave it.
        self.moving_in -= 1
        self.residents.append(aai)
        self.record("residents", len(self.residents))

    # --- messages -------------------------------------------------------------
    def on_resident_left(self, resident: int, cans: int) -> None:
        """A resident moved out after drinking ``cans`` cans."""
        self.residents.remove(resident)
        self.record("residents", len(self.residents))

    # --- variation points -------------------------------------------------------
    def _plan_arrivals(self) -> None:
        # Every arrival tick is known from the start: plan them all at once.
        period = self.arrival_ticks
        self.add_spontaneous_ticks(self.tick + period * (i + 1) for i in range(self.arrivals))

    def _plan_next_arrival(self) -> None:
        pass  # all arrivals were planned by _plan_arrivals

    def _machine_for(self, number: int) -> int:
        return self.machines[number % len(self.machines)]

    def _newcomer_args(self) -> dict:
        return dict(self.newcomer)


class StochasticNeighbourhood(Neighbourhood):
    """Newcomers arrive at random, pick a machine at random, bring a random budget.

    Same arguments as ``Neighbourhood``; ``arrival_period`` is now the mean
    time between arrivals (exponential), and each budget is drawn uniformly
    between half and one and a half times ``budget``, rounded to cents.
    Newcomers are ``StochasticCustomer``.
    """

    customer_class = StochasticCustomer

    def _plan_arrivals(self) -> None:
        self._plan_next_arrival()

    def _plan_next_arrival(self) -> None:
        # One arrival at a time: the next gap is drawn when the previous
        # newcomer arrives (a Poisson process, in ticks).
        if self.arrived < self.arrivals:
            self.schedule_in(max(1, round(self.random.exponential(self.arrival_ticks))))

    def _machine_for(self, number: int) -> int:
        return self.random.choice(self.machines)

    def _newcomer_args(self) -> dict:
        args = dict(self.newcomer)
        args["budget"] = round(args["budget"] * (0.5 + self.random.random()), 2)
        return args
