"""A rank's mail: messages posted this diasca, for this rank's inbox or for other ranks.

``post`` is the hottest call of an actor model after the handlers themselves,
so ``engine._mail.Mail`` (C, built with the package when a compiler is at hand)
does exactly what :class:`_PyMail`, the reference below, does. The delivery loop
is the hottest after it: ``engine._mail.deliver`` does what ``_py_deliver`` does.
The tests run the same models on both and compare them.

The inbox maps a target AAI to one ``InboxEntry`` (sender, handler function,
args), or to a list of them when several messages reach it in one diasca;
``extra`` counts the messages beyond the first per target, so that
``len(inbox) + extra`` is the number of messages. The outbox maps a rank to its
envelopes (target, sender, handler name, args).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from .transport import Envelope, InboxEntry

Inbox = dict[int, InboxEntry | list[InboxEntry]]


class _PyMail:
    """The reference mail.

    ``directory`` is the kernel's list of entries (rank, handlers, class number);
    ``plain`` the argument types that need no picklability check, and
    ``check(sender, target, handler, args)`` the check of the others.
    """

    __slots__ = ("_directory", "_rank", "_plain", "_check", "inbox", "outbox", "extra")

    def __init__(
        self, directory: list, rank: int, plain: frozenset, check: Callable[..., None]
    ) -> None:
        self._directory, self._rank, self._plain, self._check = directory, rank, plain, check
        self.inbox: Inbox = {}
        self.outbox: dict[int, list[Envelope]] = {}
        self.extra = 0

    def post(self, sender: int, target: int, handler: str, args: tuple) -> bool:
        """Queue a message for the next diasca: this rank's inbox, or another rank's batch.

        False, and nothing queued, when ``target`` is no actor or has no such handler.
        """
        try:
            rank, handlers, _ = self._directory[target]
            fn = handlers.get(handler)
            if fn is None or target <= 0:
                return False
        except (IndexError, TypeError):  # an AAI past the last, an unhashable handler
            return False
        plain = self._plain
        for arg in args:  # every argument must pickle, on every layout: see engine.portable
            if type(arg) not in plain:
                self._check(sender, target, handler, args)
                break
        if rank != self._rank:  # other ranks get the handler's name
            self.outbox.setdefault(rank, []).append((target, sender, handler, args))
            return True
        inbox = self.inbox
        box = inbox.get(target)
        if box is None:  # the common case: one message per target and diasca
            inbox[target] = (sender, fn, args)
        elif type(box) is tuple:
            inbox[target] = [box, (sender, fn, args)]
            self.extra += 1
        else:
            box.append((sender, fn, args))
            self.extra += 1
        return True

    def accept(self, envelopes: list[Envelope]) -> None:
        """Put messages from other ranks into the inbox, as ``post`` does local ones."""
        inbox, directory, extra = self.inbox, self._directory, 0
        for target, sender, handler, args in envelopes:
            fn = directory[target][1][handler]  # the sender's rank checked the name
            box = inbox.get(target)
            if box is None:
                inbox[target] = (sender, fn, args)
            elif type(box) is tuple:
                inbox[target] = [box, (sender, fn, args)]
                extra += 1
            else:
                box.append((sender, fn, args))
                extra += 1
        self.extra += extra

    def take(self, hint: int = 0) -> tuple[Inbox, int]:
        """The inbox and its message count, for delivery; new posts start a new inbox.

        ``hint``: how many targets the new inbox may expect (the C mail sizes it at once).
        """
        inbox, count = self.inbox, len(self.inbox) + self.extra
        self.inbox, self.extra = {}, 0
        return inbox, count

    def take_outbox(self) -> dict[int, list[Envelope]]:
        """This diasca's envelopes by rank, for the exchange; new posts start a new outbox."""
        outbox, self.outbox = self.outbox, {}
        return outbox


def _py_deliver(
    items: Inbox | list[tuple[int, InboxEntry | list[InboxEntry]]],
    actors: list,
    key: Callable[[InboxEntry], Any] | None,
    ergodic: bool,
    where: list,
) -> None:
    """Call every message's handler on its target, as ``fn(actor, sender, *args)``.

    ``items`` is an inbox (taken in its order) or a list of (target, entry or
    entries) pairs. Several messages for one target are sorted with ``key``
    (stable: each sender's messages stay in send order), then shuffled with the
    target's own generator when ``ergodic``; ``key`` None leaves them in arrival
    order. On a failure, ``where`` holds the target's AAI and the handler
    function that failed (None when the failure was not in a handler). An inbox
    (a dict) is left empty, after a failure too (the run stops then): the
    compiled loop keeps its entries for the next posts.
    """
    inbox = items if type(items) is dict else None
    if inbox is not None:
        items = inbox.items()
    target = 0
    try:
        for target, msgs in items:
            actor = actors[target]  # never an ended actor: sends to those are refused
            if type(msgs) is tuple:  # the common case: one message
                msgs = (msgs,)
            elif key is not None:
                msgs.sort(key=key)
                if ergodic:
                    actor.random.shuffle(msgs)
            for sender, fn, args in msgs:
                try:
                    n = len(args)  # spelled out: a call with *args costs twice as much
                    if n == 0:
                        fn(actor, sender)
                    elif n == 1:
                        fn(actor, sender, args[0])
                    elif n == 2:
                        fn(actor, sender, args[0], args[1])
                    else:
                        fn(actor, sender, *args)
                except BaseException:
                    where[1] = fn
                    raise
    except BaseException:
        where[0] = target
        raise
    finally:
        if inbox is not None:
            inbox.clear()


try:
    from ._mail import Mail, deliver
    from ._mail import by_sender as _by_sender  # the C loop knows it: no sort when in order
except ImportError:  # built without a C compiler: the same mail, slower
    Mail: Any = _PyMail
    deliver = _py_deliver
    _by_sender = itemgetter(0)  # the kernel's key for one target's messages

__all__: list[str] = []  # a unit of the kernel; nothing public
