"""The compiled mail (engine/_mail.c) against its Python reference (engine.mail._PyMail)."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest
from dense_support import digest, run_ranks

import engine.kernel
from engine import Actor
from engine.errors import MessageError
from engine.kernel import MODES
from engine.mail import Mail, _by_sender, _py_deliver, _PyMail, deliver
from engine.portable import PLAIN_TYPES
from models.phold import LP

IMPLEMENTATIONS = [_PyMail] + ([Mail] if Mail is not _PyMail else [])


def test_the_compiled_mail_is_built_where_the_compiled_streams_are():
    from engine.random import COMPILED

    assert (Mail is not _PyMail) == COMPILED
    assert (deliver is not _py_deliver) == COMPILED


def handler(actor, sender):  # a handler function as the directory holds it
    pass


def other(actor, sender):
    pass


def _mail(cls, checked):
    table = {"ping": handler, "pong": other}
    directory = [(-1, {}, -1), (0, table, 0), (0, table, 0), (1, table, 0), (2, table, 0)]
    directory.append((0, MappingProxyType({}), 0))  # an ended actor

    def check(sender, target, name, args):
        checked.append((sender, target, name, args))
        if any(isinstance(a, set) for a in args):
            raise MessageError("a set cannot travel")

    return cls(directory, 0, PLAIN_TYPES, check)


POSTS = [
    (1, 2, "ping", ()),
    (3, 2, "pong", (1, 2.5)),
    (4, 2, "ping", ("x", None)),  # three messages for one target: a list
    (1, 1, "ping", ([1, 2],)),  # checked: a list
    (1, 3, "ping", (7,)),  # rank 1: an envelope
    (2, 3, "pong", ()),
    (1, 4, "ping", (np.ones(2),)),  # rank 2, checked
    (1, 0, "ping", ()),  # no actor 0
    (1, -1, "ping", ()),
    (1, 6, "ping", ()),  # past the last AAI
    (1, 2**70, "ping", ()),
    (1, 2, "nope", ()),  # no such handler
    (1, 2, ["unhashable"], ()),
    (1, 5, "ping", ()),  # an ended actor: no handlers
    (1, "2", "ping", ()),
]


@pytest.mark.parametrize("cls", IMPLEMENTATIONS)
def test_post_routes_refuses_and_checks_like_the_reference(cls):
    ref_checked, checked = [], []
    ref, mail = _mail(_PyMail, ref_checked), _mail(cls, checked)
    for sender, target, name, args in POSTS:
        assert mail.post(sender, target, name, args) == ref.post(sender, target, name, args)
    assert mail.inbox == ref.inbox and mail.outbox == ref.outbox and mail.extra == ref.extra
    assert mail.extra == 2 and sorted(mail.inbox) == [1, 2] and sorted(mail.outbox) == [1, 2]
    assert checked == ref_checked and len(checked) == 2
    with pytest.raises(MessageError, match="a set cannot travel"):
        mail.post(1, 2, "ping", ({1},))
    assert mail.post(1, 2, "ping", ()) is True
    envelopes = mail.take_outbox()[1]
    assert mail.outbox == {}
    mail.accept(envelopes)
    ref.take_outbox()
    ref.post(1, 2, "ping", ())
    ref.accept(envelopes)
    inbox, count = mail.take()
    assert (inbox, count) == ref.take() and count == 7  # 4 for actor 2, 1 for 1, 2 accepted
    assert mail.inbox == {} and mail.extra == 0


class Gossip(Actor):
    """Messages of every shape: one or several per target, 0 to 3 arguments, lists."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        r = self.random
        for k in range(1 + r.integers(0, 3)):
            dest = 1 + r.integers(0, self.n)
            [self.send(dest, "hear"), self.send(dest, "hear", k), self.send(dest, "told", k, [k])][
                r.integers(0, 3)
            ]
        if self.tick < 30:
            self.schedule_in(1 + r.integers(0, 3))

    def hear(self, sender: int, *what) -> None:
        self.record("heard", sender + sum(what))

    def told(self, sender: int, k: int, items: list) -> None:
        self.record("told", sender * 10 + k + len(items))


def _world(k):
    k.add_actors(Gossip, 40, None, n=40)
    k.add_actors(LP, 40, None, n_lps=40, first=41, mean=2.0, record_every=5)


@pytest.mark.parametrize("mode", ["reproducible", "ergodic", "fastest"])
@pytest.mark.parametrize("ranks", [1, 3])
def test_runs_on_either_mail_and_loop_give_the_same_results(monkeypatch, ranks, mode):
    results = []
    for cls, loop in ((_PyMail, _py_deliver), (Mail, deliver), (_PyMail, deliver)):
        monkeypatch.setattr(engine.kernel, "Mail", cls)
        monkeypatch.setattr(engine.kernel, "deliver", loop)
        kernels = run_ranks(ranks, _world, stop_tick=40, mode=mode)
        results.append((digest(kernels), sum(k.stats.messages for k in kernels)))
    assert results[0] == results[1] == results[2] and results[0][1] > 1000


def test_the_ergodic_mode_shuffles_several_messages():
    digests = {mode: digest(run_ranks(1, _world, stop_tick=40, mode=mode)) for mode in MODES}
    assert digests["ergodic"] != digests["reproducible"]


class Forgetful(Actor):
    def on_first_diasca(self) -> None:
        self.send(self.aai, "hear", 3)
        self.send(self.aai, "hear", 4)  # a list of two: the other branch of the loop

    def hear(self, amount: int) -> None:  # no sender parameter
        pass


class Many(Actor):
    def on_first_diasca(self) -> None:
        self.send(self.aai, "hear", *range(9))  # more arguments than the loop spells out

    def hear(self, sender: int, *values: int) -> None:
        self.record("sum", sender + sum(values))


@pytest.mark.parametrize("loop", sorted({_py_deliver, deliver}, key=id))
def test_either_loop_names_the_handler_that_cannot_take_its_message(monkeypatch, loop):
    monkeypatch.setattr(engine.kernel, "deliver", loop)
    (k,) = run_ranks(1, lambda k: k.add_actors(Forgetful, 2), stop_tick=3)
    (f,) = k.stats.failures
    assert (f.aai, f.handler, f.diasca) == (1, "hear", 1)
    assert f.message.startswith("MessageError: handler Forgetful.hear(self, amount) cannot take")
    (k,) = run_ranks(1, lambda k: k.add_actors(Many), stop_tick=3)
    assert not k.stats.failures and k.stats.messages == 1


@pytest.mark.parametrize("cls", IMPLEMENTATIONS)
@pytest.mark.parametrize("loop", sorted({_py_deliver, deliver}, key=id))
def test_delivery_spends_the_inbox_and_its_entries_serve_again(cls, loop):
    # The compiled loop keeps delivered entries for the next posts (engine/_mail.c,
    # recycle): the inbox is left empty, after a failure too, and the next diasca's
    # messages arrive intact.
    got = []

    def note(actor, sender, *args):
        if args == ("fail",):
            raise RuntimeError("fail")
        got.append((actor, sender, args))

    table = {"note": note}
    directory = [(-1, {}, -1)] + [(0, table, 0)] * 4
    mail = cls(directory, 0, PLAIN_TYPES, lambda *a: None)
    actors = [None, "a1", "a2", "a3", "a4"]
    for round_ in range(3):
        for sender, target in ((1, 2), (3, 2), (2, 4), (4, 1)):
            assert mail.post(sender, target, "note", (round_, sender))
        inbox, count = mail.take()
        loop(inbox, actors, _by_sender, False, [0, None])
        assert inbox == {} and count == 4
    assert got == [
        (actor, sender, (r, sender))
        for r in range(3)
        for actor, sender in (("a2", 1), ("a2", 3), ("a4", 2), ("a1", 4))
    ]
    for sender, target, args in ((1, 2, (9,)), (2, 3, ("fail",)), (3, 4, (9,))):
        assert mail.post(sender, target, "note", args)
    inbox, _ = mail.take()
    where = [0, None]
    with pytest.raises(RuntimeError, match="fail"):
        loop(inbox, actors, _by_sender, False, where)
    assert inbox == {} and where == [3, note]
    assert mail.post(1, 2, "note", ("again",))
    inbox, _ = mail.take()
    assert inbox == {2: (1, note, ("again",))}
