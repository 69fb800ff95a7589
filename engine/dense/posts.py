"""Posts: how actors change a population, applied by its next update in canonical order.

An actor's ``post_set``/``post_add`` on cells, boxes or parameter entries, and
its ``watch`` of a cell, become one :data:`POST` record stamped with (tick,
diasca, actor AAI, the actor's sequence number). At the next update every rank
sends its records to every other (one allgather of plain numbers, no pickles)
and sorts them all by that stamp: every rank applies the same posts in the same
order, whichever rank the actors live on. A rank applies only the part of a box
that lies in its tile; parameters are replicated, so every rank applies those.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SimulationError
from .partition import Layout

if TYPE_CHECKING:
    from ..actor import Actor
    from ..kernel import Kernel
    from .declaration import _Declaration

_SET, _ADD, _WATCH, _UNWATCH = 0, 1, 2, 3
_FIELD, _PARAM = 0, 1
_NO_RECORDS = np.empty((0, 3), np.int64)
# One post or watch request as it travels between ranks: plain numbers, no pickles.
POST = np.dtype(
    [
        ("tick", "<i8"),
        ("diasca", "<i8"),
        ("aai", "<i8"),
        ("seq", "<i8"),
        ("op", "<i8"),
        ("kind", "<i8"),
        ("target", "<i8"),
        ("y0", "<i8"),
        ("y1", "<i8"),
        ("x0", "<i8"),
        ("x1", "<i8"),
        ("value", "<f8"),
    ]
)


class _Posts:
    """This rank's posts since the last update, each actor's sequence number, the parameters.

    Posts are stamped with the kernel's tick and diasca when made. ``params``
    are the kernel's parameter arrays; posts change them in place.
    """

    __slots__ = ("_decl", "_layout", "_name", "_kernel", "params", "_buffer", "_seq")

    def __init__(self, decl: _Declaration, layout: Layout, name: str, kernel: Kernel) -> None:
        self._decl, self._layout, self._name, self._kernel = decl, layout, name, kernel
        self.params = decl.params
        self._buffer: list[tuple] = []
        self._seq: dict[int, int] = {}

    # --- what actors post ----------------------------------------------------------
    def set(self, actor: Actor, name: str, where: Any, value: Any) -> None:
        self._post(actor, _SET, name, where, value)

    def add(self, actor: Actor, name: str, where: Any, value: Any) -> None:
        self._post(actor, _ADD, name, where, value)

    def watch(self, actor: Actor, field: str, where: Any, watching: bool = True) -> None:
        """Start (or, ``watching=False``, end) this actor's watch of one cell."""
        box = self.box(where, field) if field in self._decl.dtypes else None
        if box is not None and (box[1] - box[0]) * (box[3] - box[2]) != 1:
            verb = "watch" if watching else "unwatch"
            raise SimulationError(f"population {self._name!r}: {verb} one cell at a time")
        self._post(actor, _WATCH if watching else _UNWATCH, field, where, 0.0)

    def _post(self, actor: Actor, op: int, name: str, where: Any, value: Any) -> None:
        decl = self._decl
        watching = op in (_WATCH, _UNWATCH)
        if name in decl.dtypes:
            kind, target = _FIELD, decl.names.index(name)
            box = self.box(where, name)
        elif name in self.params and not watching:
            kind, target = _PARAM, decl.param_names.index(name)
            box = self._param_box(where, name)
        else:
            known = ", ".join(decl.names + (decl.param_names if not watching else []))
            raise SimulationError(
                f"actor {self._kernel.label(actor.aai)}: population {self._name!r} has no "
                f"{'field' if watching else 'field or parameter'} {name!r}; it has {known}"
            )
        if not watching:
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise SimulationError(
                    f"actor {self._kernel.label(actor.aai)}: a post to {name!r} of "
                    f"population {self._name!r} needs a number; got {value!r}"
                )
            if not math.isfinite(float(value)):
                raise SimulationError(
                    f"actor {self._kernel.label(actor.aai)}: a post to {name!r} of "
                    f"population {self._name!r} needs a finite number; got {value!r}"
                )
        k = self._kernel
        aai = actor.aai
        seq = self._seq.get(aai, 0)
        self._seq[aai] = seq + 1
        self._buffer.append((k.tick, k.diasca, aai, seq, op, kind, target, *box, float(value)))

    # --- naming cells ------------------------------------------------------------------
    def box(self, where: Any, name: str) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of a cell, a flat index or a box of slices; refuses the rest."""
        decl = self._decl
        ny, nx = decl.gshape
        if decl.ndim == 1:
            idx = where[0] if isinstance(where, tuple) and len(where) == 1 else where
            if isinstance(idx, tuple):
                self._bad_where(where, name)
            return (0, 1, *self._range(idx, nx, name))
        if isinstance(where, tuple):
            if len(where) != 2:
                self._bad_where(where, name)
            return (*self._range(where[0], ny, name), *self._range(where[1], nx, name))
        if isinstance(where, slice):
            self._bad_where(where, name)
        y, x = divmod(_as_index(where, decl.cells, name, self._name), nx)
        return (y, y + 1, x, x + 1)

    def cell_key(self, field: str, where: Any) -> int:
        """The key of one cell of ``field``, as watches name it: field index * cells + flat."""
        decl = self._decl
        if field not in decl.dtypes:
            raise SimulationError(f"population {self._name!r} has no field {field!r}")
        y0, _, x0, _ = self.box(where, field)
        return decl.names.index(field) * decl.cells + y0 * decl.gshape[1] + x0

    def _bad_where(self, where: Any, name: str) -> None:
        what = (
            "an agent number or a slice" if self._decl.ndim == 1 else "(row, column), a flat index"
        )
        raise SimulationError(
            f"population {self._name!r}: {where!r} does not name cells of {name!r}; "
            f"give {what} or a box of slices"
        )

    def _range(self, i: Any, n: int, name: str, what: str = "") -> tuple[int, int]:
        """[lo, hi) of an index or a step-1 slice of 0..n-1; ``what`` names it in errors."""
        if isinstance(i, slice):
            lo, hi, step = i.indices(n)
            if step != 1 or hi <= lo:
                raise SimulationError(
                    f"population {self._name!r}: slice {i!r} of {what or repr(name)} must be a "
                    f"non-empty range with step 1"
                )
            return lo, hi
        j = _as_index(i, n, name, self._name)
        return j, j + 1

    def _param_box(self, where: Any, name: str) -> tuple[int, int, int, int]:
        return (0, 1, *self._range(where, self.params[name].size, name, f"parameter {name!r}"))

    # --- the update's side ---------------------------------------------------------------
    def exchange(self) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's posts in canonical order, and the watch records among them.

        A watch record is (cell key, actor AAI, 1 to watch or 0 to unwatch), in
        canonical order. A collective: every rank calls it once per update, posts or not.
        """
        mine = np.array(self._buffer, dtype=POST) if self._buffer else np.empty(0, POST)
        self._buffer, self._seq = [], {}
        got = self._kernel.transport.allgather_arrays(mine.view(np.uint8))
        posts = np.concatenate([g.view(POST) for g in got])
        if posts.size > 1:
            posts = posts[np.lexsort((posts["seq"], posts["aai"], posts["diasca"], posts["tick"]))]
        watching = posts["op"] >= _WATCH
        if not watching.any():  # the usual tick: posts, no watch changes
            return posts, _NO_RECORDS
        w = posts[watching]
        decl = self._decl
        keys = w["target"] * decl.cells + w["y0"] * decl.gshape[1] + w["x0"]
        records = np.stack([keys, w["aai"], (w["op"] == _WATCH).astype(np.int64)], axis=1)
        return posts[~watching], records

    def apply(self, posts: np.ndarray, cur: dict[str, np.ndarray], device: Any = None) -> None:
        """Apply ``posts`` (canonical order) to the parameters and to this tile of ``cur``.

        With ``device`` (the cuda backend's fields), cell posts go to the device instead.
        """
        lay = self._layout
        ty0, ty1, tx0, tx1 = lay.tile
        hy, hx = lay.halo
        names, param_names = self._decl.names, self._decl.param_names
        # Python tuples: reading fields of a structured record one by one costs more.
        for *_, op, kind, target, py0, py1, px0, px1, value in posts.tolist():
            if kind == _PARAM:
                arr = self.params[param_names[target]]
                cell = arr[px0:px1]
            else:
                y0, y1 = max(py0, ty0), min(py1, ty1)
                x0, x1 = max(px0, tx0), min(px1, tx1)
                if y0 >= y1 or x0 >= x1:
                    continue
                arr = cur[names[target]]
                if device is not None:
                    v = np.asarray(value).astype(arr.dtype)[()]
                    box = (hy + y0 - ty0, hy + y1 - ty0, hx + x0 - tx0, hx + x1 - tx0)
                    device.apply_posts([(names[target], *box, op != _SET, v)])
                    continue
                cell = arr[hy + y0 - ty0 : hy + y1 - ty0, hx + x0 - tx0 : hx + x1 - tx0]
            if op == _SET:
                cell[...] = np.asarray(value).astype(arr.dtype)
            elif arr.dtype.kind == "f":
                cell += arr.dtype.type(value)
            else:
                cell += np.asarray(value).astype(arr.dtype)


def _as_index(i: Any, n: int, name: str, pop: str) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise SimulationError(f"population {pop!r}: index {i!r} of {name!r} is not a whole number")
    j = int(i)
    if not 0 <= j < n:
        raise SimulationError(f"population {pop!r}: index {j} of {name!r} is outside 0..{n - 1}")
    return j


__all__ = ["POST"]
