"""The checked declaration of a dense population class, read once when it joins a kernel.

A model declares its population with class attributes (or sets them in its
``__init__``). :class:`_Declaration` reads them once, refuses what cannot work
with one-line errors, and normalises the rest so that no other unit looks at
the raw attributes again: a 1-D population is the grid ``(1, N)``, regions and
blocks are pairs, the stencil is a halo width, the boundary a pair of flags.
"""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import CellKernel
from .partition import default_block

if TYPE_CHECKING:
    from .population import DensePopulation

_STENCILS = {
    "von_neumann": [(-1, 0), (1, 0), (0, -1), (0, 1)],
    "moore": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)],
}
_BOUNDARIES = ("periodic", "fixed")


class _Declaration:
    """What a population class declares, checked; immutable but for the ``params`` arrays.

    ``params`` holds the arrays the kernel gets: posts change them in place.
    """

    __slots__ = (
        "cls",
        "names",
        "dtypes",
        "ndim",
        "gshape",
        "cells",
        "network",
        "kernel",
        "cell",
        "static",
        "halo_names",
        "regions",
        "params",
        "param_names",
        "block",
        "halo_width",
        "periodic",
        "fill",
        "aggregate",
        "categories",
        "record",
        "labels",
        "units",
    )

    def __init__(self, pop: DensePopulation, has_edges: bool) -> None:
        """Check ``pop``'s attributes; ``has_edges``: its class overrides ``edges``."""
        self.cls = cls = type(pop).__name__
        fields = dict(pop.fields)
        if not fields:
            raise ValueError(f"population {cls} declares no fields")
        self.names = list(fields)
        try:
            self.dtypes = {n: np.dtype(d) for n, d in fields.items()}
        except TypeError as error:
            raise ValueError(
                f"population {cls}: a field's dtype is not a NumPy dtype ({error})"
            ) from None
        for n, dt in self.dtypes.items():
            if dt.kind not in "biuf":
                raise ValueError(f"population {cls}: field {n!r} has dtype {dt}; use a number")
        shape = _whole_numbers(pop.shape, f"population {cls}: shape")
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ValueError(f"population {cls}: shape must be a count or (rows, columns) >= 1")
        self.ndim = len(shape)
        self.gshape = (1, shape[0]) if self.ndim == 1 else shape
        self.cells = self.gshape[0] * self.gshape[1]
        self.network = pop.csr is not None or has_edges
        if self.network and (self.ndim != 1 or pop.stencil is not None):
            raise ValueError(f"population {cls}: neighbour lists need a 1-D shape and no stencil")
        kern = vars(pop).get("kernel", type(pop).kernel)
        if not callable(kern):
            raise ValueError(f"population {cls} declares no kernel (an @njit function)")
        self.kernel = kern
        self.cell = isinstance(kern, CellKernel)
        if self.cell and (self.ndim != 2 or self.network):
            raise ValueError(f"population {cls}: a cell kernel needs a 2-D grid")
        for group in ("static", "halo_fields", "aggregate"):
            for n in getattr(pop, group) or ():
                if n not in fields:
                    raise ValueError(f"population {cls}: {group} names unknown field {n!r}")
        self.categories = {}
        for n, k in dict(pop.categories).items():
            one = not isinstance(k, list | tuple | np.ndarray)  # a count, not a sequence
            counts = _whole_numbers(k, f"population {cls}: categories[{n!r}]") if one else ()
            if n not in fields or self.dtypes[n].kind not in "biu" or not counts or counts[0] < 1:
                raise ValueError(
                    f"population {cls}: categories needs integer fields and counts >= 1; "
                    f"got {n!r}: {k!r}"
                )
            self.categories[n] = counts[0]
        self.static = set(pop.static)
        if pop.halo_fields is None:
            self.halo_names = [n for n in self.names if n not in self.static]
        else:
            self.halo_names = list(pop.halo_fields)
        self.aggregate = self.names if pop.aggregate is None else list(pop.aggregate)
        self.regions = self._regions(pop.regions)
        self.params = self._params(pop.params)
        self.param_names = list(self.params)
        self.block = self._block(pop.block)
        self.halo_width = self._halo_width(pop.stencil)
        self.periodic = self._periodic(pop.boundary)
        self.fill = dict(pop.fill)
        self.record = pop.record
        self.labels = dict(pop.labels)
        self.units = dict(pop.units)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape as declared: (agents,) or (rows, columns)."""
        return (self.gshape[1],) if self.ndim == 1 else self.gshape

    @property
    def region_count(self) -> int:
        return self.regions[0] * self.regions[1]

    def _regions(self, regions: Any) -> tuple[int, int]:
        regions = (1,) * self.ndim if regions is None else regions
        regions = _whole_numbers(regions, f"population {self.cls}: regions")
        if len(regions) != self.ndim or min(regions) < 1:
            raise ValueError(f"population {self.cls}: regions must be {self.ndim} number(s) >= 1")
        return (1, regions[0]) if self.ndim == 1 else (regions[0], regions[1])

    def _params(self, params: Any) -> dict[str, np.ndarray]:
        out = {}
        for n, v in dict(params).items():
            arr = np.array(v, dtype=np.float64 if np.isscalar(v) else None, ndmin=1)
            if arr.ndim != 1 or arr.dtype.kind not in "biuf":
                raise ValueError(
                    f"population {self.cls}: parameter {n!r} must be a 1-D number array"
                )
            out[n] = arr
        return out

    def _block(self, block: Any) -> tuple[int, int]:
        if block is None:
            return default_block(self.gshape, self.regions)
        b = _whole_numbers(block, f"population {self.cls}: block")
        b = (1, b[0]) if self.ndim == 1 else b
        if len(b) != 2 or min(b) < 1:
            raise ValueError(f"population {self.cls}: block must be >= 1 cells")
        return b

    def _halo_width(self, st: Any) -> int:
        if st is None or self.network:
            return 0
        if isinstance(st, str):
            if st not in _STENCILS:
                raise ValueError(
                    f"population {self.cls}: unknown stencil {st!r}; "
                    f"use {', '.join(_STENCILS)} or a list of offsets"
                )
            st = _STENCILS[st] if self.ndim == 2 else [-1, 1]
        h = 0
        for off in st:
            h = max(h, *(abs(o) for o in _whole_numbers(off, f"population {self.cls}: stencil")))
        return h

    def _periodic(self, b: Any) -> tuple[bool, bool]:
        axes = (b, b) if isinstance(b, str) else tuple(b) if isinstance(b, list | tuple) else ()
        if self.ndim == 1 and len(axes) == 1:
            axes = (axes[0], axes[0])
        if len(axes) != 2 or any(a not in _BOUNDARIES for a in axes):
            raise ValueError(
                f"population {self.cls}: boundary must be periodic or fixed "
                f"(or one per axis); got {b!r}"
            )
        return (axes[0] == "periodic", axes[1] == "periodic")


def _whole_numbers(value: Any, what: str) -> tuple[int, ...]:
    """``value`` (a number or a sequence of them) as whole numbers, or a ValueError naming it.

    A float must be whole (``4.0``); ``inf``, strings and tables are refused here,
    rather than as a TypeError or OverflowError from deep inside the layout.
    """
    items = (value,) if not isinstance(value, list | tuple | np.ndarray) else value
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"{what} must be whole numbers; got {reprlib.repr(value)}")
        if isinstance(v, float | np.floating) and not float(v).is_integer():
            raise ValueError(f"{what} must be whole numbers; got {reprlib.repr(value)}")
        if not abs(int(v)) <= 2**63 - 1:
            raise ValueError(f"{what} must fit in 64 bits; got {reprlib.repr(value)}")
        out.append(int(v))
    return tuple(out)


__all__: list[str] = []  # a unit of DensePopulation, wired by population.py; nothing public
