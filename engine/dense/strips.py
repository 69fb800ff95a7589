"""Running a grid's kernel strip by strip, taking each strip's aggregates while in cache.

The tile is cut into strips of about 256 KB (of the next state). The kernel
runs strip by strip, and each strip's block partials are taken right after,
while it is still in cache. A kernel computes each cell from its neighbourhood
and global position only (it must, to give the same result on any
partitioning), so strips change nothing. 2-D strips are runs of rows whose
column accumulators carry over to the end of each block row; 1-D strips are
runs of whole blocks.

Everything a strip needs (views, geometry, aggregation calls) is planned once
per orientation of the double buffer, so the hot loop does no Python work per
cell and no bookkeeping per tick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _numba as nb
from .partition import Layout

if TYPE_CHECKING:
    from .aggregates import _Aggregates
    from .declaration import _Declaration

_STRIP_BYTES = 1 << 18


class _Strips:
    """The strips of a tile, their column accumulators, and the cached plans that use them."""

    __slots__ = ("_decl", "_layout", "_aggs", "_strips", "_col_acc", "_plans")

    def __init__(self, decl: _Declaration, layout: Layout, aggs: _Aggregates) -> None:
        self._decl, self._layout, self._aggs = decl, layout, aggs
        self._plans: dict[int, list[tuple]] | None = None  # id(current buffers) -> plan
        (ly, lx), (by, bx) = layout.local_shape, layout.block
        cell_bytes = sum(decl.dtypes[n].itemsize for n in decl.names)
        self._strips: list[tuple[int, int]] = []
        self._col_acc: dict[str, tuple[np.ndarray, ...]] = {}
        if decl.network:
            return
        if decl.ndim == 1:
            step = bx * max(1, _STRIP_BYTES // (bx * cell_bytes))
            extent = lx
        else:
            step = max(1, min(by, _STRIP_BYTES // (lx * cell_bytes)))
            extent = ly
        self._strips = [(s, min(s + step, extent)) for s in range(0, extent, step)]
        if decl.ndim == 2:
            for n, (_, k) in aggs.cols.items():
                dt = decl.dtypes[n]
                if k:
                    self._col_acc[n] = (np.zeros((k, lx), np.int64),)
                else:
                    acc_dt = np.float64 if dt.kind == "f" else np.int64
                    self._col_acc[n] = (np.zeros(lx, acc_dt), np.empty(lx, dt), np.empty(lx, dt))

    def geometry(self, start: int = 0) -> tuple:
        """The kernel's ``block``: halo, global origin (moved by ``start`` along the strips)."""
        lay = self._layout
        y0, _, x0, _ = lay.tile
        ny, nx = self._decl.gshape
        if self._decl.ndim == 1:
            return (lay.halo[1], x0 + start, nx)
        return (lay.halo[0], y0 + start, x0, ny, nx)

    def run(self, cur: dict, nxt: dict, tick: int, key: np.uint64, args: tuple) -> np.ndarray:
        """Run the kernel ``cur`` -> ``nxt`` strip by strip; returns the block partials."""
        plans = self._plans
        if plans is None:  # the two orientations of the double buffer
            plans = self._plans = {
                id(cur): self._plan(cur, nxt),
                id(nxt): self._plan(nxt, cur),
            }
        out = self._aggs.new_partials()
        kernel = self._decl.kernel
        for src, dst, geometry, steps in plans[id(cur)]:
            kernel(src, dst, tick, key, geometry, *args)
            for fn, fargs, blocks, col in steps:
                if blocks is None:
                    fn(*fargs)
                else:
                    fn(*fargs, out[blocks[0] : blocks[1]], col)
        return out

    def _plan(self, cur: dict, nxt: dict) -> list[tuple]:
        """Per strip: the kernel's views and block, and the aggregation calls that follow."""
        lay = self._layout
        (ly, lx), (hy, hx), (by, bx) = lay.local_shape, lay.halo, lay.block
        nbj = -(-lx // bx)
        names, cols, acc1 = self._decl.names, self._aggs.cols, self._aggs.acc
        plan = []
        for start, stop in self._strips:
            steps = []
            if self._decl.ndim == 1:
                src = tuple(cur[n][0, start : stop + 2 * hx] for n in names)
                dst = tuple(nxt[n][0, start : stop + 2 * hx] for n in names)
                blocks = (start // bx, -(-stop // bx))
                for n, (col, k) in cols.items():
                    a = nxt[n][:, start : stop + 2 * hx]
                    if k:
                        steps.append(
                            (nb.block_counts, (a, 0, hx, 1, stop - start, 1, bx, k), blocks, col)
                        )
                    else:
                        extra = (a, 0, hx, 1, stop - start, 1, bx, acc1[n])
                        steps.append((nb.block_stats, extra, blocks, col))
            else:
                src = tuple(cur[n][start : stop + 2 * hy] for n in names)
                dst = tuple(nxt[n][start : stop + 2 * hy] for n in names)
                r = start
                while r < stop:  # the strip's rows, block row by block row
                    bi = r // by
                    end_of_row = min((bi + 1) * by, ly)
                    e = min(stop, end_of_row)
                    blocks = (bi * nbj, (bi + 1) * nbj)
                    for n, (col, k) in cols.items():
                        acc = self._col_acc[n]
                        if k:
                            steps.append(
                                (
                                    nb.rows_counts,
                                    (nxt[n], hy, hx, r, e, lx, acc[0], r == bi * by),
                                    None,
                                    col,
                                )
                            )
                            if e == end_of_row:
                                steps.append((nb.finish_counts, (acc[0], lx, bx), blocks, col))
                        else:
                            steps.append(
                                (
                                    nb.rows_stats,
                                    (nxt[n], hy, hx, r, e, lx, *acc, r == bi * by),
                                    None,
                                    col,
                                )
                            )
                            if e == end_of_row:
                                steps.append((nb.finish_stats, (*acc, lx, bx), blocks, col))
                    r = e
            plan.append((src, dst, self.geometry(start), steps))
        return plan


__all__: list[str] = []  # a unit of DensePopulation, wired by population.py; nothing public
