"""What may travel between actors: every message and creation argument must pickle.

A message to an actor on another rank is pickled; one to an actor on the same
rank is not. So that a model behaves the same on every layout, the kernel
checks every argument when it is sent, on one rank too: an argument that
cannot be pickled (a lambda, a generator, an open file, a list nested deeper
than the recursion limit) stops the run as a model failure naming the sender,
the target, the handler and the argument's type.

The check must not slow the hot path: arguments whose exact type is a plain
scalar (or a tuple of such) always pickle and are passed at once; only other
arguments (lists, dicts, objects) are pickled to find out, except NumPy arrays
of numbers, which always pickle.
"""

from __future__ import annotations

import pickle
import signal
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .errors import MessageError

# Exact types that always pickle (subclasses may not: they are tested).
PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})
_FIX = (
    "message and creation arguments must be plain data (numbers, strings, tuples, lists, "
    "dicts, NumPy arrays, AAIs), which every layout can pickle; see docs/tutorial.md"
)


def plain(args: tuple) -> bool:
    """True when every item of ``args`` is a plain scalar or a tuple of them (no pickling)."""
    for arg in args:
        kind = type(arg)
        if kind not in PLAIN_TYPES and not (kind is tuple and plain(arg)):
            return False
    return True


def unpicklable(value: Any) -> str | None:
    """Why ``value`` cannot be pickled ("TypeError: ..."), None when it can."""
    if type(value) is np.ndarray and not value.dtype.hasobject:  # a copy of its bytes
        return None
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except RecursionError:
        return "RecursionError: nested deeper than the recursion limit"
    except Exception as exc:  # PicklingError, TypeError, AttributeError: all say "cannot"
        return f"{type(exc).__name__}: {exc}"
    return None


def check_message(
    sender: int, target: int, handler: str, args: tuple, label: Callable[[int], str] = str
) -> None:
    """Raise MessageError naming the first argument of a message that cannot be pickled.

    ``label`` names an actor in the message (the kernel's gives its class and id).
    """
    bad = _first_unpicklable((f"argument {n}", arg) for n, arg in enumerate(args, 1))
    if bad is not None:
        name, value, why = bad
        raise MessageError(
            f"actor {label(sender)} sent '{handler}' to actor {label(target)} with {name} "
            f"of type {type(value).__name__}, which cannot be pickled ({why}); {_FIX}"
        )


def check_creation(
    creator: int,
    cls: type,
    hint: Any,
    tag: Any,
    kwargs: dict,
    label: Callable[[int], str] = str,
) -> None:
    """Raise MessageError naming the first argument of a creation that cannot be pickled."""
    if plain((hint, tag)) and plain(tuple(kwargs.values())):
        return
    named = {"hint": hint, "tag": tag, **{f"argument {k!r}": v for k, v in kwargs.items()}}
    bad = _first_unpicklable(named.items())
    if bad is not None:
        name, value, why = bad
        raise MessageError(
            f"actor {label(creator)} asked to create a {cls.__name__} with {name} of type "
            f"{type(value).__name__}, which cannot be pickled ({why}); {_FIX}"
        )


def _first_unpicklable(named: Iterable[tuple[str, Any]]) -> tuple[str, Any, str] | None:
    """(name, value, why) of the first value that cannot be pickled; plain ones are not tried."""
    for name, value in named:
        if type(value) in PLAIN_TYPES or (type(value) is tuple and plain(value)):
            continue
        why = unpicklable(value)
        if why is not None:
            return name, value, why
    return None


def users_interrupt(exc: BaseException) -> bool:
    """True for a KeyboardInterrupt while Python's own SIGINT handler is installed.

    Then it may be the user's Ctrl-C, which must propagate as usual. ``pydiasca
    run`` installs its own handler, which asks for a clean stop (status
    ``interrupted``), so a KeyboardInterrupt under it comes from model code.
    """
    return (
        isinstance(exc, KeyboardInterrupt)
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


def describe(exc: BaseException) -> str:
    """A model's exception in one line; sys.exit and KeyboardInterrupt say what they are."""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return (
            f"SystemExit: model code called sys.exit({code}); a model must not end the "
            f"process: raise an exception to stop the run with an error"
        )
    if isinstance(exc, KeyboardInterrupt):
        return (
            "KeyboardInterrupt raised by model code (a Ctrl-C from the user stops the run "
            "as interrupted, not failed)"
        )
    return f"{type(exc).__name__}: {exc}"
