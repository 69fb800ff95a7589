"""Partition maths for dense populations: aggregation blocks, process grids, tiles, halos.

Everything here depends on the global shape, the rank count and the process
grid only, so every rank computes the same layout for itself and for the others.

A population is always handled as a 2-D grid ``(NY, NX)``; a 1-D population is
the grid ``(1, N)``. The grid is cut into fixed *aggregation blocks* whose size
depends on the global shape alone. Tiles (one per rank, on a ``py x px``
process grid) are unions of whole blocks, so a block's partial sums are the same
whatever the partitioning, and combining them in global block order gives
bitwise identical aggregates on 1 or 1,000 ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import product

import numpy as np

# Directions of the 8 neighbours of a tile, and their message tags.
DIRECTIONS = [(dy, dx) for dy, dx in product((-1, 0, 1), repeat=2) if (dy, dx) != (0, 0)]


def direction_tag(dy: int, dx: int) -> int:
    """0..8: the tag of a halo strip travelling in direction (dy, dx)."""
    return (dy + 1) * 3 + (dx + 1)


def default_block(gshape: tuple[int, int], regions: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Aggregation block of a grid: a function of the global shape and regions alone.

    2-D: up to 64 x 64 cells, at least 16 blocks along each axis when the grid
    allows it. 1-D: up to 4096 agents, at least 64 blocks when it allows it.
    Where ``regions`` divide an axis evenly, the block side is shrunk (by at most
    half) to a divisor of the region's side, so that the regions are equal.
    """
    ny, nx = gshape
    if ny == 1:
        return (1, _fit(nx, max(1, min(4096, nx // 64)), regions[1]))
    return (
        _fit(ny, max(1, min(64, ny // 16)), regions[0]),
        _fit(nx, max(1, min(64, nx // 16)), regions[1]),
    )


def _fit(n: int, side: int, regions: int) -> int:
    """The largest block side in side/2..side dividing n/regions, else ``side``."""
    if regions > 1 and n % regions == 0:
        per = n // regions
        for d in range(min(side, per), (side + 1) // 2 - 1, -1):
            if d >= 1 and per % d == 0:
                return d
    return side


def region_edges(n: int, block: int, regions: int) -> np.ndarray:
    """First block of each region along one axis, then the block count: ``regions + 1`` numbers.

    Regions are made of whole blocks (so that block partials combine into them
    exactly); each edge is the block boundary nearest to the equal split
    ``r * n / regions``, and no region is empty.
    """
    nblocks = -(-n // block)
    edges = [0]
    for r in range(1, regions):
        b = (2 * r * n + regions * block) // (2 * regions * block)  # round half up
        edges.append(min(max(b, edges[-1] + 1), nblocks - (regions - r)))
    edges.append(nblocks)
    return np.array(edges, dtype=np.int64)


def split(n: int, parts: int) -> list[int]:
    """Boundaries of ``n`` items cut into ``parts`` contiguous near-equal runs."""
    return [k * n // parts for k in range(parts + 1)]


def choose_process_grid(size: int, nblocks: tuple[int, int], gshape: tuple[int, int]):
    """The (py, px) with py * px = size that cuts the least halo, tiles not empty."""
    nby, nbx = nblocks
    best = None
    for py in range(1, size + 1):
        if size % py:
            continue
        px = size // py
        if py > nby or px > nbx:
            continue
        cut = (py - 1) * gshape[1] + (px - 1) * gshape[0]  # cells along inner edges
        if best is None or cut < best[0]:
            best = (cut, (py, px))
    if best is None:
        raise ValueError(
            f"a grid of {nby} x {nbx} aggregation blocks cannot be shared by {size} ranks"
        )
    return best[1]


@dataclass(frozen=True)
class Layout:
    """Where every rank's tile lies; ``rank``'s own tile and halo widths."""

    gshape: tuple[int, int]  # (NY, NX); NY == 1 for 1-D populations
    block: tuple[int, int]  # aggregation block (by, bx)
    pgrid: tuple[int, int]  # process grid (py, px); rank = cy * px + cx
    rank: int
    halo: tuple[int, int]  # (hy, hx)
    periodic: tuple[bool, bool]

    @cached_property
    def nblocks(self) -> tuple[int, int]:
        by, bx = self.block
        return (-(-self.gshape[0] // by), -(-self.gshape[1] // bx))

    @property
    def size(self) -> int:
        return self.pgrid[0] * self.pgrid[1]

    @cached_property
    def coords(self) -> tuple[int, int]:
        return divmod(self.rank, self.pgrid[1])

    def block_ranges(self, rank: int) -> tuple[int, int, int, int]:
        """Block rows [bi0, bi1) and block columns [bj0, bj1) of ``rank``'s tile."""
        cy, cx = divmod(rank, self.pgrid[1])
        ys, xs = split(self.nblocks[0], self.pgrid[0]), split(self.nblocks[1], self.pgrid[1])
        return ys[cy], ys[cy + 1], xs[cx], xs[cx + 1]

    def tile_of(self, rank: int) -> tuple[int, int, int, int]:
        """Cells [y0, y1) x [x0, x1) of ``rank``'s tile."""
        bi0, bi1, bj0, bj1 = self.block_ranges(rank)
        by, bx = self.block
        ny, nx = self.gshape
        return bi0 * by, min(bi1 * by, ny), bj0 * bx, min(bj1 * bx, nx)

    @cached_property
    def tile(self) -> tuple[int, int, int, int]:
        return self.tile_of(self.rank)

    @cached_property
    def local_shape(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.tile
        return (y1 - y0, x1 - x0)

    @cached_property
    def padded_shape(self) -> tuple[int, int]:
        ly, lx = self.local_shape
        return (ly + 2 * self.halo[0], lx + 2 * self.halo[1])

    def owners(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Vectorised ``owner``."""
        nby, nbx = self.nblocks
        sy, sx = np.array(split(nby, self.pgrid[0])), np.array(split(nbx, self.pgrid[1]))
        cy = np.searchsorted(sy, ys // self.block[0], side="right") - 1
        cx = np.searchsorted(sx, xs // self.block[1], side="right") - 1
        return cy * self.pgrid[1] + cx

    def block_ids(self, rank: int) -> np.ndarray:
        """Global ids (row-major over the block grid) of ``rank``'s blocks, in local order."""
        bi0, bi1, bj0, bj1 = self.block_ranges(rank)
        nbx = self.nblocks[1]
        return (np.arange(bi0, bi1)[:, None] * nbx + np.arange(bj0, bj1)[None, :]).ravel()

    def neighbour(self, dy: int, dx: int) -> int | None:
        """Rank of the tile at offset (dy, dx) on the process grid; None past a fixed edge."""
        cy, cx = self.coords
        py, px = self.pgrid
        ny, nx = cy + dy, cx + dx
        if not 0 <= ny < py:
            if not self.periodic[0]:
                return None
            ny %= py
        if not 0 <= nx < px:
            if not self.periodic[1]:
                return None
            nx %= px
        return ny * px + nx

    def strip(self, dy: int, dx: int, halo: bool) -> tuple[slice, slice]:
        """Padded-array slices of the interior strip on side (dy, dx), or of that halo."""
        (ly, lx), (hy, hx) = self.local_shape, self.halo
        return (_side(dy, ly, hy, halo), _side(dx, lx, hx, halo))

    def check(self) -> None:
        """Refuse tiles thinner than the halo they must fill for a neighbour."""
        ly, lx = self.local_shape
        hy, hx = self.halo
        if ly < hy or lx < hx:
            raise ValueError(
                f"the tile of rank {self.rank} is {ly} x {lx} cells, thinner than the halo "
                f"({hy} x {hx}); use fewer ranks or another process grid"
            )


def _side(d: int, n: int, h: int, halo: bool) -> slice:
    if d == 0:
        return slice(h, h + n)
    if d < 0:
        return slice(0, h) if halo else slice(h, 2 * h)
    return slice(h + n, n + 2 * h) if halo else slice(n, n + h)


def region_of_blocks(
    gshape: tuple[int, int], block: tuple[int, int], regions: tuple[int, int]
) -> np.ndarray:
    """Region of every block (row-major): a ``regions`` = (Ry, Rx) grid over the blocks."""
    rows = _region_of(gshape[0], block[0], regions[0])
    cols = _region_of(gshape[1], block[1], regions[1])
    return (rows[:, None] * regions[1] + cols[None, :]).ravel()


def region_of_cells(n: int, block: int, regions: int) -> np.ndarray:
    """Region row (or column) of every global row (or column) of cells along one axis."""
    return _region_of(n, block, regions)[np.arange(n) // block]


def _region_of(n: int, block: int, regions: int) -> np.ndarray:
    edges = region_edges(n, block, regions)
    return np.searchsorted(edges, np.arange(edges[-1]), side="right") - 1


__all__ = [
    "DIRECTIONS",
    "Layout",
    "choose_process_grid",
    "default_block",
    "direction_tag",
    "region_edges",
    "region_of_blocks",
    "region_of_cells",
    "split",
]
