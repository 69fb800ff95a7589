"""A rank's kernel as plain data at a tick boundary, and a kernel restored from such data.

Checkpoints (``runtime.checkpoint``) are taken when a tick is over: its last
diasca was quiet on every rank, so no message, creation, notice or termination
is in flight. The rest of the run is then a function of what ``snapshot``
returns on every rank: each actor (AAI, its own state, its generator, its
creation count, its termination flag) and its plans, the replicated directory
(class by AAI, scenario ids, ended actors, where actors came from), the next
AAI, each population's tile, pending posts and (replicated) parameters and
aggregates, the probes' declarations and the run's statistics.

``restore`` fills a kernel built for the same scenario (its populations
declared, no actors) from the parts of every rank of the checkpointed run,
whatever the number of ranks then and now: every actor is placed again by the
new kernel's placement, in AAI order, so ranks are never part of a snapshot.

An actor's own state is its ``__dict__``, or what its class's ``__getstate__``
returns (and ``__setstate__`` takes back). It must pickle: ``problem`` names
the first actor and attribute that does not.
"""

from __future__ import annotations

import gc
import itertools
import pickle
from array import array
from collections.abc import Iterable, Iterator
from itertools import islice, repeat
from operator import attrgetter, is_not, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from ._columns import decode, encode_attributes, encode_states, rows
from .actor import Actor
from .portable import unpicklable
from .probes import ProbeDeclaration
from .random import Random

if TYPE_CHECKING:
    from .kernel import Kernel

try:  # the engine's slots of many actors at once, in C
    from ._stream import fields as _fields
except ImportError:  # built without a C compiler: the same arrays, slower
    _fields = None
try:  # one pass in C over many actors, sets of AAIs, directory entries
    from ._packing import hashes as _hashes
    from ._packing import item_ints as _item_ints
    from ._packing import live as _live
except ImportError:
    _hashes = _item_ints = _live = None

FORMAT = 3  # of the snapshot's structure; runtime.checkpoint refuses another
# 3: population fields pickled row by row (_Rows), not copied first
CHUNK = 1 << 16  # actors per chunk: the writer writes one while the next is encoded

_RANDOM, _AAI, _NCREATED = attrgetter("_random"), attrgetter("_aai"), attrgetter("_ncreated")
_KEY, _COUNT, _DICT = attrgetter("_key"), attrgetter("_count"), attrgetter("__dict__")
_TERMINATING, _THIRD = attrgetter("_terminating"), itemgetter(2)
# The slots' descriptors, wherever in Actor's bases they are defined; with the compiled
# actor core some are not object slots, and the C reader declines them (TypeError).
_SLOTS = tuple(getattr(Actor, name) for name in ("_aai", "_random", "_ncreated", "_terminating"))


def snapshot(kernel: Kernel, next_tick: int) -> dict[str, Any]:
    """This rank's part of a checkpoint taken after ``kernel.tick``, before ``next_tick``,
    but its actors: ``actor_chunks`` gives those.

    Rank 0's part also holds what every rank shares (key ``"shared"``).
    """
    k = kernel
    _check_quiet(k)
    stats = k.stats
    part: dict[str, Any] = {
        "rank": k._rank,
        "plans": [(tick, _sorted(aais, k._next_aai)) for tick, aais in k.agenda.items()],
        "counts": (stats.messages, stats.spontaneous, stats.deleted),
        "declarations": {n: (d.unit, d.labels) for n, d in k.probes.declarations.items()},
        "populations": [_population_part(p) for p in k._populations],
        "run_order": k._shuffle.__self__.getstate() if k._shuffle is not None else None,
    }
    if k._rank == 0:
        part["shared"] = _shared(k, next_tick)
    return part


def _sorted(aais: set[int], next_aai: int) -> np.ndarray:
    """A set of AAIs as a sorted array. Compiled, they are read from the set's table: the
    hash of an int in [0, 2**61 - 1) is the int, and AAIs are ints from 1 up."""
    if _hashes is None or type(aais) is not set:
        found = np.fromiter(aais, np.int64, len(aais))
    else:
        found = np.empty(len(aais), np.int64)
        _hashes(aais, found)
    found.sort(kind="stable")  # radix: O(n)
    if len(found) and (found[0] < 1 or found[-1] >= next_aai):
        raise RuntimeError("the agenda holds something that is not an AAI")
    return found


def _class_ids(directory: list) -> np.ndarray:
    """The class id of every AAI's directory entry (its third item), AAI 0 left out."""
    n = len(directory) - 1
    if _item_ints is None:
        return np.fromiter(map(_THIRD, islice(directory, 1, None)), np.int32, n)
    ids = np.empty(n, np.int32)
    _item_ints(directory, 1, 2, ids)
    return ids


def _shared(k: Kernel, next_tick: int) -> dict[str, Any]:
    names, stats = k._names, k.stats
    return {
        "format": FORMAT,
        "tick": k.tick,
        "next_tick": next_tick,
        "next_aai": k._next_aai,
        "seed": k.seed,
        "mode": k.mode,
        "classes": list(names._classes),
        "class_ids": _class_ids(k._directory),
        "idents": list(names._idents),
        "ended": dict(names._ended),
        "creators": names.creators,
        "hints": list(names.hints),
        "stats": (stats.ticks, stats.diascas, stats.created),
        "populations": [_population_shared(p) for p in k._populations],
    }


def _check_quiet(k: Kernel) -> None:
    mail = k._mail
    if mail.inbox or mail.outbox or k._creations or k._born or k._notices or k._terminating:
        raise RuntimeError("a snapshot is taken between ticks, with nothing in flight")


def actor_chunks(kernel: Kernel, size: int = CHUNK) -> Iterator[dict[str, Any]]:
    """This rank's actors, by class and then AAI, in chunks of at most ``size`` actors.

    A chunk holds the engine's fields of its actors as NumPy arrays (``aai``,
    ``key`` and ``count`` of their generators, ``ncreated``, ``terminating``)
    and their own states: by attribute (``names`` and their ``columns``, see
    ``engine._columns``) when every state is a dict with the same keys, else
    as a list (``states``), pickled as it is.
    """
    _check_quiet(kernel)
    everyone = kernel._actors
    if _live is not None:
        live, kinds = _live(everyone)
    else:
        live = [a for a in everyone if a is not None]
        kinds = set(map(type, live))
    if len(kinds) <= 1:
        groups = [(live, None)]
    else:
        aais = np.flatnonzero(list(map(is_not, everyone, repeat(None))))
        order = {cls: i for i, cls in enumerate(dict.fromkeys(map(type, live)))}  # first AAI
        ids = np.fromiter(map(order.__getitem__, map(type, live)), np.int64, len(live))
        rows = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[rows], np.arange(len(order) + 1)).tolist()
        groups = [
            (list(map(live.__getitem__, rows[a:b].tolist())), aais[rows[a:b]])
            for a, b in itertools.pairwise(bounds)
        ]
    for actors, numbers in groups:
        for start in range(0, len(actors), size):
            part = None if numbers is None else numbers[start : start + size]
            yield _chunk(actors[start : start + size], part)


def _chunk(actors: list, aais: np.ndarray | None) -> dict[str, Any]:
    n, cls = len(actors), type(actors[0])
    plain = cls.__getstate__ is object.__getstate__
    chunk: dict[str, Any] = {"n": n, **_engine_fields(actors, aais)}
    states = None if plain else list(map(state_of, actors))
    by_name = encode_attributes(actors) if plain else encode_states(states)
    if by_name is None:  # not dicts with the same keys
        chunk["states"] = states if states is not None else list(map(_DICT, actors))
    else:
        chunk["names"], chunk["columns"] = by_name
    return chunk


def _engine_fields(actors: list, aais: Any) -> dict[str, np.ndarray]:
    """The engine's slots of ``actors`` as arrays (AAI, generator key and count, creations,
    termination flag). ``aais`` are their AAIs if known (None: read them)."""
    n = len(actors)
    if _fields is not None:
        out = {
            "aai": np.empty(n, np.int64),
            "key": np.empty(n, np.uint64),
            "count": np.empty(n, np.uint64),
            "ncreated": np.empty(n, np.int64),
            "terminating": np.empty(n, np.bool_),
        }
        try:
            _fields(actors, _SLOTS, *out.values(), False)
            return out
        except TypeError:  # a generator from the Python reference, say
            pass
    randoms = list(map(_RANDOM, actors))
    return {
        "aai": np.fromiter(map(_AAI, actors), np.int64, n)
        if aais is None
        else aais.astype(np.int64),
        "key": np.fromiter(map(_KEY, randoms), np.uint64, n),
        "count": np.fromiter(map(_COUNT, randoms), np.uint64, n),
        "ncreated": np.fromiter(map(_NCREATED, actors), np.int64, n),
        "terminating": np.fromiter(map(_TERMINATING, actors), np.bool_, n),
    }


def state_of(actor: Actor) -> Any:
    """An actor's own state: its ``__getstate__()`` if its class defines one, else its dict."""
    if type(actor).__getstate__ is object.__getstate__:
        return actor.__dict__
    return actor.__getstate__()


def problem(kernel: Kernel) -> str:
    """Why this rank's actors cannot be checkpointed (the first attribute that does not
    pickle), "" when they can. Slow: for after pickling failed."""
    for actor in kernel._actors:
        if actor is None:
            continue
        state = state_of(actor)
        named = state.items() if type(state) is dict else [("__getstate__()", state)]
        for name, value in named:
            why = unpicklable(value)
            if why is not None:
                return (
                    f"actor {kernel.label(actor._aai)} cannot be checkpointed: its attribute "
                    f"{name!r} of type {type(value).__name__} cannot be pickled ({why}); keep "
                    f"actor state plain data, or define __getstate__/__setstate__ "
                    f"(docs/checkpoints.md)"
                )
    return ""


def _population_part(pop: Any) -> dict[str, Any]:
    lay = pop._layout
    (ly, lx), (hy, hx) = lay.local_shape, lay.halo
    posts = pop._posts
    return {
        "tile": lay.tile,
        "fields": {n: _tile(a[hy : hy + ly, hx : hx + lx]) for n, a in pop._cur.items()},
        "posts": (list(posts._buffer), dict(posts._seq)),
    }


_ROW_BYTES = 1 << 12  # rows at least this long are pickled one by one rather than copied


def _tile(view: np.ndarray) -> Any:
    """A field's tile (a view inside its halo) as a part holds it: without a copy of the
    field when its rows are long, since a copy of a large field costs as much as writing it
    (and as much memory)."""
    if view.flags.c_contiguous or view.ndim != 2 or view.strides[1] != view.itemsize:
        return np.ascontiguousarray(view)
    if view.shape[1] * view.itemsize < _ROW_BYTES:
        return view.copy()
    return _Rows(view)


class _Rows:
    """A 2-D array whose rows are each contiguous, pickled (protocol 5) row by row out of
    band; it unpickles as a plain array."""

    __slots__ = ("view",)

    def __init__(self, view: np.ndarray) -> None:
        self.view = view

    def __reduce_ex__(self, protocol: int) -> tuple:
        v = self.view
        if protocol < 5:
            return (np.array, (v,))
        rows = [pickle.PickleBuffer(row) for row in v]
        return (_stack, (v.dtype.str, v.shape, rows))


def _stack(dtype: str, shape: tuple[int, int], rows: list) -> np.ndarray:
    """The array that ``_Rows`` pickled."""
    out = np.empty(shape, dtype)
    for i, row in enumerate(rows):
        out[i] = np.frombuffer(row, dtype)
    return out


def _population_shared(pop: Any) -> dict[str, Any]:
    aggs = pop._aggregates
    return {
        "name": pop.name,
        "params": {n: a.copy() for n, a in pop._posts.params.items()},
        "watch_keys": aggs._watch_keys,
        "holders": aggs._holders,
        "visible": aggs._visible,
        "pending": aggs.pending,
    }


# --- restore -----------------------------------------------------------------------


def restore(kernel: Kernel, shared: dict[str, Any], parts: Iterable[dict[str, Any]]) -> None:
    """Fill ``kernel`` (populations declared, no actors, not run) from a checkpoint.

    ``shared`` is rank 0's ``"shared"``; ``parts`` yields every rank's part in
    turn (one at a time, so that only one is in memory).
    """
    collecting = gc.isenabled()
    gc.disable()  # a million new dicts would start collection after collection
    try:
        _restore(kernel, shared, parts)
    finally:
        if collecting:
            gc.enable()


def _restore(k: Kernel, shared: dict[str, Any], parts: Iterable[dict[str, Any]]) -> None:
    if k._next_aai != 1 or k._initial:
        raise RuntimeError("restore needs a kernel without actors")
    if len(shared["populations"]) != len(k._populations):
        raise RuntimeError("the checkpoint's populations are not the scenario's")
    _restore_directory(k, shared)
    build = _builder(k, shared)
    counts = [0, 0, 0]
    declared: dict[str, ProbeDeclaration] = {}
    for part in parts:
        for chunk in part["chunks"]:
            columns = [chunk[c].tolist() for c in ("key", "count", "ncreated", "terminating")]
            for record in zip(chunk["aai"].tolist(), _states(chunk), *columns, strict=True):
                build(*record)
        mine = k._actors
        for tick, aais in part["plans"]:
            here = [aai for aai in aais.tolist() if mine[aai] is not None]
            if here:
                k.agenda[tick].update(here)
        counts = [a + b for a, b in zip(counts, part["counts"], strict=True)]
        for name, (unit, labels) in part["declarations"].items():
            declared.setdefault(name, ProbeDeclaration(unit, tuple(labels)))
        for pop, saved in zip(k._populations, part["populations"], strict=True):
            _restore_tile(pop, saved, k._rank == 0)
        if part["rank"] == k._rank and part["run_order"] is not None and k._shuffle is not None:
            k._shuffle.__self__.setstate(part["run_order"])
    for pop, saved in zip(k._populations, shared["populations"], strict=True):
        _restore_population(pop, saved)
    for name, d in declared.items():
        k.probes.declare(name, d.unit, d.labels)
    stats = k.stats
    stats.ticks, stats.diascas, stats.created = shared["stats"]
    if k._rank == 0:  # per-rank counters: the runner sums them over ranks at the end
        stats.messages, stats.spontaneous, stats.deleted = counts
    k.tick = shared["tick"]
    k._resume_tick = shared["next_tick"]


def _states(chunk: dict[str, Any]) -> list:
    """The own states of a chunk's actors, as ``actor_chunks`` found them."""
    if "states" in chunk:
        return chunk["states"]
    n, names = chunk["n"], chunk["names"]
    if not names:
        return [{} for _ in range(n)]
    return rows(names, [decode(node, n) for node in chunk["columns"]])


def _restore_directory(k: Kernel, shared: dict[str, Any]) -> None:
    """Every AAI's entry again, each actor placed by this run's placement, in AAI order."""
    names, classes = k._names, shared["classes"]
    hints: dict[int, Any] = {}
    for first, count, hint in shared["hints"]:
        for aai in range(first, first + count):
            hints[aai] = hint
    creators, place = shared["creators"], k.placement.place
    entries = [[names.entry(r, cls) for cls in classes] for r in range(k.transport.size)]
    directory = k._directory
    for aai, cid in enumerate(shared["class_ids"].tolist(), 1):
        cls = classes[cid]
        directory.append(entries[place(aai, cls, hints.get(aai), creators[aai])][cid])
    k._actors.extend([None] * (len(directory) - 1))
    names._idents[:] = shared["idents"]
    names.creators = array("q", creators)
    names.hints[:] = shared["hints"]
    by_tick: dict[int, list[int]] = {}
    for aai, tick in shared["ended"].items():
        by_tick.setdefault(tick, []).append(aai)
    for tick, aais in by_tick.items():
        names.end(aais, tick)
    k._next_aai = shared["next_aai"]


def _builder(k: Kernel, shared: dict[str, Any]):  # noqa: ANN202 - a closure
    """The function that rebuilds one actor record, if its entry places it on this rank."""
    directory, rank, actors = k._directory, k._rank, k._actors
    descriptors: dict[type, frozenset[str]] = {}
    put = object.__setattr__

    def build(aai: int, state: Any, key: int, count: int, ncreated: int, terminating: int) -> None:
        if directory[aai][0] != rank:
            return
        cls = k._names._classes[directory[aai][2]]
        actor = cls.__new__(cls)
        actor._k = k
        actor._aai = aai
        actor._random = Random(key, count)
        actor._ncreated = ncreated
        actor._terminating = bool(terminating)
        if hasattr(cls, "__setstate__"):
            actor.__setstate__(state)
        else:
            held = descriptors.get(cls)
            if held is None:
                held = descriptors[cls] = _data_descriptors(cls)
            if held.isdisjoint(state):
                # Not __dict__.update: a built __dict__ slows every later attribute
                # access of the actor on CPython 3.11 (engine._columns.encode_attributes).
                for name, value in state.items():
                    put(actor, name, value)
            else:  # a name the class's descriptors would intercept: the dict itself
                actor.__dict__.update(state)
        actors[aai] = actor
        k._alive += 1

    return build


def _data_descriptors(cls: type) -> frozenset[str]:
    """The names of ``cls``'s attributes that intercept setting an instance's attribute."""
    return frozenset(
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if hasattr(type(value), "__set__") or hasattr(type(value), "__delete__")
    )


def _restore_tile(pop: Any, saved: dict[str, Any], root: bool) -> None:
    """The part of a saved tile that overlaps this rank's tile, and (root) its pending posts."""
    lay = pop._layout
    y0, y1, x0, x1 = lay.tile
    hy, hx = lay.halo
    sy0, sy1, sx0, sx1 = saved["tile"]
    oy0, oy1, ox0, ox1 = max(y0, sy0), min(y1, sy1), max(x0, sx0), min(x1, sx1)
    if oy0 < oy1 and ox0 < ox1:
        for name, values in saved["fields"].items():
            pop._cur[name][hy + oy0 - y0 : hy + oy1 - y0, hx + ox0 - x0 : hx + ox1 - x0] = values[
                oy0 - sy0 : oy1 - sy0, ox0 - sx0 : ox1 - sx0
            ]
    if root:  # posts are gathered from every rank and sorted at the next update
        buffer, seq = saved["posts"]
        pop._posts._buffer.extend(buffer)
        pop._posts._seq.update(seq)


def _restore_population(pop: Any, saved: dict[str, Any]) -> None:
    if saved["name"] != pop.name:
        raise RuntimeError(f"population {pop.name!r} is {saved['name']!r} in the checkpoint")
    for name, values in saved["params"].items():
        pop._posts.params[name][...] = values
    aggs = pop._aggregates
    aggs._watch_keys = saved["watch_keys"]
    aggs._holders = saved["holders"]
    aggs._visible = saved["visible"]
    aggs.pending = saved["pending"]
    aggs._declared = True  # the probes' declarations come back with the probe store's


__all__ = ["CHUNK", "FORMAT", "actor_chunks", "problem", "restore", "snapshot", "state_of"]
