"""The Actor base class: everything a model may do, and nothing else.

A model subclasses ``Actor``, keeps its state in plain data (numbers, strings,
lists, dicts, NumPy arrays, AAIs) and talks to other actors only through
``send``. The engine sets the private slots before the model's constructor
runs, so a constructor may already use ``aai`` and ``random``.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
import sys
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from pathlib import Path
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .errors import MessageError, PlanningError, SimulationError
from .random import Random
from .timing import seconds_to_ticks as _seconds_to_ticks

if TYPE_CHECKING:
    from .agenda import Agenda
    from .dense import DensePopulation, PopulationView
    from .probes import ProbeStore


class KernelSurface(Protocol):
    """All an actor may use of its kernel (``engine.Kernel`` provides it).

    The Actor API below goes through these members and nothing else; a test
    holds actor.py to it. Keeping the surface this small is what lets the kernel
    change its data structures without touching the Actor API.
    """

    tick: int
    diasca: int
    tick_duration: float
    probes: ProbeStore
    # The local plans: agenda[tick].add(aai) plans act_spontaneous of aai at tick
    # (a future one, which the Actor API checks first).
    agenda: Agenda

    def post(self, sender: int, target: int, handler: str, args: tuple) -> bool:
        """Queue a message for the next diasca; False when ``target`` cannot take it."""

    def label(self, aai: int) -> str:
        """How errors name an actor: ``5 (Wolf, id 'wolf-3')``."""

    def ended_at(self, aai: int) -> int | None:
        """The tick during which actor ``aai`` terminated, None while it lives."""

    @property
    def classes(self) -> Sequence[type]:
        """Every actor class of the run so far."""

    def class_of(self, aai: int) -> type | None:
        """The class of actor ``aai``, None when no actor has that AAI."""

    def withdraw(self, tick: int, aai: int) -> bool:
        """Cancel a plan; False when there was none."""

    def create(
        self, creator: int, count: int, cls: type, hint: Any, tag: Any, kwargs: dict
    ) -> None:
        """Ask for a new actor: the creator's ``count``-th creation."""

    def terminate(self, actor: Actor) -> None:
        """Remove ``actor`` at the end of the current tick."""

    def population(self, name: str) -> DensePopulation:
        """This rank's block of the dense population ``name``."""


class _PyActorCore:
    """The engine's slots of an actor and its hot calls: the reference.

    ``engine._actor.ActorCore`` (C, built with the package when a compiler is at
    hand) does the same on the common path, an exact ``int`` and a live actor,
    without a Python frame per call; both hand everything else to the same
    ``Actor`` methods (``_send_slow``, ``_plan_slow``, ``_schedule_in_slow``).
    """

    __slots__ = ("_k", "_aai", "_random", "_ncreated", "_terminating")

    _k: KernelSurface
    _aai: int
    _random: Random
    _ncreated: int
    _terminating: bool

    # Read-only properties whose getters are C functions (attrgetter): a model
    # reads them at every event, and a Python getter would cost a frame each.
    aai = property(
        attrgetter("_aai"), doc="This actor's abstract identifier: stable whatever the placement."
    )
    tick = property(attrgetter("_k.tick"), doc="The current tick.")
    diasca = property(attrgetter("_k.diasca"), doc="The current diasca of the tick.")
    random = property(
        attrgetter("_random"), doc="This actor's own generator, derived from (seed, AAI) alone."
    )

    def send(self, target_aai: int, handler: str, *args: Any) -> None:
        """Call ``target.handler(self.aai, *args)`` at the next diasca."""
        if type(target_aai) is int and self._k.post(self._aai, target_aai, handler, args):
            return
        self._send_slow(target_aai, handler, args)  # type: ignore[attr-defined]

    def add_spontaneous_tick(self, tick: int) -> None:
        """Plan ``act_spontaneous`` at a future tick."""
        k = self._k
        if type(tick) is int and tick > k.tick and not self._terminating:
            k.agenda[tick].add(self._aai)
            return
        self._plan_slow(tick)  # type: ignore[attr-defined]

    def schedule_in(self, n_ticks: int) -> None:
        """Plan ``act_spontaneous`` ``n_ticks`` (>= 1) ticks from now."""
        if type(n_ticks) is int and n_ticks >= 1 and not self._terminating:  # the common case
            k = self._k
            k.agenda[k.tick + n_ticks].add(self._aai)
            return
        self._schedule_in_slow(n_ticks)  # type: ignore[attr-defined]


class _PyHot:
    """What the compiled core reads of its kernel without a lookup: ``kernel._hot``.

    The kernel keeps ``tick`` equal to its own; the Python core does not use it.
    """

    __slots__ = ("tick", "agenda", "post")

    def __init__(self, agenda: Agenda, post: Callable[..., bool]) -> None:
        self.tick, self.agenda, self.post = 0, agenda, post


def _py_make(cls: type, k: KernelSurface, aai: int, key: int, random: type) -> Any:
    """A new actor of ``cls`` with the engine's slots set, before its model's constructor.

    The kernel's reference; ``engine._actor.make`` does the same in one call (for
    classes that keep the core's ``__new__``).
    """
    actor = cls.__new__(cls)
    actor._k = k
    actor._aai = aai
    actor._random = random(key)
    actor._ncreated = 0
    actor._terminating = False
    return actor


def _py_bind(cls: type) -> None:
    """The reference core needs no binding: its hot calls are Python functions."""


try:
    from ._actor import ActorCore as _Core
    from ._actor import Hot as _Hot
    from ._actor import bind as _bind
    from ._actor import make as _make
except ImportError:  # built without a C compiler: the same calls, slower
    _Core = _PyActorCore  # type: ignore[misc,assignment]
    _Hot = _PyHot  # type: ignore[misc,assignment]
    _make = _py_make
    _bind = _py_bind


class Actor(_Core):
    """Base class of every model actor.

    Override ``on_first_diasca``, ``act_spontaneous`` and ``on_actor_created``
    as needed, and define message handlers as ordinary methods taking the
    sender's AAI first: ``def on_order(self, sender, amount): ...``.

    ``aai``, ``tick``, ``diasca`` and ``random`` (read-only), ``send``,
    ``schedule_in`` and ``add_spontaneous_tick`` come from the actor's core (see
    ``_PyActorCore``).
    """

    __slots__ = ("__dict__",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The compiled core's hot calls become methods of each actor class itself:
        # Python 3.11 calls a C method fast only on an instance of exactly the class
        # that names it (engine/_actor.c, bind).
        super().__init_subclass__(**kwargs)
        _bind(cls)

    def __init__(self, **kwargs: Any) -> None:
        # Models without a constructor of their own get their scenario
        # arguments as attributes.
        for name, value in kwargs.items():
            setattr(self, name, value)

    @property
    def time(self) -> float:
        """Simulated seconds since the start (tick x tick_duration)."""
        return self._k.tick * self._k.tick_duration

    def seconds_to_ticks(self, seconds: float) -> int:
        """Whole ticks for a duration; refuses more than 1.5% rounding error."""
        return _seconds_to_ticks(seconds, self._k.tick_duration)

    # --- callbacks a model overrides -------------------------------------
    def on_first_diasca(self) -> None:
        """Runs once, at the diasca after creation ((0, 0) for initial actors)."""

    def act_spontaneous(self) -> None:
        """Runs at diasca 0 of every tick this actor planned."""

    def on_actor_created(self, aai: int, tag: Any) -> None:
        """Tells a creator the AAI of the actor it asked for, one diasca later."""

    # --- messages and planning: the common path is the core's ------------
    def _send_slow(self, target_aai: Any, handler: Any, args: tuple) -> None:
        """``send`` off its common path: NumPy integers as AAIs, and refusals."""
        if type(target_aai) is not int:
            target_aai = _as_aai(self, target_aai, handler)
        if not self._k.post(self._aai, target_aai, handler, args):
            _raise_bad_send(self, target_aai, handler)

    def _plan_slow(self, tick: Any) -> None:
        """``add_spontaneous_tick`` off its common path: other integers, and refusals."""
        k = self._k
        if type(tick) is not int:
            tick = self._as_tick(tick, "plan")
        if tick <= k.tick or self._terminating:
            self._refuse_plan(tick, "plan")
        k.agenda[tick].add(self._aai)

    def _schedule_in_slow(self, n_ticks: Any) -> None:
        """``schedule_in`` off its common path: other integers, and refusals."""
        if not isinstance(n_ticks, numbers.Integral) or isinstance(n_ticks, bool) or n_ticks < 1:
            raise PlanningError(
                f"actor {self._k.label(self._aai)} at tick {self._k.tick}: "
                f"schedule_in needs a whole number of ticks >= 1; got {n_ticks!r}"
            )
        self.add_spontaneous_tick(self._k.tick + int(n_ticks))

    def add_spontaneous_ticks(self, ticks: Iterable[int]) -> None:
        for tick in ticks:
            self.add_spontaneous_tick(tick)

    def withdraw_spontaneous_tick(self, tick: int) -> None:
        """Cancel an earlier plan for a future tick."""
        k = self._k
        if type(tick) is not int:
            tick = self._as_tick(tick, "withdraw")
        if tick <= k.tick:
            self._refuse_plan(tick, "withdraw")
        if not k.withdraw(tick, self._aai):
            raise PlanningError(
                f"actor {self._k.label(self._aai)} cannot withdraw tick {tick}: "
                f"it had not planned it"
            )

    def _as_tick(self, tick: Any, verb: str) -> int:
        if isinstance(tick, numbers.Integral) and not isinstance(tick, bool):
            return int(tick)
        self._refuse_plan(tick, verb)

    def _refuse_plan(self, tick: Any, verb: str) -> NoReturn:
        who = f"actor {self._k.label(self._aai)}"
        now = self._k.tick
        if not isinstance(tick, int) or isinstance(tick, bool):
            why = f"a tick is a whole number; got {tick!r}"
        elif self._terminating:
            why = "it has declared its termination"
        elif tick == now:
            why = "it is the current tick; plan a later one, e.g. schedule_in(1)"
        else:
            why = f"it is in the past (current tick {now})"
        raise PlanningError(f"{who} cannot {verb} tick {tick}: {why}")

    # --- life cycle --------------------------------------------------------
    def create_actor(
        self, cls: type[Actor], *, hint: Any = None, tag: Any = None, **kwargs: Any
    ) -> None:
        """Ask for a new actor; its AAI arrives next diasca in ``on_actor_created``."""
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise SimulationError(
                f"actor {self._k.label(self._aai)}: create_actor needs a subclass "
                f"of engine.Actor; got {cls!r}"
            )
        self._ncreated += 1
        self._k.create(self._aai, self._ncreated, cls, hint, tag, kwargs)

    def declare_termination(self) -> None:
        """Leave the simulation at the end of the current tick."""
        if not self._terminating:
            self._terminating = True
            self._k.terminate(self)

    # --- results -----------------------------------------------------------
    def record(self, probe_name: str, value: Any) -> None:
        """Record a number or a small vector for this actor at the current tick."""
        k = self._k
        k.probes.record(probe_name, k.tick, self._aai, value)

    def declare_probe(
        self,
        probe_name: str,
        unit: str = "",
        labels: Iterable[str] | None = None,
        plot: str = "",
    ) -> None:
        """Give a probe its unit, for vectors one label per component, and how to plot it.

        ``plot`` is one of ``bands``, ``sum``, ``mean``, ``count``, ``events`` (see
        docs/results.md), or "" for the default drawing. Optional; any actor may
        declare, as often as it likes, as long as every declaration of a probe
        says the same.
        """
        self._k.probes.declare(probe_name, unit, labels, plot)

    # --- dense populations ----------------------------------------------------
    def population(self, name: str) -> PopulationView:
        """The dense population ``name`` as this actor sees it (docs/populations.md).

        Reads give the state at the end of the previous tick; posts reach the
        next update. Call it when needed; do not keep the view in actor state.
        """
        return self._k.population(name).view(self)


_API = frozenset(name for name in dir(Actor) if not name.startswith("_"))


def handlers_of(cls: type) -> dict[str, Callable[..., Any]]:
    """The handlers a message may call on ``cls``: its public methods outside the Actor API.

    Each maps to a function called as ``fn(actor, sender, *args)``: for a method
    defined with ``def``, the function itself, so that delivering a message
    costs no attribute lookup; for anything else callable (a staticmethod, a
    callable object), a small adapter that looks it up on the actor.
    """
    table: dict[str, Callable[..., Any]] = {}
    for name in dir(cls):
        if name.startswith("_") or name in _API:
            continue
        if callable(getattr(cls, name, None)):
            found = inspect.getattr_static(cls, name)
            table[name] = found if isinstance(found, FunctionType) else _adapter(name)
    return table


def _adapter(name: str) -> Callable[..., Any]:
    def call(actor: Actor, sender: int, *args: Any) -> Any:
        return getattr(actor, name)(sender, *args)

    call.__name__ = name
    return call


_ADAPTER_CODE = _adapter("").__code__


def _refusal(sender: Actor, target_aai: Any, handler: Any) -> str:
    """Why a send is refused, as one line that points at the likely mistake."""
    k = sender._k
    who = f"actor {k.label(sender._aai)} at tick {k.tick} diasca {k.diasca}{_send_site()}"
    cls = k.class_of(target_aai) if type(target_aai) is int else None  # bools are no AAIs
    if cls is None:
        return f"{who} sent '{handler}' to {target_aai!r}, which is no actor's AAI"
    if not isinstance(handler, str):
        return f"{who}: the handler must be a method name (str); got {handler!r}"
    target = f"actor {k.label(target_aai)}"
    ended = k.ended_at(target_aai)
    if ended is not None:
        return (
            f"{who} sent '{handler}' to {target}, which terminated at tick {ended}; "
            f"an actor that terminates should tell those that send to it"
        )
    if handler in _API:
        return (
            f"{who} sent '{handler}' to {target}: '{handler}' belongs to the Actor API, "
            f"not to a message handler"
        )
    if handler.startswith("_"):
        return (
            f"{who} sent '{handler}' to {target}, but '{handler}' is private: handlers are "
            f"public methods (no leading underscore)"
        )
    handlers = handlers_of(cls)
    close = difflib.get_close_matches(handler, handlers, n=1)
    if close:
        return (
            f"{who} sent '{handler}' to {target}, which has no handler '{handler}'; "
            f"did you mean '{close[0]}'?"
        )
    owners = [c.__name__ for c in k.classes if c is not cls and handler in handlers_of(c)]
    if owners:
        return (
            f"{who} sent '{handler}' to {target}: that actor is a {cls.__name__}, which has no "
            f"handler '{handler}' ({', '.join(owners)} has one); check the AAI it sent to"
        )
    return (
        f"{who} sent '{handler}' to {target}, but class {cls.__name__} has no handler "
        f"'{handler}'; define `def {handler}(self, sender, ...)` on {cls.__name__}"
    )


_ENGINE = str(Path(__file__).resolve().parent)


def _send_site() -> str:
    """`` (file.py:42)``: the model's line that sent, for refusals (off the hot path)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_ENGINE):
        frame = frame.f_back
    if frame is None:
        return ""
    return f" ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})"


def signature_hint(handler: str, actor: Actor, exc: TypeError) -> str:
    """A handler that cannot take its message: usually the ``sender`` parameter is missing."""
    cls = type(actor)
    try:
        shown = f"({', '.join(inspect.signature(getattr(cls, handler)).parameters)})"
    except (TypeError, ValueError, AttributeError):
        shown = "(...)"
    return (
        f"handler {cls.__name__}.{handler}{shown} cannot take this message ({exc}); handlers "
        f"receive the sender's AAI first, then the message's arguments: "
        f"`def {handler}(self, sender, ...)`"
    )


def call_failed(exc: BaseException, *callers: CodeType) -> bool:
    """True when ``exc`` came from the call of a handler (by one of ``callers``), not from
    its body."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code in (*callers, _ADAPTER_CODE)


def _as_aai(sender: Actor, target_aai: Any, handler: Any) -> int:
    """Accept NumPy integers as AAIs; refuse bools and everything else."""
    if isinstance(target_aai, numbers.Integral) and not isinstance(target_aai, bool):
        return int(target_aai)
    _raise_bad_send(sender, target_aai, handler)


def _raise_bad_send(sender: Actor, target_aai: Any, handler: Any) -> NoReturn:
    raise MessageError(_refusal(sender, target_aai, handler))
