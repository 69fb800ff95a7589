"""The per-rank simulation kernel: ticks, diascas, messages, creation, deletion.

One ``Kernel`` runs the actors of one rank. Each diasca it runs, in order,
the update of every dense population (diasca 0 only, see engine.dense), the
constructors and ``on_first_diasca`` of new actors, ``on_actor_created``
notices, ``act_spontaneous`` (diasca 0 only) and message handlers. Then it
exchanges cross-rank messages and joins the consensus through its transport,
which decides for every rank alike: another diasca, a jump to a tick, or stop.
"""

from __future__ import annotations

import copy
import gc
import random as _pyrandom
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .actor import Actor, _Hot, _make, _py_make, call_failed, signature_hint
from .agenda import Agenda
from .directory import Directory
from .errors import MessageError, SimulationError
from .mail import Mail, _by_sender, _py_deliver, deliver
from .portable import PLAIN_TYPES, check_creation, check_message, describe, users_interrupt
from .probes import ProbeStore
from .random import Random, stream_keys
from .sharing import SharedState, shared_by_initial
from .trace import TickRow as _TickRow
from .trace import TickTrace
from .transport import (
    Failure,
    InboxEntry,
    LocalTransport,
    Placement,
    Report,
    RoundRobin,
    Transport,
)

MODES = ("reproducible", "ergodic", "fastest")


@dataclass(slots=True)
class RunStats:
    """What happened during a run, on this rank (``messages`` etc.) or globally (ticks)."""

    ticks: int = 0
    diascas: int = 0
    messages: int = 0
    spontaneous: int = 0
    created: int = 0
    deleted: int = 0
    wall_s: float = 0.0
    setup_s: float = 0.0  # wall time of tick 0, where the initial actors are built
    last_tick: int = 0
    status: str = "completed"
    failures: list[Failure] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Messages processed plus spontaneous actions: the work a run did."""
        return self.messages + self.spontaneous


def _immutable(value: Any) -> bool:
    """True when ``value`` can be shared between actors without copying."""
    if isinstance(value, (int, float, complex, str, bytes, type(None), range)):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(v) for v in value)
    if isinstance(value, dict):  # the kwargs themselves: fresh per call, values matter
        return all(_immutable(v) for v in value.values())
    return False


_LOOP_CODE = _py_deliver.__code__  # a handler's call fails in this frame, or in _deliver's (C)


@dataclass(slots=True)
class _InitialBlock:
    first_aai: int
    count: int
    cls: type
    kwargs: dict


class Kernel:
    """Runs one rank of a simulation. See the module docstring for one diasca's steps."""

    def __init__(
        self,
        *,
        tick_duration: float = 1.0,
        stop_tick: int | None = None,
        seed: int = 0,
        mode: str = "reproducible",
        transport: Transport | None = None,
        placement: Placement | None = None,
        probes: ProbeStore | None = None,
        run_order_seed: int | None = None,
        check_sharing: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not tick_duration > 0:
            raise ValueError(f"tick_duration must be > 0 seconds; got {tick_duration!r}")
        if stop_tick is not None and stop_tick < 1:
            raise ValueError(f"stop_tick must be >= 1 (tick 0 always runs); got {stop_tick!r}")
        self.tick_duration = float(tick_duration)
        self.stop_tick = stop_tick
        self.seed = seed
        self.mode = mode
        self.transport: Transport = transport if transport is not None else LocalTransport()
        self.placement: Placement = placement or RoundRobin(self.transport.size)
        self.probes = probes if probes is not None else ProbeStore()
        self._rank = self.transport.rank
        self.tick = 0
        self.diasca = 0
        self.stats = RunStats()
        self.trace = TickTrace()  # per-tick performance figures of this rank
        # The replicated directory (engine.directory); routing indexes its list.
        self._names = names = Directory()
        self._directory = names.entries
        self.class_of, self.label, self.ended_at = names.class_of, names.label, names.ended_at
        self.ident_of = names.ident_of
        self._next_aai = 1
        # Local state.
        # This rank's actors, indexed by AAI like the directory (None: not here).
        self._actors: list[Actor | None] = [None]
        self._alive = 0
        self.agenda = Agenda()  # the Actor API plans with agenda[tick].add(aai)
        self.withdraw = self.agenda.withdraw
        # Messages for the next diasca (engine.mail): this rank's inbox, other ranks' batches.
        check = partial(check_message, label=names.label)
        self._mail = Mail(self._directory, self._rank, PLAIN_TYPES, check)
        self.post = self._mail.post  # the Actor API's send, without a frame of its own
        # What the compiled actor core reads without a lookup; its tick follows self.tick.
        self._hot = _Hot(self.agenda, self.post)
        self._deliver_loop = deliver  # engine.mail: the C loop, or its Python twin
        self._sort_key = _by_sender if mode != "fastest" else None  # several messages: by sender
        self._creations: list = []
        self._terminating: list[Actor] = []
        self._ends: list[int] = []  # AAIs that called terminate() this diasca, to report
        self._ending: list[int] = []  # every rank's, this tick: their directory entries end
        self._initial: list[_InitialBlock] = []
        self._born: list[tuple[int, type, dict]] = []  # (aai, cls, kwargs) built next diasca
        self._notices: list[tuple[int, int, Any]] = []  # (creator, created, tag) next diasca
        self._changed = False  # a termination was declared this diasca
        self._interrupted = False
        self._gc_thresholds = gc.get_threshold()  # the collector's, restored after a run
        self._young = 0  # the young generation's threshold during a run
        self._targets: list[int] = []  # by diasca: targets of its sends, at the last tick
        self._current: tuple[int, str] = (0, "engine")  # where a model failure happened
        self._shuffle = (
            _pyrandom.Random(run_order_seed).shuffle if run_order_seed is not None else None
        )
        self.on_tick = None  # optional callback(kernel) at each new tick, for progress displays
        # Optional callback(kernel, next_tick) when a tick is over and the run goes on (a
        # boundary: nothing in flight, see engine.snapshot); returning False stops the run.
        self.at_tick_end = None
        self._resume_tick: int | None = None  # the first tick to run (engine.snapshot)
        self.global_events = 0  # events processed on all ranks, as of the last consensus
        self._populations: list = []  # engine.dense populations, in declaration order
        # Mutable objects that two initial actors hold (engine.sharing), once built.
        self.check_sharing = check_sharing
        self.shared: list[SharedState] = []

    # --- setup -------------------------------------------------------------
    @property
    def actor_count(self) -> int:
        """Actors alive on this rank."""
        return self._alive

    def actor(self, aai: int) -> Actor | None:
        """A local actor by AAI (for tests and tools; models never hold references)."""
        return self._actors[aai] if type(aai) is int and 0 < aai < len(self._actors) else None

    def add_actors(
        self,
        cls: type[Actor],
        count: int = 1,
        hint: Any = None,
        ident: str | None = None,
        /,
        **kwargs: Any,
    ) -> range:
        """Declare initial actors before ``run``; returns their AAIs, consecutive.

        ``kwargs`` go to each instance's constructor; mutable ones are copied per
        instance, so that no two actors share state. ``ident`` is the scenario id
        that errors name them by: ``ident`` itself, or ``ident-0``, ``ident-1``, ...
        """
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise TypeError(f"{cls!r} is not a subclass of engine.Actor")
        first = self._next_aai
        place, rank, size = self.placement.place, self._rank, self.transport.size
        entries = [self._names.entry(r, cls) for r in range(size)]
        if type(self.placement) is RoundRobin and self.placement.size == size:
            # RoundRobin.place's rule, without a call per actor (10^5 actors and more)
            aais = range(first - 1, first - 1 + count)
            ranks = [0] * count if size == 1 else [aai % size for aai in aais]
            self._directory.extend(
                [entries[0]] * count if size == 1 else map(entries.__getitem__, ranks)
            )
        else:
            ranks = [place(aai, cls, hint, 0) for aai in range(first, first + count)]
            self._directory.extend([entries[r] for r in ranks])
        self._actors.extend([None] * count)
        mine = ranks.count(rank)
        self._next_aai += count
        if ident is not None and count:
            self._names.name(first, count, ident)
        self._names.origin(first, count, hint, 0)
        if mine:
            self._initial.append(_InitialBlock(first, count, cls, kwargs))
        return range(first, first + count)

    def add_population(
        self,
        cls: type,
        /,
        name: str | None = None,
        process_grid: Any = None,
        args: dict | None = None,
        backend: str | None = None,
    ) -> Any:
        """Declare a dense population (an engine.DensePopulation subclass) before ``run``.

        Every rank declares the same populations in the same order; each holds its
        own block. A population updates at diasca 0 of every tick, before the
        actors, so it keeps the kernel ticking: the run needs a ``stop_tick``.
        ``backend`` ("cpu", "threads" or "cuda") runs a cell kernel; None picks
        the default (engine.dense.backends.default_backend).
        """
        from .dense import DensePopulation

        if not (isinstance(cls, type) and issubclass(cls, DensePopulation)):
            raise TypeError(f"{cls!r} is not a subclass of engine.DensePopulation")
        if self.stop_tick is None:
            raise ValueError("a dense population updates at every tick: give the run a stop_tick")
        name = name or cls.__name__.lower()
        if any(p.name == name for p in self._populations):
            raise ValueError(f"two populations are called {name!r}")
        pop = cls.__new__(cls)
        pop.__init__(**(args or {}))
        pop._attach(self, len(self._populations), name, process_grid, backend)
        self._populations.append(pop)
        return pop

    def population(self, name: str) -> Any:
        """A dense population of this run by name (this rank's block of it)."""
        for pop in self._populations:
            if pop.name == name:
                return pop
        known = ", ".join(repr(p.name) for p in self._populations) or "none"
        raise SimulationError(f"no population is called {name!r}; populations: {known}")

    def interrupt(self) -> None:
        """Ask for a clean stop at the end of the current tick (signal-safe)."""
        self._interrupted = True

    # --- the run -------------------------------------------------------------
    def run(self) -> RunStats:
        """Run until stop_tick, until nothing is planned, or until a failure."""
        # Actors are long-lived and numerous: keep the cyclic garbage collector
        # off them (gc.freeze after they are built) and let it run less often. A young
        # collection walks every container made since the last one, and a diasca makes
        # containers in proportion to the actors (the models' plans, lists, messages):
        # at a fixed threshold, a large population paid a collection per tick over all
        # of them (a fifth of a PHOLD run at 10^5 LPs; at every 10,000 allocations, 6%
        # of a run of small messages). So the young generation holds at least 100,000
        # objects, and two per actor (_young_limit).
        thresholds = gc.get_threshold()
        self._gc_thresholds = thresholds
        self._young = 0
        self._young_limit(len(self._actors) - 1)
        try:
            return self._run()
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    def _young_limit(self, actors: int) -> None:
        """Raise the young generation's threshold to two objects per actor (see run)."""
        young = max(self._gc_thresholds[0], 100_000, 2 * actors)
        if young > self._young:
            self._young = young
            gc.set_threshold(young, *self._gc_thresholds[1:])

    def _run(self) -> RunStats:
        stats = self.stats
        clock = time.perf_counter
        start = clock()
        transport = self.transport
        tick, diasca = self._resume_tick or 0, 0
        stats.ticks += 1
        row = _TickRow(tick, start, stats.messages)
        first, mail = True, self._mail
        hot = self._hot
        while True:
            self.tick = hot.tick = tick
            self.diasca = diasca
            stats.diascas += 1
            t0 = clock()
            failure = self._run_diasca(tick, diasca)
            if first:
                # The initial actors are built and have run on_first_diasca: keep them,
                # and what they made, out of every later collection (see also _construct).
                # Only once: freezing after later diascas would also freeze the garbage
                # cycles made meanwhile, until the end of the run.
                gc.freeze()
                first = False
            outgoing = mail.take_outbox()
            crossing = sum(map(len, outgoing.values()))
            row.sent += crossing + len(mail.inbox) + mail.extra
            row.crossing += crossing
            t1 = clock()
            incoming = transport.exchange(outgoing)
            if incoming:
                mail.accept(incoming)
            report = Report(
                active=bool(mail.inbox or outgoing or self._creations or self._changed),
                next_tick=self._next_tick(tick),
                creations=self._creations,
                failures=[failure] if failure else [],
                terminated=self._ends,
                interrupt=self._interrupted,
                tick=tick,
                diasca=diasca,
                events=stats.messages + stats.spontaneous,
            )
            self._creations, self._changed, self._ends = [], False, []
            t2 = clock()
            decision = transport.agree(report)
            t3 = clock()
            row.kernel_s += t1 - t0
            row.exchange_s += t2 - t1
            row.consensus_s += t3 - t2
            row.diascas += 1
            self.global_events = decision.events
            if decision.failures:
                stats.status, stats.failures = "failed", decision.failures
                break
            self._place_creations(decision.creations)
            self._ending += decision.terminated
            if decision.active:
                diasca += 1
                continue
            # The tick is over: the last diasca was quiet everywhere.
            self._remove_terminated()
            if 2 * self._alive > self._young:
                self._young_limit(self._alive)
            row.close(self, t3)
            nxt = decision.next_tick
            if decision.interrupt:
                stats.status = "interrupted"
                break
            if nxt is None or (self.stop_tick is not None and nxt >= self.stop_tick):
                break
            if self.at_tick_end is not None and not self.at_tick_end(self, nxt):
                break
            tick, diasca = nxt, 0
            stats.ticks += 1
            row = _TickRow(tick, clock(), stats.messages)
            if self.on_tick is not None:
                self.tick = hot.tick = tick
                self.diasca = 0
                self.on_tick(self)
        if not row.closed:
            row.close(self, clock())
        stats.last_tick = tick
        stats.wall_s = clock() - start
        self.probes.flush()
        return stats

    def _next_tick(self, tick: int) -> int | None:
        """The smallest planned tick; a dense population plans every tick."""
        nxt = self.agenda.next_tick()
        if self._populations and (nxt is None or nxt > tick + 1):
            return tick + 1
        return nxt

    def _run_diasca(self, tick: int, diasca: int) -> Failure | None:
        actors = self._actors
        # What was sent last diasca; new sends wait, in an inbox sized for as many targets
        # as this diasca's sends reached at the last tick.
        targets = self._targets
        inbox, count = self._mail.take(targets[diasca] if diasca < len(targets) else 0)
        if diasca:
            if diasca > len(targets):
                targets.append(0)
            targets[diasca - 1] = len(inbox)
        self.stats.messages += count
        aai, handler = 0, "engine"
        try:
            if diasca == 0 and self._populations:
                # Before any actor: reads during tick t see the end of tick t-1, and
                # posts of tick t-1 reach this update.
                for pop in self._populations:
                    handler = f"update of population {pop.name!r}"
                    pop._update(tick)
            if self._initial or self._born:
                handler = "__init__"
                fresh = self._construct()
                handler = "on_first_diasca"
                for actor in fresh:
                    aai = actor.aai
                    actor.on_first_diasca()
            if self._notices:
                handler = "on_actor_created"
                notices, self._notices = self._notices, []
                for aai, created, tag in notices:
                    actors[aai].on_actor_created(created, tag)
            if diasca == 0:
                handler = "act_spontaneous"
                planned = self.agenda.take(tick)
                if self._shuffle is not None:
                    planned = sorted(planned)
                    self._shuffle(planned)
                self.stats.spontaneous += len(planned)
                # A Python loop: Python 3.11 calls a Python method from Python without
                # entering the interpreter anew, which a loop in C cannot (callgrind: a
                # C loop cost 130 more instructions per PHOLD event).
                for aai in planned:
                    actors[aai].act_spontaneous()
            if inbox:
                handler = "messages"
                self._deliver(inbox, tick, diasca)
        except BaseException as exc:  # a model failed (sys.exit too): the consensus stops all
            if users_interrupt(exc):
                raise
            if handler in ("__init__", "messages"):
                aai, handler = self._current
            return Failure(
                aai=aai,
                class_name=self.class_of(aai).__name__ if aai > 0 else "?",
                ident=self.ident_of(aai) or "",
                handler=handler,
                tick=tick,
                diasca=diasca,
                message=describe(exc),
                traceback=traceback.format_exc(),
                rank=self._rank,
            )
        return None

    def _deliver(
        self, inbox: dict[int, InboxEntry | list[InboxEntry]], tick: int, diasca: int
    ) -> None:
        items: Any = inbox
        if self._shuffle is not None:
            items = sorted(inbox.items())
            self._shuffle(items)
        where: list = [0, None]  # where a failure happened: (target, handler function)
        try:
            self._deliver_loop(items, self._actors, self._sort_key, self.mode == "ergodic", where)
        except BaseException as exc:
            target, fn = where
            self._current = (target, self._names.handler_name(target, fn))
            if type(exc) is TypeError and call_failed(exc, self._deliver.__code__, _LOOP_CODE):
                raise MessageError(
                    signature_hint(self._current[1], self._actors[target], exc)
                ) from exc
            raise

    def _construct(self) -> list[Actor]:
        """Build the actors due at this diasca; returns those with an ``on_first_diasca``."""
        fresh: list[Actor] = []
        directory, rank = self._directory, self._rank
        built: list[Sequence[int]] = []
        for block in self._initial:
            first, end = block.first_aai, block.first_aai + block.count
            mine = range(first, end) if self.transport.size == 1 else None
            if mine is None:
                mine = [aai for aai in range(first, end) if directory[aai][0] == rank]
            shared = block.count > 1 and not _immutable(block.kwargs)
            self._build(block.cls, mine, block.kwargs, shared, fresh)
            built.append(mine)
        self._initial = []
        if built:
            # The initial actors are built: out of every later collection from now on,
            # or their on_first_diasca could start a young collection that walks them all.
            gc.freeze()
        if built and self.check_sharing:
            self.shared = shared_by_initial(self._actors, built)
        for aai, cls, kwargs in self._born:
            self._build(cls, (aai,), kwargs, False, fresh)
        self._born = []
        if self._shuffle is not None:
            self._shuffle(fresh)
        return fresh

    def _build(
        self, cls: type, aais: Sequence[int], kwargs: dict, shared: bool, fresh: list[Actor]
    ) -> None:
        """Make actors ``aais`` of ``cls``: the engine's slots first, then the model's __init__.

        The generators' keys are derived for the whole batch at once.
        """
        keys = stream_keys(self.seed, aais)
        init = cls.__init__ if cls.__init__ is not Actor.__init__ or kwargs else None
        first_diasca = cls.on_first_diasca is not Actor.on_first_diasca
        actors, aai = self._actors, 0
        make = _make if cls.__new__ is Actor.__new__ else _py_make  # a model's own __new__
        collecting = gc.isenabled()
        gc.disable()  # a million new long-lived objects would start collection after collection
        try:
            for aai, key in zip(aais, keys, strict=True):
                actor = make(cls, self, aai, key, Random)
                actors[aai] = actor
                self._alive += 1
                if init is not None:
                    init(actor, **(copy.deepcopy(kwargs) if shared else kwargs))
                if first_diasca:
                    fresh.append(actor)
        except BaseException:
            self._current = (aai, "__init__")
            raise
        finally:
            if collecting:
                gc.enable()

    def _place_creations(self, creations: list) -> None:
        """Give AAIs to this diasca's creations, in canonical order, and place them."""
        if not creations:
            return
        rank = self._rank
        for creator, _, cls, hint, tag, kwargs in creations:
            aai = self._next_aai
            self._next_aai += 1
            r = self.placement.place(aai, cls, hint, creator)
            self._directory.append(self._names.entry(r, cls))
            self._actors.append(None)
            if r == rank:
                self._born.append((aai, cls, kwargs))
            if self._directory[creator][0] == rank:
                self._notices.append((creator, aai, tag))
            self._names.origin(aai, 1, hint, creator)
        self.stats.created += len(creations)

    # --- the surface of the Actor API (engine.actor.KernelSurface) ---------------
    # Besides tick, diasca, tick_duration, probes, agenda and withdraw (attributes),
    # and population(), the Actor API uses these methods and nothing else.

    # post(sender, target, handler, args): the mail's, bound in __init__ (engine.mail).

    @property
    def classes(self) -> Sequence[type]:
        """Every actor class of the run so far (declared or created)."""
        return self._names.classes

    # class_of(aai), label(aai), ended_at(aai) and ident_of(aai): the directory's, bound in
    # __init__ (an actor's class, how errors name it, when it ended, its scenario id).

    def create(
        self, creator: int, count: int, cls: type, hint: Any, tag: Any, kwargs: dict
    ) -> None:
        """Ask for a new actor; it gets its AAI at the end of the diasca, in canonical order."""
        check_creation(creator, cls, hint, tag, kwargs, self.label)
        self._creations.append((creator, count, cls, hint, tag, kwargs))

    def terminate(self, actor: Actor) -> None:
        """Take ``actor`` out of the agenda now and out of the rank at the end of the tick."""
        self.agenda.remove_actor(actor.aai)
        self._terminating.append(actor)
        self._ends.append(actor.aai)
        self._changed = True

    def _remove_terminated(self) -> None:
        """End this tick's terminated actors here, and their directory entries everywhere.

        An ended entry has no handlers, so a later send to it is refused at the
        send, in the sender's handler, on every layout alike.
        """
        self._names.end(self._ending, self.tick)
        self._ending = []
        for actor in self._terminating:
            self._actors[actor.aai] = None
        self._alive -= len(self._terminating)
        self.stats.deleted += len(self._terminating)
        self._terminating = []
