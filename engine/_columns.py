"""One attribute of many actors as a column: NumPy arrays where it holds numbers.

Checkpoints (``engine.snapshot``) store actor state by column, one column per
attribute of a class's actors. ``encode`` turns the list of values into a
small tree of nodes, NumPy arrays at its leaves where the values are Python
ints, floats or bools, so that pickling a million actors does not pickle a
million small objects; ``decode`` gives the list back, value for value and type
for type. Nodes are tuples, their tag first:

- ``("same", v)``: every value is ``v``, an immutable scalar of one type;
- ``("i8", a)``, ``("f8", a)``, ``("b1", a)``: Python ints, floats, bools;
- ``("obj", values)``: immutable scalars of other or mixed types, as a list;
- ``("list", lengths, items)``, ``("tuple", lengths, items)``: containers of
  exactly that type, their items flattened into one column;
- ``("dict", lengths, keys, values)``: dicts, keys and values flattened;
- ``("any", values)``: anything else, as a list (pickled as is).

Lists and dicts are flattened only when nothing else refers to them (their
reference count says so): an object shared by two attributes or two actors
keeps being shared only if it is pickled, so such a column stays ``"any"``.
"""

from __future__ import annotations

import sys
from itertools import chain, islice, repeat
from operator import is_, itemgetter
from typing import Any

import numpy as np

try:  # the same work in C, one pass over the values each
    from ._packing import columns as _columns_c
    from ._packing import flatten as _flatten
    from ._packing import numbers as _numbers_c
    from ._packing import records as _records_c
    from ._packing import same_item as _same_item
    from ._packing import unflatten as _unflatten
except ImportError:  # built without a C compiler
    _columns_c = _flatten = _numbers_c = _records_c = _same_item = _unflatten = None
try:  # instances' attributes without their __dict__ (see _packing.c), in C only
    from ._packing import attributes as _attributes_c
    from ._packing import names as _names_c
except ImportError:
    _attributes_c = _names_c = None

_SCALARS = frozenset({str, bytes, type(None), int, float, bool, complex})
_NUMBERS = {int: ("i8", np.int64), float: ("f8", np.float64), bool: ("b1", np.bool_)}
_MUTABLE = (list, dict)


class _Unfit(Exception):
    """A column that cannot be flattened; it is pickled as is."""


def _refs_when_unshared() -> int:
    """The reference count of a container held only by its owner and a column."""
    owner = {"x": []}
    column = [owner["x"]]
    return max(map(sys.getrefcount, column))


_UNSHARED = _refs_when_unshared()  # as sys.getrefcount counts them: one more than C does


def encode(values: list) -> tuple:
    """The column of ``values`` (one per actor), as nodes; ``"any"`` when it cannot be flat."""
    try:
        return _encode(values)
    except _Unfit:
        return ("any", values)


def encode_states(states: list) -> tuple[list, list] | None:
    """(names, columns) of a list of dicts with the same keys; None when they differ."""
    if type(states[0]) is not dict:
        return None
    names = list(states[0])
    if _columns_c is not None:
        found = _columns_c(states, tuple(names))
        return None if found is None else (names, _nodes(*found))
    if set(map(type, states)) != {dict} or set(map(len, states)) != {len(names)}:
        return None
    try:
        return names, [encode_item(states, name) for name in names]
    except KeyError:  # not the same attributes in every actor
        return None


def encode_attributes(actors: list) -> tuple[list, list] | None:
    """``encode_states`` of the actors' ``__dict__``s, all of one class.

    Compiled on CPython 3.11, the attributes are read where the instances keep
    them, without building a ``__dict__`` for each: one built there makes every
    later attribute access of its actor slower, for the rest of the run.
    """
    if _attributes_c is None or _names_c is None:
        return encode_states([a.__dict__ for a in actors])
    names = _names_c(actors[0])
    found = _attributes_c(actors, tuple(names))
    return None if found is None else (names, _nodes(*found, len(actors)))


def own_items(obj: Any) -> Any:
    """An instance's own attributes, (name, value) pairs as ``obj.__dict__.items()`` gives
    them; compiled on CPython 3.11, read without building its ``__dict__``, which would make
    every later attribute access of it slower."""
    if _attributes_c is not None and _names_c is not None:
        names = _names_c(obj)
        found = _attributes_c([obj], tuple(names))
        if found is not None:
            return zip(names, [column[0] for column in found[0]], strict=True)
    return obj.__dict__.items()


def _nodes(columns: list[list], same: tuple[bool, ...], n: int | None = None) -> list:
    """The node of each column that ``_packing.columns`` or ``attributes`` gathered
    (``attributes`` gives a column of one object held by all ``n`` as ``[it]``)."""
    nodes = []
    for j, alike in enumerate(same):
        if alike and type(columns[j][0]) in _SCALARS:
            nodes.append(("same", columns[j][0]))
            continue
        if alike and n is not None:  # the short list goes: a reference held looks like sharing
            columns[j] = columns[j] * n
        nodes.append(encode(columns[j]))
        columns[j] = None  # likewise, once encoded
    return nodes


def encode_item(states: list[dict], name: str) -> tuple:
    """The column of attribute ``name`` of every state; KeyError when one lacks it."""
    get = itemgetter(name)
    first = states[0][name]
    if type(first) in _SCALARS:  # the common case, checked without a list of the values
        if _same_item is not None and type(states) is list:
            same = _same_item(states, name, first)
        else:
            same = all(map(is_, map(get, states), repeat(first)))
        if same:
            return ("same", first)
    del first  # a reference held here would look like sharing
    return encode(list(map(get, states)))


def _encode(values: list) -> tuple:
    n = len(values)
    if n == 0:
        return ("obj", [])
    kind = type(values[0])
    if _numbers_c is not None:
        number = _NUMBERS.get(kind)
        if number is not None:
            array = np.empty(n, number[1])
            found = _numbers_c(values, kind, array)
            if found:
                return ("same", values[0]) if found == 2 else (number[0], array)
        elif kind in _MUTABLE or kind is tuple:
            flat = _flatten(values, kind, _UNSHARED - 1, True)
            if flat is not None:
                return _flat(kind, *flat)
    if kind in _SCALARS and all(map(is_, values, repeat(values[0]))):
        return ("same", values[0])
    kinds = set(map(type, values))
    if len(kinds) == 1:
        number = _NUMBERS.get(kind)
        if number is not None:
            return _numbers(values, n, *number)
        if kind in _MUTABLE or kind is tuple:
            return _containers(values, kind)  # holding no item: their counts are checked
    if kinds <= _SCALARS:
        if (kind is str or kind is bytes) and len(kinds) == 1 and values.count(values[0]) == n:
            return ("same", values[0])
        return ("obj", values)
    raise _Unfit


def _numbers(values: list, n: int, tag: str, dtype: Any) -> tuple:
    try:
        array = np.fromiter(values, dtype, n)
    except OverflowError:  # ints beyond 64 bits
        return ("obj", values)
    check = array.view(np.int64) if tag == "f8" else array  # bits: NaN, -0.0 compare as such
    if n and (check == check[0]).all():
        return ("same", values[0])
    return (tag, array)


def _containers(values: list, kind: type) -> tuple:
    if kind is not tuple and set(map(sys.getrefcount, values)) != {_UNSHARED}:
        raise _Unfit  # shared with something else: pickling keeps that
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    if kind is dict:
        keys = _encode(list(chain.from_iterable(values)))
        items = _encode(list(chain.from_iterable(map(dict.values, values))))
        return ("dict", lengths, keys, items)
    return (
        "list" if kind is list else "tuple",
        lengths,
        _encode(list(chain.from_iterable(values))),
    )


def _flat(kind: type, lengths: bytes, *columns: Any) -> tuple:
    """The node of containers that ``_packing.flatten`` took apart."""
    counts = np.frombuffer(lengths, np.int64)
    if kind is dict:
        return ("dict", counts, _flat_items(columns[0]), _flat_items(columns[1]))
    return ("list" if kind is list else "tuple", counts, _flat_items(columns[0]))


def _flat_items(column: Any) -> tuple:
    """The node of a column ``flatten`` gave: a list, or numbers it converted itself
    (type, bytearray, all the first's bits, the first), as ``_encode`` would give them."""
    if type(column) is list:
        return _encode(column)
    kind, data, same, first = column
    if same:
        return ("same", first)
    tag, dtype = _NUMBERS[kind]
    return (tag, np.frombuffer(data, dtype))


_KINDS = {"list": list, "tuple": tuple, "dict": dict}


def _as_list(values: Any) -> list:
    return values if type(values) is list else list(values)


def rows(names: list, columns: list[list]) -> list[dict]:
    """One dict per actor from its attributes' decoded columns (``names`` not empty)."""
    if _records_c is not None:
        return _records_c(tuple(names), [_as_list(c) for c in columns])
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def decode(node: tuple, n: int) -> list:
    """The ``n`` values that ``node`` holds, as ``encode`` had them."""
    tag = node[0]
    if tag == "same":
        return [node[1]] * n
    if tag in ("i8", "f8", "b1"):
        return node[1].tolist()
    if tag in ("obj", "any"):
        return node[1]
    if _unflatten is not None:
        lengths = np.ascontiguousarray(node[1], np.int64)
        total = int(lengths.sum())
        children = [_as_list(decode(child, total)) for child in node[2:]]
        return _unflatten(_KINDS[tag], lengths, *children)
    lengths = node[1].tolist()
    total = sum(lengths)
    if tag == "dict":
        keys = iter(decode(node[2], total))
        items = iter(decode(node[3], total))
        return [dict(zip(islice(keys, m), islice(items, m), strict=True)) for m in lengths]
    items = iter(decode(node[2], total))
    make = list if tag == "list" else tuple
    return [make(islice(items, m)) for m in lengths]
