"""One test (at least) per rule of the time model (ARCHITECTURE.md section 1)."""

from __future__ import annotations

import weakref

import pytest
from conftest import series

from engine import Actor, TimeConversionError, seconds_to_ticks


class Pinger(Actor):
    """Sends one ping to ``peer`` at each planned tick; records when pings arrive."""

    def __init__(self, peer: int = 0, at: tuple = ()) -> None:
        self.peer = peer
        self.at = at

    def on_first_diasca(self) -> None:
        self.record("first", (self.tick, self.diasca))
        self.add_spontaneous_ticks(self.at)

    def act_spontaneous(self) -> None:
        self.record("acted", (self.tick, self.diasca))
        if self.peer:
            self.send(self.peer, "ping", self.tick, self.diasca)

    def ping(self, sender: int, tick: int, diasca: int) -> None:
        self.record("ping", (sender, tick, diasca, self.tick, self.diasca))


def test_message_sent_at_t_d_is_processed_at_t_d_plus_1(make_kernel):
    k = make_kernel(stop_tick=100)
    k.add_actors(Pinger, peer=2, at=(3, 7))
    k.add_actors(Pinger)
    k.run()
    rows = [v for _, _, v in series(k, "ping")]
    assert rows == [(1, 3, 0, 3, 1), (1, 7, 0, 7, 1)]


class Relay(Actor):
    """Passes a token ``hops`` times round a ring of actors, one hop per diasca."""

    def __init__(self, ring: int, hops: int = 0) -> None:
        self.ring = ring
        self.hops = hops

    def on_first_diasca(self) -> None:
        if self.hops:
            self.add_spontaneous_tick(2)

    def act_spontaneous(self) -> None:
        self.send(self._next(), "token", self.hops)

    def _next(self) -> int:
        return self.aai % self.ring + 1

    def token(self, sender: int, left: int) -> None:
        self.record("token", (self.diasca, left))
        if left > 1:
            self.send(self._next(), "token", left - 1)


def test_tick_ends_at_first_quiet_diasca(make_kernel):
    k = make_kernel(stop_tick=50)
    k.add_actors(Relay, 1, ring=3, hops=5)
    k.add_actors(Relay, 2, ring=3)
    ticks_seen = []
    k.on_tick = lambda kern: ticks_seen.append(kern.tick)
    stats = k.run()
    # 5 hops at diascas 1..5 of tick 2; diasca 6 is quiet and ends the tick.
    hops = sorted((v, a) for _, a, v in series(k, "token"))
    assert hops == [((d, 6 - d), d % 3 + 1) for d in range(1, 6)]
    assert ticks_seen == [2]
    assert stats.diascas == 1 + 6  # tick 0: one diasca; tick 2: diascas 0..5
    assert stats.ticks == 2


def test_unplanned_ticks_are_skipped(make_kernel):
    k = make_kernel(stop_tick=10**9)
    k.add_actors(Pinger, at=(5, 1000, 123456))
    seen = []
    k.on_tick = lambda kern: seen.append(kern.tick)
    stats = k.run()
    assert seen == [5, 1000, 123456]
    assert stats.ticks == 4  # tick 0 and the three planned ticks
    assert [v for _, _, v in series(k, "acted")] == [(5, 0), (1000, 0), (123456, 0)]


class Burst(Actor):
    """Sends ``n`` numbered messages to the sink, in an order given per sender."""

    def __init__(self, sink: int, order: list) -> None:
        self.sink = sink
        self.order = order

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        for i in self.order:
            self.send(self.sink, "note", i)


class Sink(Actor):
    def note(self, sender: int, i: int) -> None:
        self.record("order", (sender, i))


def _burst_run(make_kernel, orders, mode="reproducible", seed=0, run_order_seed=None):
    k = make_kernel(stop_tick=10, mode=mode, seed=seed, run_order_seed=run_order_seed)
    sink = len(orders) + 1
    for order in orders:
        k.add_actors(Burst, sink=sink, order=order)
    k.add_actors(Sink)
    k.run()
    return [v for _, _, v in series(k, "order")]


def test_canonical_order_is_sender_then_send_sequence(make_kernel):
    got = _burst_run(make_kernel, [[3, 1, 2], [9, 8], [5]])
    # Sorted by sender AAI, then by each sender's own send sequence.
    assert got == [(1, 3), (1, 1), (1, 2), (2, 9), (2, 8), (3, 5)]


def test_canonical_order_does_not_depend_on_run_order(make_kernel):
    orders = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
    reference = _burst_run(make_kernel, orders)
    for s in range(5):
        assert _burst_run(make_kernel, orders, run_order_seed=s) == reference


def test_ergodic_is_a_seeded_permutation_that_replays(make_kernel):
    orders = [[i, i + 100] for i in range(12)]
    canonical = _burst_run(make_kernel, orders)
    a = _burst_run(make_kernel, orders, mode="ergodic", seed=7)
    again = _burst_run(make_kernel, orders, mode="ergodic", seed=7, run_order_seed=3)
    other = _burst_run(make_kernel, orders, mode="ergodic", seed=8)
    assert sorted(a) == sorted(canonical)
    assert a != canonical
    assert a == again
    assert other != a


def test_fastest_mode_delivers_everything(make_kernel):
    orders = [[1, 2], [3]]
    got = _burst_run(make_kernel, orders, mode="fastest")
    assert sorted(got) == sorted(_burst_run(make_kernel, orders))


class Parent(Actor):
    def __init__(self, children: int = 1) -> None:
        self.children = children

    def on_first_diasca(self) -> None:
        self.schedule_in(3)

    def act_spontaneous(self) -> None:
        for i in range(self.children):
            self.create_actor(Child, tag=f"c{i}", parent=self.aai)
        self.record("asked", (self.tick, self.diasca))

    def on_actor_created(self, aai: int, tag: str) -> None:
        self.record("created", (aai, int(tag[1:]), self.tick, self.diasca))
        self.send(aai, "hello")


class Child(Actor):
    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.record("constructed", (self.tick, self.diasca))

    def on_first_diasca(self) -> None:
        self.record("first", (self.tick, self.diasca))

    def hello(self, sender: int) -> None:
        self.record("hello", (sender, self.tick, self.diasca))


def test_creation_timing_and_canonical_aais(make_kernel):
    for run_order_seed in (None, 1, 2):
        k = make_kernel(stop_tick=10, run_order_seed=run_order_seed)
        k.add_actors(Parent, 2, children=2)  # AAIs 1, 2
        k.add_actors(Pinger)  # AAI 3
        stats = k.run()
        assert series(k, "asked") == [(3, 1, (3, 0)), (3, 2, (3, 0))]
        # AAIs by (creator, creation count): parent 1 gets 4, 5; parent 2 gets 6, 7.
        assert [v for _, _, v in series(k, "created")] == [
            (4, 0, 3, 1),
            (5, 1, 3, 1),
            (6, 0, 3, 1),
            (7, 1, 3, 1),
        ]
        assert [(a, v) for _, a, v in series(k, "first") if a > 3] == [
            (a, (3, 1)) for a in (4, 5, 6, 7)
        ]
        assert [a for _, a, _ in series(k, "constructed")] == [4, 5, 6, 7]
        assert [(a, v) for _, a, v in series(k, "hello")] == [
            (4, (1, 3, 2)),
            (5, (1, 3, 2)),
            (6, (2, 3, 2)),
            (7, (2, 3, 2)),
        ]
        assert stats.created == 4


def test_initial_actors_run_first_diasca_at_0_0(make_kernel):
    k = make_kernel(stop_tick=10)
    k.add_actors(Pinger, 3)
    k.run()
    assert series(k, "first") == [(0, a, (0, 0)) for a in (1, 2, 3)]


class Leaver(Actor):
    """Declares termination at tick 2; a friend messages it in the same tick and later."""

    def on_first_diasca(self) -> None:
        self.schedule_in(2)

    def act_spontaneous(self) -> None:
        self.declare_termination()
        self.record("leaving", self.diasca)

    def still_here(self, sender: int) -> None:
        self.record("still_here", (self.tick, self.diasca))


class Friend(Actor):
    def __init__(self, target: int, late: bool) -> None:
        self.target = target
        self.late = late

    def on_first_diasca(self) -> None:
        self.add_spontaneous_ticks([2, 4] if self.late else [2])

    def act_spontaneous(self) -> None:
        self.send(self.target, "still_here")


def test_termination_removes_actor_at_end_of_tick(make_kernel):
    k = make_kernel(stop_tick=10)
    k.add_actors(Leaver)
    k.add_actors(Friend, target=1, late=False)
    stats = k.run()
    assert series(k, "still_here") == [(2, 1, (2, 1))]  # same tick: still alive
    assert stats.deleted == 1
    assert k.actor(1) is None
    assert stats.status == "completed"


def test_message_to_deleted_actor_stops_the_run(make_kernel):
    k = make_kernel(stop_tick=10)
    k.add_actors(Leaver)
    k.add_actors(Friend, target=1, late=True)
    stats = k.run()
    assert stats.status == "failed"
    (failure,) = stats.failures
    # The send itself fails, in the sender, at the sender's timestamp and line.
    assert (failure.tick, failure.diasca, failure.aai) == (4, 0, 2)
    assert failure.handler == "act_spontaneous"
    line = Friend.act_spontaneous.__code__.co_firstlineno + 1
    assert (
        f"actor 2 (Friend) at tick 4 diasca 0 (test_time_model.py:{line}) sent 'still_here' "
        f"to actor 1 (Leaver), which terminated at tick 2" in failure.message
    )


def test_termination_withdraws_plans(make_kernel):
    class Quitter(Actor):
        def on_first_diasca(self) -> None:
            self.add_spontaneous_ticks([1, 50, 90])

        def act_spontaneous(self) -> None:
            self.record("acted", self.tick)
            self.declare_termination()

    k = make_kernel(stop_tick=100)
    k.add_actors(Quitter)
    stats = k.run()
    assert [v for _, _, v in series(k, "acted")] == [1]
    assert stats.ticks == 2  # 0 and 1: nothing left planned afterwards


def test_stop_tick_is_exclusive(make_kernel):
    k = make_kernel(stop_tick=7)
    k.add_actors(Pinger, at=(3, 6, 7, 8))
    stats = k.run()
    assert [v for _, _, v in series(k, "acted")] == [(3, 0), (6, 0)]
    assert stats.last_tick == 6


def test_run_stops_when_nothing_planned_and_nothing_in_flight(make_kernel):
    k = make_kernel(stop_tick=None)
    k.add_actors(Relay, 1, ring=2, hops=4)
    k.add_actors(Relay, 1, ring=2)
    stats = k.run()
    assert stats.status == "completed"
    assert stats.last_tick == 2
    assert len(series(k, "token")) == 4  # the tick ran until the token was spent


def test_run_continues_while_messages_are_in_flight(make_kernel):
    # Nothing is planned after tick 2, but the in-flight token keeps tick 2 going.
    k = make_kernel(stop_tick=3)
    k.add_actors(Relay, 1, ring=2, hops=30)
    k.add_actors(Relay, 1, ring=2)
    stats = k.run()
    assert len(series(k, "token")) == 30
    assert stats.diascas == 1 + 31


class Planner(Actor):
    def __init__(self, action: str) -> None:
        self.action = action

    def on_first_diasca(self) -> None:
        self.add_spontaneous_tick(5)

    def act_spontaneous(self) -> None:
        a = self.action
        if a == "current":
            self.add_spontaneous_tick(5)
        elif a == "past":
            self.add_spontaneous_tick(2)
        elif a == "float":
            self.add_spontaneous_tick(7.5)
        elif a == "withdraw_unplanned":
            self.withdraw_spontaneous_tick(9)
        elif a == "withdraw_current":
            self.withdraw_spontaneous_tick(5)
        elif a == "schedule_zero":
            self.schedule_in(0)
        elif a == "after_termination":
            self.declare_termination()
            self.schedule_in(1)


@pytest.mark.parametrize(
    "action, message",
    [
        (
            "current",
            "actor 1 (Planner) cannot plan tick 5: it is the current tick; "
            "plan a later one, e.g. schedule_in(1)",
        ),
        ("past", "actor 1 (Planner) cannot plan tick 2: it is in the past (current tick 5)"),
        ("float", "actor 1 (Planner) cannot plan tick 7.5: a tick is a whole number; got 7.5"),
        (
            "withdraw_unplanned",
            "actor 1 (Planner) cannot withdraw tick 9: it had not planned it",
        ),
        (
            "withdraw_current",
            "actor 1 (Planner) cannot withdraw tick 5: it is the current tick; "
            "plan a later one, e.g. schedule_in(1)",
        ),
        (
            "schedule_zero",
            "actor 1 (Planner) at tick 5: schedule_in needs a whole number of ticks >= 1; got 0",
        ),
        (
            "after_termination",
            "actor 1 (Planner) cannot plan tick 6: it has declared its termination",
        ),
    ],
)
def test_planning_errors_name_actor_and_tick(make_kernel, action, message):
    k = make_kernel(stop_tick=20)
    k.add_actors(Planner, action=action)
    stats = k.run()
    assert stats.status == "failed"
    (failure,) = stats.failures
    assert failure.message == f"PlanningError: {message}"
    assert (failure.aai, failure.class_name, failure.handler) == (1, "Planner", "act_spontaneous")
    assert (failure.tick, failure.diasca) == (5, 0)


def test_planning_in_constructor_uses_creation_tick(make_kernel):
    class EarlyPlanner(Actor):
        def __init__(self) -> None:
            self.add_spontaneous_tick(0)

    k = make_kernel(stop_tick=20)
    k.add_actors(EarlyPlanner)
    stats = k.run()
    (failure,) = stats.failures
    assert failure.handler == "__init__"
    assert "cannot plan tick 0: it is the current tick" in failure.message


def test_withdraw_cancels_a_plan(make_kernel):
    class Fickle(Actor):
        def on_first_diasca(self) -> None:
            self.add_spontaneous_ticks([3, 4])
            self.withdraw_spontaneous_tick(3)

        def act_spontaneous(self) -> None:
            self.record("acted", self.tick)

    k = make_kernel(stop_tick=20)
    k.add_actors(Fickle)
    k.run()
    assert [v for _, _, v in series(k, "acted")] == [4]


def test_a_plan_withdrawn_then_made_again_holds(make_kernel):
    # The compiled core remembers the agenda's set of the last tick planned; withdrawing
    # that tick's only plan removes the set, and planning it again must not use the old one.
    class Again(Actor):
        def on_first_diasca(self) -> None:
            self.add_spontaneous_tick(3)
            self.withdraw_spontaneous_tick(3)
            self.schedule_in(3)
            self.add_spontaneous_tick(5)
            self.withdraw_spontaneous_tick(5)
            self.add_spontaneous_tick(5)

        def act_spontaneous(self) -> None:
            self.record("acted", self.tick)

    k = make_kernel(stop_tick=20)
    k.add_actors(Again, 2)
    k.run()
    assert sorted(v for _, _, v in series(k, "acted")) == [3, 3, 5, 5]


def test_a_model_may_override_the_hot_calls(make_kernel):
    # The compiled core's send, schedule_in and draws become methods of each actor class
    # (engine/_actor.c, bind); a model's own override, and its subclasses', stay in place.
    class Counting(Actor):
        def __init__(self) -> None:
            self.sent = 0

        def on_first_diasca(self) -> None:
            self.schedule_in(1)

        def send(self, target_aai: int, handler: str, *args) -> None:
            self.sent += 1
            super().send(target_aai, handler, *args)

        def act_spontaneous(self) -> None:
            self.send(self.aai, "hello", self.random.integers(0, 10))

        def hello(self, sender: int, value: int) -> None:
            self.record("hello", value)

    class Sub(Counting):
        pass

    k = make_kernel(stop_tick=5)
    first = k.add_actors(Counting)
    second = k.add_actors(Sub)
    k.run()
    assert [k.actor(aai).sent for aai in (*first, *second)] == [1, 1]
    assert len(series(k, "hello")) == 2
    assert Sub.send is Counting.send


class Caller(Actor):
    def __init__(self, target: int, handler: str) -> None:
        self.target = target
        self.handler = handler

    def on_first_diasca(self) -> None:
        self.send(self.target, self.handler)


SENDER = "actor 1 (Caller) at tick 0 diasca 0 (test_time_model.py:{line})"


class Other(Actor):
    def arrive(self, sender: int) -> None:
        pass


@pytest.mark.parametrize(
    "target, handler, message",
    [
        (
            2,
            "nope",
            "sent 'nope' to actor 2 (Sink), which has no handler 'nope'; did you mean 'note'?",
        ),
        (
            2,
            "shout",
            "sent 'shout' to actor 2 (Sink), but class Sink has no handler 'shout'; "
            "define `def shout(self, sender, ...)` on Sink",
        ),
        (
            2,
            "arrive",
            "sent 'arrive' to actor 2 (Sink): that actor is a Sink, which has no handler "
            "'arrive' (Other has one); check the AAI it sent to",
        ),
        (
            2,
            "act_spontaneous",
            "sent 'act_spontaneous' to actor 2 (Sink): "
            "'act_spontaneous' belongs to the Actor API, not to a message handler",
        ),
        (
            2,
            "_private",
            "sent '_private' to actor 2 (Sink), but '_private' is private: handlers are "
            "public methods (no leading underscore)",
        ),
        (99, "note", "sent 'note' to 99, which is no actor's AAI"),
        (0, "note", "sent 'note' to 0, which is no actor's AAI"),
        (-1, "note", "sent 'note' to -1, which is no actor's AAI"),
    ],
)
def test_send_errors_are_raised_at_the_send(make_kernel, target, handler, message):
    k = make_kernel(stop_tick=5)
    k.add_actors(Caller, target=target, handler=handler)
    k.add_actors(Sink)
    k.add_actors(Other)
    stats = k.run()
    (failure,) = stats.failures
    line = Caller.on_first_diasca.__code__.co_firstlineno + 1
    assert failure.message == f"MessageError: {SENDER.format(line=line)} {message}"
    assert failure.handler == "on_first_diasca"


def test_model_exception_is_reported_with_its_context(make_kernel):
    class Broken(Actor):
        def on_first_diasca(self) -> None:
            self.schedule_in(2)

        def act_spontaneous(self) -> None:
            self.send(self.aai, "explode", 3)

        def explode(self, sender: int, n: int) -> None:
            raise ZeroDivisionError(f"boom {n}")

    k = make_kernel(stop_tick=5)
    k.add_actors(Broken)
    stats = k.run()
    (f,) = stats.failures
    assert (f.aai, f.class_name, f.handler, f.tick, f.diasca) == (1, "Broken", "explode", 2, 1)
    assert f.message == "ZeroDivisionError: boom 3"
    assert "raise ZeroDivisionError" in f.traceback
    assert stats.status == "failed"


def test_actor_properties(make_kernel):
    class Clock(Actor):
        def on_first_diasca(self) -> None:
            self.schedule_in(self.seconds_to_ticks(0.5))

        def act_spontaneous(self) -> None:
            self.record("clock", (self.aai, self.tick, self.diasca, self.time))

    k = make_kernel(stop_tick=100, tick_duration=0.01)
    k.add_actors(Clock)
    k.run()
    assert [v for _, _, v in series(k, "clock")] == [(1, 50, 0, 0.5)]


def test_seconds_to_ticks_rules():
    assert seconds_to_ticks(1.0, 0.02) == 50
    assert seconds_to_ticks(0, 0.02) == 0
    assert seconds_to_ticks(0.0201, 0.02) == 1  # 0.5% off: accepted
    with pytest.raises(TimeConversionError, match=r"off by 66\.7%"):
        seconds_to_ticks(0.006, 0.01)
    with pytest.raises(TimeConversionError, match="limit 1.5%"):
        seconds_to_ticks(0.001, 0.02)  # never 0 for s > 0: 1 tick is 1900% off
    with pytest.raises(TimeConversionError, match="negative"):
        seconds_to_ticks(-1, 0.02)


def test_actor_arguments_become_attributes_without_a_constructor(make_kernel):
    class Plain(Actor):
        def on_first_diasca(self) -> None:
            self.record("x", self.size * 2)

    k = make_kernel(stop_tick=3)
    k.add_actors(Plain, size=21)
    k.run()
    assert series(k, "x") == [(0, 1, 42.0)]


def test_send_to_deleted_actor_names_both_actors_with_their_scenario_ids(make_kernel):
    class Early(Actor):
        def on_first_diasca(self) -> None:
            self.declare_termination()

        def ping(self, sender: int) -> None:
            pass

    class Sender(Actor):
        def on_first_diasca(self) -> None:
            self.schedule_in(5)

        def act_spontaneous(self) -> None:
            self.send(2, "ping")

    k = make_kernel(stop_tick=10)
    k.add_actors(Sender, 1, None, "sender")
    k.add_actors(Early, 2, None, "early")
    stats = k.run()
    (f,) = stats.failures
    assert (f.aai, f.class_name, f.ident, f.handler, f.tick, f.diasca) == (
        1,
        "Sender",
        "sender",
        "act_spontaneous",
        5,
        0,
    )
    line = Sender.act_spontaneous.__code__.co_firstlineno + 1
    assert (
        f"actor 1 (Sender, id 'sender') at tick 5 diasca 0 (test_time_model.py:{line}) sent "
        f"'ping' to actor 2 (Early, id 'early-0'), which terminated at tick 0" in f.message
    )
    assert f.describe().startswith("model failure in actor 1 (Sender, id 'sender'), ")


def test_bools_are_not_aais_but_numpy_integers_are(make_kernel):
    import numpy as np

    class Picky(Actor):
        def __init__(self, target) -> None:
            self.target = target

        def on_first_diasca(self) -> None:
            self.send(self.target, "note", 7)

    k = make_kernel(stop_tick=3)
    k.add_actors(Picky, target=np.int64(2))
    k.add_actors(Sink)
    assert k.run().status == "completed"
    assert series(k, "order") == [(0, 2, (1.0, 7.0))]

    k = make_kernel(stop_tick=3)
    k.add_actors(Picky, target=True)
    k.add_actors(Sink)
    (f,) = k.run().failures
    assert "sent 'note' to True, which is no actor's AAI" in f.message


def test_stop_tick_must_leave_room_for_tick_0(make_kernel):
    with pytest.raises(ValueError, match="stop_tick must be >= 1"):
        make_kernel(stop_tick=0)


def test_tick_trace_has_one_row_per_evaluated_tick(make_kernel):
    k = make_kernel(stop_tick=50)
    k.add_actors(Relay, 1, ring=3, hops=5)
    k.add_actors(Relay, 2, ring=3)
    stats = k.run()
    c = k.trace.columns()
    assert c["tick"].tolist() == [0, 2]
    assert c["diascas"].tolist() == [1, 6]
    assert c["sent"].tolist() == [0, 5] and c["received"].tolist() == [0, 5]
    assert c["actors"].tolist() == [3, 3]
    assert int(c["diascas"].sum()) == stats.diascas
    assert (c["wall_s"] >= c["kernel_s"]).all()


class _Junk:
    """A garbage cycle: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


_JUNK: weakref.WeakSet = weakref.WeakSet()


class _Litterer(Actor):
    """Makes a garbage cycle and a short-lived actor at every tick."""

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        _JUNK.add(_Junk())
        self.create_actor(_Brief)
        if self.tick < 1500:
            self.schedule_in(1)
        else:
            self.record("junk_alive", len(_JUNK))


class _Brief(Actor):
    def on_first_diasca(self) -> None:
        self.declare_termination()


def test_garbage_cycles_are_collected_during_a_long_run(make_kernel):
    k = make_kernel(stop_tick=2000)
    k.add_actors(_Litterer, 40)
    stats = k.run()
    assert stats.created == 40 * 1500
    # 60,000 cycles were made; the collector must have freed most of them while
    # the run went on (it keeps only the initial actors out of collections).
    alive = max(v for _, _, v in series(k, "junk_alive"))
    assert alive < 30_000, alive


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_send_to_an_actor_ended_on_another_rank_fails_as_on_one_rank(ranks):
    from dense_support import run_ranks

    def world(k):
        k.add_actors(Leaver)
        k.add_actors(Friend, 1, None, "friend", target=1, late=True)

    def failure(kernels):
        (f,) = {
            (f.aai, f.tick, f.diasca, f.handler, f.message)
            for k in kernels
            for f in k.stats.failures
        }
        return f

    one = failure(run_ranks(1, world, stop_tick=10))
    assert one[:4] == (2, 4, 0, "act_spontaneous")
    assert failure(run_ranks(ranks, world, stop_tick=10)) == one


class Forgetful(Actor):
    """Its handler forgot the ``sender`` parameter."""

    def on_first_diasca(self) -> None:
        self.send(self.aai, "grazed", 3)

    def grazed(self, amount: int) -> None:
        self.record("amount", amount)


class Strict(Actor):
    """Its handler has the right signature but raises a TypeError of its own."""

    def on_first_diasca(self) -> None:
        self.send(self.aai, "grazed", 3)

    def grazed(self, sender: int, amount: int) -> None:
        len(amount)


def test_a_handler_without_the_sender_parameter_is_named_with_the_fix(make_kernel):
    k = make_kernel(stop_tick=3)
    k.add_actors(Forgetful)
    (f,) = k.run().failures
    assert (f.aai, f.handler, f.diasca) == (1, "grazed", 1)
    assert f.message.startswith(
        "MessageError: handler Forgetful.grazed(self, amount) cannot take this "
        "message (Forgetful.grazed() takes 2 positional arguments but 3 were given); handlers "
        "receive the sender's AAI first, then the message's arguments: "
        "`def grazed(self, sender, ...)`"
    )
    k = make_kernel(stop_tick=3)
    k.add_actors(Strict)
    (f,) = k.run().failures
    assert f.message == "TypeError: object of type 'int' has no len()"  # the model's own
