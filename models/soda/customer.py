"""Thirsty customers: the active side of the soda model.

A customer's thirst grows steadily. When it reaches ``thirst_threshold`` the
customer offers its whole budget to its machine, and the machine answers:

- ``on_can_delivered(price)``: the customer pays, drinks (thirst back to 0)
  and plans the tick at which it will be thirsty again;
- ``on_no_can("out_of_stock")``: it comes back ``retry_after`` seconds later,
  still thirsty, and gives up after ``patience`` empty machines in a row;
- ``on_no_can("not_enough_money")``: it cannot afford a can, so it leaves.

A customer whose budget reaches exactly 0 leaves at once. Leaving is
``declare_termination()``; a customer that came from a neighbourhood tells it
first, so that the neighbourhood knows it has room again.

What this file shows about the engine:

- no polling: a customer computes the tick at which it becomes thirsty and
  plans exactly that tick, so the engine skips every tick in between;
- the purchase protocol as a chain of diascas inside one tick: order at
  diasca 0, answer at diasca 1, payment at diasca 2;
- a stochastic variant that differs only by drawing from ``self.random``.
"""

from __future__ import annotations

from engine import Actor

from .machine import NOT_ENOUGH_MONEY, OUT_OF_STOCK


class Customer(Actor):
    """A customer of one vending machine, with a fixed thirst rate.

    Scenario arguments:

    - ``machine``: the AAI of the machine this customer uses (in a scenario,
      write ``"@machine-0"``).
    - ``budget``: money to spend (>= 0).
    - ``thirst_rate``: thirst gained per second (> 0).
    - ``thirst_threshold``: thirst at which the customer goes to buy (> 0). A
      customer is thus thirsty every ``thirst_threshold / thirst_rate`` seconds.
    - ``retry_after``: seconds before trying again after ``out_of_stock``.
    - ``patience``: ``out_of_stock`` answers in a row before giving up.
    - ``neighbourhood``: the AAI of the neighbourhood this customer lives in,
      told when the customer leaves; ``None`` for a customer of the scenario.

    Probes: ``thirst`` (at the start, when going to buy, after drinking) and
    ``budget`` (at the start and after each purchase).
    """

    def __init__(
        self,
        machine: int,
        budget: float,
        thirst_rate: float = 1.0,
        thirst_threshold: float = 10.0,
        retry_after: float = 5.0,
        patience: int = 10,
        neighbourhood: int | None = None,
    ) -> None:
        if not isinstance(machine, int) or machine < 1:
            raise ValueError(f"machine must be an actor's AAI (an int >= 1); got {machine!r}")
        if not budget >= 0:
            raise ValueError(f"budget must be >= 0; got {budget!r}")
        if not thirst_rate > 0 or not thirst_threshold > 0:
            raise ValueError(
                f"thirst_rate and thirst_threshold must be > 0; got {thirst_rate!r} "
                f"and {thirst_threshold!r}"
            )
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a whole number >= 1; got {patience!r}")

        # AAIs are plain integers: keeping one is how an actor "knows" another.
        self.machine = machine
        self.neighbourhood = neighbourhood
        self.budget = float(budget)
        self.threshold = float(thirst_threshold)
        self.patience = patience

        # Convert durations to ticks once. Thirst is then tracked in ticks too:
        # ``thirst`` is the level at tick ``thirst_tick`` and it grows by
        # ``thirst_per_tick`` every tick after that.
        self.thirst_ticks = self.seconds_to_ticks(thirst_threshold / thirst_rate)
        self.retry_ticks = self.seconds_to_ticks(retry_after)
        self.thirst = 0.0
        self.thirst_tick = 0
        self.thirst_per_tick = self.threshold / self.thirst_ticks

        self.cans = 0  # cans drunk so far
        self.empty_in_a_row = 0  # out_of_stock answers since the last can
        self.left_because: str | None = None
        self.left_at: float | None = None  # simulated seconds, for reports

    # --- callbacks ------------------------------------------------------------
    def on_first_diasca(self) -> None:
        # For a customer of the scenario this is (0, 0); for one created while
        # the simulation runs, it is the diasca after its creation.
        self.thirst_tick = self.tick
        self.declare_probe("budget", unit="€")
        self.record("thirst", self.thirst)
        self.record("budget", self.budget)
        if self.budget == 0:
            self._leave("no_money")
            return
        self._plan_next_thirst()

    def act_spontaneous(self) -> None:
        # The one tick this customer planned: it is thirsty (or trying again
        # after an empty machine). Bring thirst up to date and go buy.
        self._update_thirst()
        self.record("thirst", self.thirst)
        # Offer the whole budget; the machine charges its price. The machine
        # runs ``order(self.aai, self.budget)`` at the next diasca.
        self.send(self.machine, "order", self.budget)

    # --- messages from the machine -------------------------------------------
    def on_can_delivered(self, machine: int, price: float) -> None:
        """The machine sold us a can for ``price``."""
        self.empty_in_a_row = 0
        self.cans += 1
        self.budget -= price  # never negative: the machine checked money >= price
        self.thirst = 0.0
        self.thirst_tick = self.tick
        self.record("budget", self.budget)
        self.record("thirst", self.thirst)
        if self.budget == 0:
            self._leave("no_money")
        else:
            self._plan_next_thirst()

    def on_no_can(self, machine: int, reason: str) -> None:
        """The machine refused: ``reason`` is OUT_OF_STOCK or NOT_ENOUGH_MONEY."""
        if reason == NOT_ENOUGH_MONEY:
            self._leave(reason)
        elif reason == OUT_OF_STOCK:
            self.empty_in_a_row += 1
            if self.empty_in_a_row >= self.patience:
                self._leave(reason)
            else:
                # Still thirsty: come back later. schedule_in(n) plans the
                # tick n ticks after the current one (n >= 1).
                self.schedule_in(self._retry_delay())
        else:
            raise ValueError(f"unknown reason from machine {machine}: {reason!r}")

    # --- helpers (underscore: not callable by messages) -----------------------
    def _update_thirst(self) -> None:
        self.thirst += self.thirst_per_tick * (self.tick - self.thirst_tick)
        self.thirst_tick = self.tick

    def _plan_next_thirst(self) -> None:
        delay = self._thirst_delay()
        # Thirst reaches the threshold exactly at the planned tick.
        self.thirst_per_tick = (self.threshold - self.thirst) / delay
        self.schedule_in(delay)

    def _thirst_delay(self) -> int:
        """Ticks from now until thirsty again (>= 1). Fixed in this variant."""
        return self.thirst_ticks

    def _retry_delay(self) -> int:
        """Ticks before trying again after an empty machine (>= 1)."""
        return self.retry_ticks

    def _leave(self, why: str) -> None:
        self.left_because = why
        self.left_at = self.time
        if self.neighbourhood is not None:
            # Sending while leaving is fine: this actor is removed only at the
            # end of the tick, and the message is delivered before that.
            self.send(self.neighbourhood, "on_resident_left", self.cans)
        self.declare_termination()


class StochasticCustomer(Customer):
    """A customer whose thirst builds at a random pace.

    Same arguments as ``Customer``, but ``thirst_threshold / thirst_rate`` and
    ``retry_after`` are now means: each interval is drawn from an exponential
    distribution with that mean. Draws come from ``self.random``, the actor's
    own generator, derived from the run's seed and this actor's AAI alone, so
    a run is reproducible whatever the number of ranks.
    """

    def _thirst_delay(self) -> int:
        # Draw in ticks, not seconds: seconds_to_ticks would (rightly) refuse a
        # drawn duration like 0.013 s that whole 0.01 s ticks cannot express.
        return self._draw_ticks(self.thirst_ticks)

    def _retry_delay(self) -> int:
        return self._draw_ticks(self.retry_ticks)

    def _draw_ticks(self, mean_ticks: int) -> int:
        return max(1, round(self.random.exponential(mean_ticks)))
