"""PHOLD on SimPy, in two forms, for comparison with the engine's PHOLD model.

Both follow the same rules as ``models.phold.LP`` (ROSS's PHOLD mapped to ticks):

- ``n_lps`` logical processes (LPs), each starting with ``start_events`` events;
- processing an event emits exactly one new event: with probability ``remote``
  to an LP drawn uniformly over all of them (the same one included), otherwise
  back to the same LP;
- the new event is due ``1 + floor(Exp(mean - 1))`` time units later (one
  SimPy time unit = one engine tick; the increments are whole numbers, so the
  simulated clock only takes integer values);
- an event counts once, when its destination LP processes it.

The initial events are emitted at time 0 (as the engine's ``on_first_diasca``
does at tick 0), so the first ones are processed at time 1.

``env.run(until=T)`` schedules its stop event at ``T`` with URGENT priority,
ahead of every ordinary Timeout due at ``T``: events due at times ``1 .. T-1``
are processed and none due at ``T``. That is exactly what the engine does with
``stop_tick=T``, which evaluates ticks ``0 .. T-1``. With ``mean == 1`` every
increment is 1 tick, so both count ``n_lps * start_events * (T - 1)`` events.

Random draws come from one ``random.Random(seed)`` (SimPy is sequential; one
shared stream is what a SimPy user would write). Per event the draw order is the
engine model's: one uniform for "remote?", then the destination if remote, then
the exponential when ``mean > 1``. The destination is ``int(random() * n)``: the
fastest uniform integer in pure Python (its bias is below 2**-40 for these n).
"""

from __future__ import annotations

import random
from math import floor

import simpy
from simpy.events import Timeout


def _check(n_lps: int, remote: float, mean: float) -> None:
    if n_lps < 1:
        raise ValueError(f"n_lps must be >= 1; got {n_lps}")
    if not 0.0 <= remote <= 1.0:
        raise ValueError(f"remote must be within [0, 1]; got {remote}")
    if mean < 1.0:
        raise ValueError(f"mean must be >= 1 tick (the lookahead); got {mean}")


def build_process_form(
    n_lps: int, start_events: int, remote: float, mean: float, seed: int
) -> tuple[simpy.Environment, list[int]]:
    """The idiomatic form: every PHOLD event is a SimPy process.

    An event is a token that travels from LP to LP: the process draws its next
    destination and increment, ``yield``s a timeout of that increment, and is
    then processed by its destination LP (the LP's count goes up, and the loop
    draws the event it emits). The event population is constant, so there are
    ``n_lps * start_events`` long-lived processes and no process is ever created
    or torn down during the run. This is cheaper than the other natural design
    (one process per LP, waiting on a Store inbox, plus one process per message
    in flight to deliver it after its delay), which costs two extra events and a
    process creation per PHOLD event.

    Returns the environment (ready for ``env.run(until=T)``) and the per-LP
    counts of processed events.
    """
    _check(n_lps, remote, mean)
    env = simpy.Environment()
    counts = [0] * n_lps
    rng = random.Random(seed)
    uniform, expovariate = rng.random, rng.expovariate
    extra = mean - 1.0
    rate = 1.0 / extra if extra > 0.0 else 0.0
    timeout = env.timeout

    def event(lp: int):
        # ``lp``: the LP that emits this event (its creator, then each processor).
        while True:
            dest = int(uniform() * n_lps) if uniform() < remote else lp
            inc = 1 + floor(expovariate(rate)) if rate else 1
            yield timeout(inc)
            counts[dest] += 1  # processed by its destination LP ...
            lp = dest  # ... which emits the next event

    process = env.process
    for lp in range(n_lps):
        for _ in range(start_events):
            process(event(lp))
    return env, counts


def build_callback_form(
    n_lps: int, start_events: int, remote: float, mean: float, seed: int
) -> tuple[simpy.Environment, list[int]]:
    """The lowest-overhead form: one Timeout per event, with a callback, no processes.

    The Timeout carries its destination LP as its value; its callback is the
    destination processing it: count it, then schedule the next Timeout.
    """
    _check(n_lps, remote, mean)
    env = simpy.Environment()
    counts = [0] * n_lps
    rng = random.Random(seed)
    uniform, expovariate = rng.random, rng.expovariate
    extra = mean - 1.0
    rate = 1.0 / extra if extra > 0.0 else 0.0

    def emit(lp: int) -> None:
        dest = int(uniform() * n_lps) if uniform() < remote else lp
        inc = 1 + floor(expovariate(rate)) if rate else 1
        Timeout(env, inc, dest).callbacks.append(process)

    def process(ev: Timeout) -> None:
        dest = ev._value
        counts[dest] += 1
        # emit(dest), inlined: a call less per event.
        nxt = int(uniform() * n_lps) if uniform() < remote else dest
        inc = 1 + floor(expovariate(rate)) if rate else 1
        Timeout(env, inc, nxt).callbacks.append(process)

    for lp in range(n_lps):
        for _ in range(start_events):
            emit(lp)
    return env, counts


FORMS = {
    "simpy-process": build_process_form,
    "simpy-callbacks": build_callback_form,
}
