"""Aggregates and watched cells: block partials, one allgather, combined in block order.

Each rank reduces its tile to *block partials*: one row per aggregation block,
with a sum, min and max column per aggregated field (or one count column per
category). Blocks depend on the global shape alone, so a block's partials are
the same on any partitioning. Once per update one allgather carries every
rank's partials, plus the values of the watched cells it holds, and every rank
combines the blocks in global block order: bitwise identical totals everywhere.

Actors read what the previous update produced: ``pending`` (the last gather)
becomes ``visible`` at the start of the next update, so an actor always sees the
state "as at the end of the previous tick", whatever the ranks are doing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SimulationError
from . import _numba as nb
from .partition import Layout, region_edges, region_of_blocks
from .views import Aggregate

if TYPE_CHECKING:
    from ..probes import ProbeStore
    from ..transport import Transport
    from .declaration import _Declaration

_PROBE_WIDTH = 1024  # the most values one probe records per tick


class _Aggregates:
    """Block partials, their gather, the watched cells, and what actors read of them.

    ``cols``: field -> (first column of the partials, k categories or 0);
    ``acc``: a block row's column accumulator per field, reused by every call.
    """

    __slots__ = (
        "_decl",
        "_layout",
        "_name",
        "_transport",
        "cols",
        "_kinds",
        "_width",
        "acc",
        "_owned_blocks",
        "_order",
        "_nlocal_blocks",
        "_block_region",
        "_region_cells",
        "_watch_keys",
        "_holders",
        "_plan",
        "_visible",
        "pending",
        "_declared",
    )

    def __init__(self, decl: _Declaration, layout: Layout, name: str, transport: Transport) -> None:
        self._decl, self._layout, self._name, self._transport = decl, layout, name, transport
        self.cols: dict[str, tuple[int, int]] = {}
        kinds: list[int] = []
        for n in decl.aggregate:
            k = decl.categories.get(n, 0)
            self.cols[n] = (len(kinds), k)
            kinds += [nb.SUM] * k if k else [nb.SUM, nb.MIN, nb.MAX]
        self._kinds = np.array(kinds, dtype=np.int64)
        self._width = len(kinds)
        self._owned_blocks = [layout.block_ids(r) for r in range(layout.size)]
        self._nlocal_blocks = self._owned_blocks[layout.rank].size
        # The partials arrive rank after rank; _order[b] is global block b's row among them.
        self._order = np.empty(layout.nblocks[0] * layout.nblocks[1], np.int64)
        self._order[np.concatenate(self._owned_blocks)] = np.arange(self._order.size)
        self.acc = {}
        for n in decl.aggregate:
            acc_dt = np.float64 if decl.dtypes[n].kind == "f" else np.int64
            self.acc[n] = np.zeros(layout.block[1], acc_dt)
        self._block_region = region_of_blocks(decl.gshape, layout.block, decl.regions)
        self._region_cells = np.zeros(decl.region_count, np.int64)
        for r in range(decl.region_count):
            n = 1
            for s in self.region_box(r):
                n *= s.stop - s.start
            self._region_cells[r] = n
        self._watch_keys = np.empty(0, np.int64)  # field index * cells + flat index, sorted
        self._holders: dict[int, set[int]] = {}  # watched key -> AAIs of the actors watching it
        self._plan: tuple | None = None  # (keys, _KeyPlan) of the last watched set seen
        self._visible: tuple | None = None  # (total, byreg, {key: value}) of the previous tick
        self.pending: tuple | None = None  # the same, of the last update
        self._declared = False
        regions = decl.region_count
        if decl.record and regions > 1:
            for n, (_, k) in self.cols.items():
                if regions * max(k, 1) > _PROBE_WIDTH:
                    raise ValueError(
                        f"population {name!r}: {regions} regions x {max(k, 1)} "
                        f"values of {n!r} do not fit a probe (at most {_PROBE_WIDTH})"
                    )

    def region_box(self, region: int) -> tuple[slice, ...]:
        """Global cells of ``region``: whole blocks, so partials combine into regions exactly."""
        ry, rx = self._decl.regions
        if not 0 <= region < ry * rx:
            raise SimulationError(
                f"population {self._name!r} has regions 0 to {ry * rx - 1}; got {region!r}"
            )
        by, bx = self._layout.block
        ny, nx = self._decl.gshape
        r, c = divmod(region, rx)
        ye, xe = region_edges(ny, by, ry), region_edges(nx, bx, rx)
        rows = slice(int(ye[r]) * by, min(int(ye[r + 1]) * by, ny))
        cols = slice(int(xe[c]) * bx, min(int(xe[c + 1]) * bx, nx))
        return (cols,) if self._decl.ndim == 1 else (rows, cols)

    # --- this rank's share -------------------------------------------------------
    @property
    def width(self) -> int:
        """Columns of the block partials."""
        return self._width

    @property
    def nlocal_blocks(self) -> int:
        return self._nlocal_blocks

    def new_partials(self) -> np.ndarray:
        """Zeroed partials of this rank's blocks, for the kernel's strips to fill."""
        return np.zeros((self._nlocal_blocks, self._width), np.float64)

    def partials(self, bufs: dict[str, np.ndarray]) -> np.ndarray:
        """Block partials of the whole tile of ``bufs``, in one pass per field."""
        lay = self._layout
        (ly, lx), (hy, hx), (by, bx) = lay.local_shape, lay.halo, lay.block
        out = self.new_partials()
        for n, (col, k) in self.cols.items():
            a = bufs[n]
            if k:
                nb.block_counts(a, hy, hx, ly, lx, by, bx, k, out, col)
            else:
                nb.block_stats(a, hy, hx, ly, lx, by, bx, self.acc[n], out, col)
        return out

    def watched_plan(self, keys: np.ndarray) -> tuple:
        """Where the watched cells ``keys`` of this tile are: per field, local rows,
        columns and their slots in key order; and how many (the cuda backend's gather)."""
        lay, decl = self._layout, self._decl
        fidx, flat = np.divmod(keys, decl.cells)
        ys, xs = np.divmod(flat, decl.gshape[1])
        mine = lay.owners(ys, xs) == lay.rank
        y0, _, x0, _ = lay.tile
        fields, rows, cols, slots = [], [], [], []
        for fi in np.unique(fidx[mine]):
            sel = mine & (fidx == fi)
            fields.append(decl.names[fi])
            rows.append((ys[sel] - y0).astype(np.int64))
            cols.append((xs[sel] - x0).astype(np.int64))
            slots.append(np.flatnonzero(sel[mine]).astype(np.int64))
        return fields, rows, cols, slots, int(mine.sum())

    def watched_values(self, keys: np.ndarray, bufs: dict[str, np.ndarray]) -> np.ndarray:
        """Values of the watched cells (``keys``) that lie in this tile, in key order."""
        if not keys.size:  # no cell newly watched: the usual case
            return np.empty(0, np.float64)
        if self._plan is not None and keys is self._plan[0]:
            plan = self._plan[1]
            out = np.empty(plan.n_mine, np.float64)
            lay = self._layout
            (hy, hx), (y0, _, x0, _) = lay.halo, lay.tile
            for name, ys, xs, slots in plan.local:
                vals = np.empty(ys.size, np.float64)
                nb.gather_values(bufs[name], hy, hx, y0, x0, ys, xs, vals)
                out[slots] = vals
            return out
        lay, decl = self._layout, self._decl
        fidx, flat = np.divmod(keys, decl.cells)
        ys, xs = np.divmod(flat, decl.gshape[1])
        mine = lay.owners(ys, xs) == lay.rank
        out = np.empty(int(mine.sum()), np.float64)
        y0, _, x0, _ = lay.tile
        hy, hx = lay.halo
        for fi in np.unique(fidx[mine]):
            sel = mine & (fidx == fi)
            vals = np.empty(int(sel.sum()), np.float64)
            nb.gather_values(bufs[decl.names[fi]], hy, hx, y0, x0, ys[sel], xs[sel], vals)
            out[np.flatnonzero(sel[mine])] = vals
        return out

    def _owners_of(self, keys: np.ndarray) -> np.ndarray:
        ys, xs = np.divmod(keys % self._decl.cells, self._decl.gshape[1])
        return self._layout.owners(ys, xs)

    def _key_plan(self, keys: np.ndarray) -> _KeyPlan:
        """The plan of the watched set ``keys``: computed once per change of the set."""
        if self._plan is None or keys is not self._plan[0]:
            self._plan = (keys, _KeyPlan(self, keys))
        return self._plan[1]

    # --- every rank's share, combined ---------------------------------------------
    def gather(
        self,
        bufs: dict[str, np.ndarray],
        failed: bool,
        keys: np.ndarray,
        new_keys: np.ndarray,
        new_vals: np.ndarray,
        parts: np.ndarray | None = None,
        latest: np.ndarray | None = None,
    ) -> tuple:
        """One allgather: status, block partials, watched cells; combined identically everywhere.

        Each rank sends [failed?, its block partials, the new state of the watched
        cells ``keys`` it holds, the previous state of the newly watched ones].
        Returns ((total, byreg, {key: value}, {new key: value}), []) or (None, failed ranks).
        """
        lay = self._layout
        size, width = lay.size, self._width
        plan = self._key_plan(keys)
        n_keys = plan.counts
        if new_keys.size:
            own_new = self._owners_of(new_keys)
            n_new = np.bincount(own_new, minlength=size)
        else:
            own_new, n_new = new_keys, np.zeros(size, np.int64)
        if failed:
            parts = np.zeros((self._nlocal_blocks, width))
            latest = np.zeros(int(n_keys[lay.rank]))
            new_vals = np.zeros(int(n_new[lay.rank]))
        else:
            parts = self.partials(bufs) if parts is None else parts
            latest = self.watched_values(keys, bufs) if latest is None else latest
        msg = np.concatenate(([1.0 if failed else 0.0], parts.ravel(), latest, new_vals))
        got = self._transport.allgather_arrays(msg)
        bad = [r for r, m in enumerate(got) if m[0] != 0.0]
        if bad:
            return None, bad
        rows = []
        latest_vals = np.empty(keys.size)
        new_values = np.empty(new_keys.size)
        for r, m in enumerate(got):
            o = 1 + self._owned_blocks[r].size * width
            rows.append(m[1:o])
            latest_vals[plan.slots[r]] = m[o : o + n_keys[r]]
            o += n_keys[r]
            if n_new[r]:
                new_values[own_new == r] = m[o : o + n_new[r]]
        partials = (rows[0] if size == 1 else np.concatenate(rows)).reshape(-1, width)
        total, byreg = nb.combine(
            partials, self._order, self._block_region, self._decl.region_count, self._kinds
        )
        latest_map = _Watched(plan.index, latest_vals)
        new_map = dict(zip(new_keys.tolist(), new_values.tolist(), strict=True))
        return (total, byreg, latest_map, new_map), []

    def gather_initial(self, cur: dict[str, np.ndarray]) -> None:
        """Aggregate the initial state: what actors see during the first evaluated tick."""
        none = np.empty(0, np.int64)
        got, bad = self.gather(cur, False, none, none, np.empty(0))
        if bad:
            raise SimulationError(f"population {self._name!r}: failed on rank(s) {bad}")
        self.pending = got[:3]

    def publish(self) -> None:
        """The last update's results become what actors read (step 1 of an update)."""
        self._visible = self.pending

    def watch(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The watched keys once every rank's watch records are applied, and the new ones.

        A cell stays watched while some actor that watched it has not unwatched it.
        Every rank applies the same records in the same (canonical) order.
        """
        if not records.size:
            return self._watch_keys, np.empty(0, np.int64)
        holders = self._holders
        for key, aai, on in records.tolist():
            if on:
                holders.setdefault(key, set()).add(aai)
            elif key in holders:
                holders[key].discard(aai)
                if not holders[key]:
                    del holders[key]
        keys = np.array(sorted(holders), dtype=np.int64)
        if np.array_equal(keys, self._watch_keys):  # the same set: keep its plan
            return self._watch_keys, np.empty(0, np.int64)
        return keys, np.setdiff1d(keys, self._watch_keys)

    def settle(self, got: tuple, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep a successful gather as pending; newly watched cells are readable at once.

        A cell watched during tick t-1 is readable during tick t: its value as
        at the end of t-1 joins the visible snapshot. Returns (total, byreg).
        """
        total, byreg, latest, new = got
        gone: set[int] = set()
        if keys is not self._watch_keys:  # the set changed since the last tick
            gone = set(np.setdiff1d(self._watch_keys, keys).tolist())
            self._watch_keys = keys
        if new or gone:  # an unwatched cell is unreadable from the next tick on, too
            seen = {k: v for k, v in self._visible[2].items() if k not in gone}
            self._visible = (*self._visible[:2], {**seen, **new})
        self.pending = (total, byreg, latest)
        return total, byreg

    # --- probes (rank 0) -------------------------------------------------------------
    def record(self, probes: ProbeStore, tick: int, total: np.ndarray, byreg: np.ndarray) -> None:
        """Record the combined aggregates of ``tick`` (declaring the probes the first time)."""
        if not self._declared:
            self._declare_probes(probes)
            self._declared = True
        name = self._name
        regional = self._decl.region_count > 1
        for f, (col, k) in self.cols.items():
            if k:
                probes.record(f"{name}.{f}.counts", tick, 0, total[col : col + k])
                if regional:
                    probes.record(
                        f"{name}.{f}.counts_by_region", tick, 0, byreg[:, col : col + k].ravel()
                    )
            else:
                probes.record(f"{name}.{f}.sum", tick, 0, float(total[col]))
                probes.record(f"{name}.{f}.min", tick, 0, float(total[col + 1]))
                probes.record(f"{name}.{f}.max", tick, 0, float(total[col + 2]))
                if regional:
                    sums = byreg[:, col].copy()
                    probes.record(f"{name}.{f}.sum_by_region", tick, 0, sums)
                    probes.record(f"{name}.{f}.mean_by_region", tick, 0, sums / self._region_cells)

    def _declare_probes(self, probes: ProbeStore) -> None:
        """Units and labels of the aggregate probes."""
        declare, name, decl = probes.declare, self._name, self._decl
        regions = [f"region {r}" for r in range(decl.region_count)]
        for f, (_, k) in self.cols.items():
            if k:
                values = [str(v) for v in decl.labels.get(f, range(k))]
                if len(values) != k:
                    values = [str(v) for v in range(k)]
                declare(f"{name}.{f}.counts", "cells", values)
                if len(regions) > 1:
                    both = [f"{r} {v}" for r in regions for v in values]
                    declare(f"{name}.{f}.counts_by_region", "cells", both)
                continue
            unit = decl.units.get(f, "")
            for stat in ("sum", "min", "max"):
                declare(f"{name}.{f}.{stat}", unit)
            if len(regions) > 1:
                declare(f"{name}.{f}.sum_by_region", unit, regions)
                declare(f"{name}.{f}.mean_by_region", unit, regions)

    # --- what actors read --------------------------------------------------------------
    def aggregate(self, field: str, region: int | None) -> Aggregate:
        col, k = self._field_col(field)
        if k:
            raise SimulationError(
                f"population {self._name!r}: {field!r} is counted by category; "
                f"read counts({field!r}) instead of aggregate()"
            )
        total, byreg, _ = self._snapshot()
        row, count = self._region_row(total, byreg, region)
        vals = row[col : col + 3]
        if self._decl.dtypes[field].kind != "f":
            return Aggregate(int(vals[0]), int(vals[1]), int(vals[2]), count)
        return Aggregate(float(vals[0]), float(vals[1]), float(vals[2]), count)

    def counts(self, field: str, region: int | None) -> np.ndarray:
        col, k = self._field_col(field)
        if not k:
            raise SimulationError(
                f"population {self._name!r}: {field!r} is not counted by category; declare "
                f"categories = {{{field!r}: k}} or read aggregate({field!r})"
            )
        total, byreg, _ = self._snapshot()
        row, _ = self._region_row(total, byreg, region)
        return row[col : col + k].astype(np.int64)

    def value(self, field: str, key: int, where: Any) -> float | int:
        """The watched cell ``key`` (``where`` of ``field``, for the message)."""
        _, _, values = self._snapshot()
        if key not in values:
            raise SimulationError(
                f"population {self._name!r}: cell {where!r} of {field!r} is not watched; "
                f"call watch({field!r}, {where!r}) at an earlier tick (e.g. in on_first_diasca)"
            )
        v = values[key]
        return v if self._decl.dtypes[field].kind == "f" else int(v)

    def _snapshot(self) -> tuple:
        if self._visible is None:
            raise SimulationError(
                f"population {self._name!r} has not been evaluated yet; read it from an actor"
            )
        return self._visible

    def _field_col(self, field: str) -> tuple[int, int]:
        found = self.cols.get(field)
        if found is None:
            raise SimulationError(
                f"population {self._name!r} aggregates no field {field!r}; "
                f"it aggregates {', '.join(self.cols)}"
            )
        return found

    def _region_row(
        self, total: np.ndarray, byreg: np.ndarray, region: int | None
    ) -> tuple[np.ndarray, int]:
        if region is None:
            return total, self._decl.cells
        count = self._decl.region_count
        if type(region) is not int or not 0 <= region < count:
            raise SimulationError(
                f"population {self._name!r} has regions 0 to {count - 1}; got {region!r}"
            )
        return byreg[region], int(self._region_cells[region])


class _KeyPlan:
    """What a watched set needs each tick, worked out once per change of the set.

    ``index``: key -> slot in key order; ``counts``/``slots``: per rank, how many
    keys it holds and their slots; ``local``: per field of this tile, the field,
    local rows and columns and their slots among this rank's keys.
    """

    __slots__ = ("index", "counts", "slots", "local", "n_mine")

    def __init__(self, aggs: _Aggregates, keys: np.ndarray) -> None:
        lay, decl = aggs._layout, aggs._decl
        self.index = {k: i for i, k in enumerate(keys.tolist())}
        owners = aggs._owners_of(keys)
        self.counts = np.bincount(owners, minlength=lay.size)
        self.slots = [np.flatnonzero(owners == r) for r in range(lay.size)]
        fidx, flat = np.divmod(keys, decl.cells)
        ys, xs = np.divmod(flat, decl.gshape[1])
        mine = owners == lay.rank
        self.n_mine = int(mine.sum())
        self.local = []
        for fi in np.unique(fidx[mine]):
            sel = mine & (fidx == fi)
            slots = np.flatnonzero(sel[mine])
            self.local.append((decl.names[fi], ys[sel], xs[sel], slots))


class _Watched:
    """The watched cells' values of one tick, read like a dict: no dict built per tick."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[int, int], values: np.ndarray) -> None:
        self._index, self._values = index, values

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __getitem__(self, key: int) -> float:
        return float(self._values[self._index[key]])

    def __len__(self) -> int:
        return len(self._index)

    def items(self) -> Any:
        values = self._values.tolist()
        return ((k, values[i]) for k, i in self._index.items())

    def __getstate__(self) -> tuple:
        return self._index, self._values

    def __setstate__(self, state: tuple) -> None:
        self._index, self._values = state


__all__: list[str] = []  # a unit of DensePopulation, wired by population.py; nothing public
