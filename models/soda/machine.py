"""The soda vending machine: the passive side of the soda model.

A machine mostly waits. Customers send it ``order`` messages and it answers
each one with ``on_can_delivered`` or ``on_no_can``. Its only spontaneous
activity is restocking: an operator refills it to capacity every
``restock_period`` seconds and, if ``alert_delay`` is set, comes early when the
machine runs empty.

What this file shows about the engine:

- the constructor keeps plain-data state and converts seconds to ticks once;
- ``on_first_diasca`` records the initial state and plans the first restock;
- a message handler is an ordinary public method whose first argument is the
  sender's AAI, and it answers with ``send``;
- planning with ``add_spontaneous_tick`` and cancelling a plan with
  ``withdraw_spontaneous_tick``;
- probes recorded each time the recorded quantity changes.
"""

from __future__ import annotations

from engine import Actor

# The reasons a machine gives in ``on_no_can``. Messages carry plain data, so
# reasons are short strings that any actor (and any rank) can compare.
OUT_OF_STOCK = "out_of_stock"
NOT_ENOUGH_MONEY = "not_enough_money"


class SodaMachine(Actor):
    """A vending machine selling cans at a fixed price.

    Scenario arguments:

    - ``stock``: cans in the machine at the start (a whole number >= 0).
    - ``price``: price of one can (> 0).
    - ``capacity``: the most cans the machine holds; a restock refills it to
      this level. Defaults to ``stock``.
    - ``restock_period``: seconds between two regular restocks; ``None`` (the
      default) means the machine is never restocked on a schedule.
    - ``alert_delay``: when set, an empty machine calls the operator, who
      comes ``alert_delay`` seconds later if that is sooner than the next
      regular restock (which is then moved, not added).

    Probes: ``stock`` (cans left), ``cans_sold`` and ``revenue`` (running
    totals), ``restocked`` (cans added by each restock).
    """

    def __init__(
        self,
        stock: int,
        price: float,
        capacity: int | None = None,
        restock_period: float | None = None,
        alert_delay: float | None = None,
    ) -> None:
        # Check the arguments here: an exception raised by a constructor stops
        # the run with this actor's AAI, class and the message below.
        if capacity is None:
            capacity = stock
        if not isinstance(stock, int) or stock < 0:
            raise ValueError(f"stock must be a whole number >= 0; got {stock!r}")
        if not isinstance(capacity, int) or capacity < stock:
            raise ValueError(
                f"capacity must be a whole number >= stock ({stock}); got {capacity!r}"
            )
        if not price > 0:
            raise ValueError(f"price must be > 0; got {price!r}")

        # All state is plain data: numbers here. No open files, no references
        # to other actors: the engine may checkpoint or move this actor.
        self.stock = stock
        self.capacity = capacity
        self.price = float(price)
        self.cans_sold = 0
        self.revenue = 0.0
        self.restocked = 0  # cans added by all restocks so far

        # Durations come in seconds; the engine plans in ticks. Convert once,
        # here: seconds_to_ticks refuses a duration that the tick length cannot
        # express within 1.5%, so a bad scenario fails at (0, 0), not hours in.
        self.restock_ticks = self._ticks_or_none(restock_period, "restock_period")
        self.alert_ticks = self._ticks_or_none(alert_delay, "alert_delay")
        self.next_restock: int | None = None  # the restock tick planned, if any

    def _ticks_or_none(self, seconds: float | None, name: str) -> int | None:
        # A leading underscore keeps this helper out of the message handlers:
        # every public method of an actor class can be called by a message.
        if seconds is None:
            return None
        if not seconds > 0:
            raise ValueError(f"{name} must be > 0 seconds (or left out); got {seconds!r}")
        return self.seconds_to_ticks(seconds)

    # --- callbacks ------------------------------------------------------------
    def on_first_diasca(self) -> None:
        # Runs once, at (0, 0) for a machine listed in the scenario. Record the
        # starting point of every probe, so that each series is complete. Units
        # label the plots.
        self.declare_probe("stock", unit="cans")
        self.declare_probe("cans_sold", unit="cans")
        self.declare_probe("revenue", unit="€")
        self.declare_probe("restocked", unit="cans")
        self.record("stock", self.stock)
        self.record("cans_sold", self.cans_sold)
        self.record("revenue", self.revenue)
        if self.restock_ticks is not None:
            self._plan_restock(self.tick + self.restock_ticks)

    def act_spontaneous(self) -> None:
        # The only tick this machine ever plans is a restock, so acting means
        # restocking. Refill to capacity, whatever is left.
        added = self.capacity - self.stock
        self.stock = self.capacity
        self.restocked += added
        self.record("restocked", added)
        self.record("stock", self.stock)
        # Planning is one step at a time: the plan for this tick was consumed,
        # so plan the next regular restock (if restocks are periodic).
        self.next_restock = None
        if self.restock_ticks is not None:
            self._plan_restock(self.tick + self.restock_ticks)

    # --- messages -------------------------------------------------------------
    def order(self, customer: int, money: float) -> None:
        """A customer offers ``money`` for one can; answer with a can or a reason.

        The reply reaches the customer at the next diasca of this same tick.
        """
        if self.stock == 0:
            self.send(customer, "on_no_can", OUT_OF_STOCK)
            return
        if money < self.price:
            self.send(customer, "on_no_can", NOT_ENOUGH_MONEY)
            return
        self.stock -= 1
        self.cans_sold += 1
        self.revenue += self.price
        self.record("stock", self.stock)
        self.record("cans_sold", self.cans_sold)
        self.record("revenue", self.revenue)
        # Tell the customer what it paid: it deducts that from its budget.
        self.send(customer, "on_can_delivered", self.price)
        if self.stock == 0:
            self._call_operator()

    # --- helpers ----------------------------------------------------------------
    def _plan_restock(self, tick: int) -> None:
        self.add_spontaneous_tick(tick)
        self.next_restock = tick

    def _call_operator(self) -> None:
        """Empty: bring the next restock forward to ``alert_delay`` from now."""
        if self.alert_ticks is None:
            return
        early = self.tick + self.alert_ticks
        if self.next_restock is not None:
            if self.next_restock <= early:
                return  # the regular restock comes first anyway
            # Move the restock rather than add one: cancel the regular plan.
            # Withdrawing is allowed for future ticks this actor had planned.
            self.withdraw_spontaneous_tick(self.next_restock)
        self._plan_restock(early)
