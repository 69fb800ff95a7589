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
from operator import is_
from typing import Any

import numpy as np

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


_UNSHARED = _refs_when_unshared()


def encode(values: list) -> tuple:
    """The column of ``values`` (one per actor), as nodes; ``"any"`` when it cannot be flat."""
    try:
        return _encode(values)
    except _Unfit:
        return ("any", values)


def _encode(values: list) -> tuple:
    n = len(values)
    if n == 0:
        return ("obj", [])
    kind = type(values[0])
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


def decode(node: tuple, n: int) -> list:
    """The ``n`` values that ``node`` holds, as ``encode`` had them."""
    tag = node[0]
    if tag == "same":
        return [node[1]] * n
    if tag in ("i8", "f8", "b1"):
        return node[1].tolist()
    if tag in ("obj", "any"):
        return node[1]
    lengths = node[1].tolist()
    total = sum(lengths)
    if tag == "dict":
        keys = iter(decode(node[2], total))
        items = iter(decode(node[3], total))
        return [dict(zip(islice(keys, m), islice(items, m), strict=True)) for m in lengths]
    items = iter(decode(node[2], total))
    make = list if tag == "list" else tuple
    return [make(islice(items, m)) for m in lengths]
