"""Actor state by column in checkpoints: every value comes back with its type, and sharing.

``engine._columns`` flattens the attributes of many actors into NumPy arrays;
these tests compare pickles of the values before and after (a pickle records
types, float bits, and which objects are the same object), then do the same
through a whole part file and ``engine.snapshot.restore``.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from conftest import ROOT  # noqa: F401 - puts the checkout on sys.path

from engine import Actor, Kernel
from engine import snapshot as snap
from engine._columns import decode, encode
from runtime import _partfile
from runtime.checkpoint import _load, _records


class _List(list):
    pass


class _Thing:
    def __init__(self, x: int) -> None:
        self.x = x


def _column(*values):
    """The column of ``values`` as the snapshot takes it: each value held by its actor's dict."""
    owners = [{"v": v} for v in values]
    return owners, [o["v"] for o in owners]


def _round_trip(values: list) -> tuple[str, list]:
    node = pickle.loads(pickle.dumps(encode(values), protocol=5))
    return node[0], decode(node, len(values))


CASES = {
    "ints": ([1, -2, 3, 2**62], "i8"),
    "one int": ([7, 7, 7], "same"),
    "equal ints, distinct objects": ([10**6 + 1, 10**6 + 1], "same"),
    "big ints": ([1, 2**70], "obj"),
    "floats": ([0.5, -0.0, math.inf, math.nan], "f8"),
    "zero and minus zero": ([0.0, -0.0], "f8"),
    "bools": ([True, False, True], "b1"),
    "ints and bools": ([1, True, 0], "obj"),
    "ints and floats": ([1, 1.0], "obj"),
    "strings": (["a", "b"], "obj"),
    "one string": (["ab", "ab"], "same"),
    "None": ([None, None], "same"),
    "None and ints": ([None, 3], "obj"),
    "dicts of lists of ints": ([{3: [1, 2], 5: []}, {}, {4: [9]}], "dict"),
    "lists of floats": ([[1.5, 2.5], [], [-0.0]], "list"),
    "lists of lists": ([[[1], [2, 3]], [[]]], "list"),
    "dicts of str to float": ([{"a": 1.0}, {"b": 2.0, "c": 3.0}], "dict"),
    "tuples": ([(1, 2), (3,)], "tuple"),
    "a list subclass": ([_List([1])], "any"),
    "arrays": ([np.arange(3), np.zeros(2)], "any"),
    "objects": ([_Thing(1), _Thing(2)], "any"),
    "lists holding objects": ([[_Thing(1)], []], "any"),
    "NumPy ints": ([np.int64(1), np.int64(2)], "any"),
}


@pytest.mark.parametrize("name", CASES)
def test_a_column_comes_back_value_for_value_and_type_for_type(name):
    values, tag = CASES[name]
    _, column = _column(*pickle.loads(pickle.dumps(values)))  # held by their owners only
    got, back = _round_trip(column)
    assert got == tag
    assert pickle.dumps(back) == pickle.dumps(values)


def test_a_list_held_twice_is_pickled_and_stays_one_object():
    shared = [1, 2]
    owners = [{"a": shared, "b": shared}, {"a": [3], "b": [4]}]
    a = [o["a"] for o in owners]
    assert encode(a)[0] == "any"
    _, column = _column([1], [2])
    assert encode(column)[0] == "list"


class _Mixed(Actor):
    def __init__(self, i: int) -> None:
        self.i = i
        self.f = i / 3
        self.same = 42
        self.name = f"m{i}"
        self.pending = {i + 1: [i, i + 2], i + 5: []}
        self.history = [float(i)] * (i % 3)
        shared = [i]
        self.left, self.right = shared, shared
        self.thing = _Thing(i)

    def on_first_diasca(self) -> None:
        self.random.random()
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        self.schedule_in(1)


class _Ragged(_Mixed):
    def __init__(self, i: int) -> None:
        super().__init__(i)
        if i % 2:
            self.extra = None  # not every actor has the same attributes


class _Custom(Actor):
    def __init__(self) -> None:
        self.hidden = lambda: 1
        self.kept = [1.0, 2.0]

    def __getstate__(self) -> dict:
        return {"kept": self.kept}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.hidden = lambda: 1


def test_a_part_restores_every_actor_exactly(tmp_path):
    def build() -> Kernel:
        k = Kernel(stop_tick=5, seed=3)
        for i in range(40):
            k.add_actors(_Mixed, 1, None, None, i=i)
        for i in range(5):
            k.add_actors(_Ragged, 1, None, None, i=i)
        k.add_actors(_Custom)
        return k

    k = build()
    saved: dict = {}

    def at_end(kernel: Kernel, next_tick: int) -> bool:
        sha, size = _partfile.write(tmp_path / "rank-0.part", _records(kernel, next_tick))
        assert size == (tmp_path / "rank-0.part").stat().st_size
        for actor in kernel._actors[1:]:
            saved[actor.aai] = (pickle.dumps(snap.state_of(actor)), actor.random.state)
        return False

    k.at_tick_end = at_end
    k.run()
    part = _load(tmp_path / "rank-0.part")
    assert len(part["chunks"]) == 3  # one per class
    first = part["chunks"][0]
    tags = {name: node[0] for name, node in zip(first["names"], first["columns"], strict=True)}
    assert tags == {
        "i": "i8",
        "f": "f8",
        "same": "same",
        "name": "obj",
        "pending": "dict",
        "history": "list",
        "left": "any",
        "right": "any",
        "thing": "any",
    }
    assert "states" in part["chunks"][1] and "names" in part["chunks"][2]
    fresh = Kernel(stop_tick=5, seed=3)
    snap.restore(fresh, part["shared"], [part])
    for aai, (state, generator) in saved.items():
        actor = fresh._actors[aai]
        assert pickle.dumps(snap.state_of(actor)) == state
        assert actor.random.state == generator
    one = fresh._actors[2]
    assert one.left is one.right and type(one.pending) is dict
    assert callable(fresh._actors[46].hidden)


@pytest.mark.parametrize(("ragged", "count"), [(False, 20), (True, 20), (False, 1)])
def test_the_compiled_helpers_give_what_the_python_ones_give(monkeypatch, ragged, count):
    from engine import _columns

    k = Kernel(stop_tick=5, seed=3)
    for i in range(count):
        k.add_actors(_Ragged if ragged else _Mixed, 1, None, None, i=i)
    chunks: list = []

    def at_end(kernel: Kernel, next_tick: int) -> bool:
        encoded = list(snap.actor_chunks(kernel))
        chunks.append((encoded, [snap._states(c) for c in encoded]))
        for name in ("_fields", "_live", "_hashes", "_item_ints"):
            monkeypatch.setattr(snap, name, None)
        for name in ("_columns_c", "_flatten", "_numbers_c", "_records_c", "_same_item"):
            monkeypatch.setattr(_columns, name, None)
        for name in ("_unflatten", "_attributes_c", "_names_c"):
            monkeypatch.setattr(_columns, name, None)
        encoded = list(snap.actor_chunks(kernel))
        chunks.append((encoded, [snap._states(c) for c in encoded]))
        return False

    k.at_tick_end = at_end
    k.run()
    (compiled, states), (python, python_states) = chunks
    assert pickle.dumps(compiled) == pickle.dumps(python)
    assert pickle.dumps(states) == pickle.dumps(python_states)
    assert ("states" in compiled[0]) == ragged


def test_the_compiled_reader_takes_the_actor_core_it_is_built_with():
    """The C reader must accept the slots of whichever actor core is in use (the
    compiled core stores creations and the termination flag unboxed), not fall back."""
    if snap._fields is None:
        pytest.skip("built without a C compiler")
    k = Kernel(stop_tick=5, seed=3)
    for i in range(6):
        k.add_actors(_Mixed, 1, None, None, i=i)
    seen: list = []

    def at_end(kernel: Kernel, next_tick: int) -> bool:
        actors = [a for a in kernel._actors if a is not None]
        actors[2]._ncreated, actors[4]._terminating = 7, True
        n = len(actors)
        out = [np.empty(n, t) for t in (np.int64, np.uint64, np.uint64, np.int64, np.bool_)]
        dicts = snap._fields(actors, snap._SLOTS, *out, True)
        seen.append(n)
        assert out[0].tolist() == [a.aai for a in actors]
        assert out[1].tolist() == [a.random._key for a in actors]
        assert out[2].tolist() == [a.random._count for a in actors]
        assert out[3].tolist() == [a._ncreated for a in actors]
        assert out[4].tolist() == [a._terminating for a in actors]
        assert dicts == [a.__dict__ for a in actors]
        actors[4]._terminating = False
        return False

    k.at_tick_end = at_end
    k.run()
    assert seen == [6]


class _Plain(Actor):
    def __init__(self, i: int) -> None:
        self.i, self.f, self.name = i, i / 2, "plain"

    def on_first_diasca(self) -> None:
        self.schedule_in(1)

    def act_spontaneous(self) -> None:
        self.i += 1
        self.schedule_in(1)


def _has_built_dict(actor: Actor) -> bool:
    """Whether CPython built the actor's __dict__: its referents then hold a dict (its own
    attributes here are no dicts); before, they hold the attribute values themselves."""
    import gc

    return any(type(r) is dict for r in gc.get_referents(actor))


def test_a_checkpoint_does_not_build_the_actors_dicts(tmp_path):
    """On CPython 3.11, building an instance's __dict__ slows every later attribute access
    of it (20 to 35% of a PHOLD tick, measured): the compiled reader reads the attributes
    where the instance keeps them, and so does the kernel's check for state shared between
    actors when it builds them. Where it cannot, the test says so by skipping."""
    import sys

    from engine import _columns

    if _columns._attributes_c is None or sys.version_info[:2] != (3, 11):
        pytest.skip("reads attributes without __dict__ only compiled, on CPython 3.11")
    k = Kernel(stop_tick=5, seed=3)
    k.add_actors(_Plain, 30, None, None, i=4)
    seen: list = []

    def at_end(kernel: Kernel, next_tick: int) -> bool:
        actors = [a for a in kernel._actors if a is not None]
        assert not any(map(_has_built_dict, actors))
        chunks = list(snap.actor_chunks(kernel))
        assert not any(map(_has_built_dict, actors))
        seen.append(chunks)
        assert chunks[0]["names"] == ["i", "f", "name"]
        _partfile.write(tmp_path / "rank-0.part", _records(kernel, next_tick))
        actors[3].__dict__  # noqa: B018 - built for one actor: it is read from its dict
        assert _has_built_dict(actors[3])
        again = list(snap.actor_chunks(kernel))
        assert pickle.dumps(again) == pickle.dumps(chunks)
        return False

    k.at_tick_end = at_end
    k.run()
    assert seen
    part = _load(tmp_path / "rank-0.part")
    fresh = Kernel(stop_tick=5, seed=3)
    snap.restore(fresh, part["shared"], [part])
    restored = [a for a in fresh._actors if a is not None]
    assert len(restored) == 30 and not any(map(_has_built_dict, restored))
    assert [(a.i, a.f, a.name) for a in restored] == [(4, 2.0, "plain")] * 30
