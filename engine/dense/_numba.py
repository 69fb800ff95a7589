"""Engine-side Numba loops of dense populations: block partial aggregates and their sum.

Partial aggregates are taken per aggregation block with a summation order fixed
by the position inside the block (column accumulators, then the columns left
to right), so a block gives the same bits on any rank; blocks are then combined
in global block order. No fastmath anywhere: it would let LLVM reorder sums.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SUM, MIN, MAX = 0, 1, 2  # how a column of partials combines across blocks


@njit(cache=True)
def block_stats(a, hy, hx, ly, lx, by, bx, acc, out, col):
    """Sum, min and max of each local block of field ``a`` into out[b, col:col + 3].

    ``a`` is the padded local array (halo hy, hx); ``acc`` a scratch array of
    ``bx`` accumulators whose dtype sets the sum's (int64 or float64). Each
    column of a block is summed top to bottom, then the columns left to right.
    """
    nbi = -(-ly // by)
    nbj = -(-lx // bx)
    mn = np.empty(bx, a.dtype)
    mx = np.empty(bx, a.dtype)
    b = 0
    for bi in range(nbi):
        r0 = bi * by
        r1 = min(r0 + by, ly)
        for bj in range(nbj):
            c0 = hx + bj * bx
            w = min(bx, lx - bj * bx)
            ac = acc[:w]
            lo = mn[:w]
            hi = mx[:w]
            first = a[hy + r0, c0 : c0 + w]
            for j in range(w):
                ac[j] = 0
                lo[j] = first[j]
                hi[j] = first[j]
            for r in range(r0, r1):
                row = a[hy + r, c0 : c0 + w]
                for j in range(w):
                    v = row[j]
                    ac[j] += v
                    lo[j] = v if v < lo[j] else lo[j]
                    hi[j] = v if v > hi[j] else hi[j]
            s = ac[0]
            m0 = lo[0]
            m1 = hi[0]
            for j in range(1, w):
                s += ac[j]
                m0 = min(m0, lo[j])
                m1 = max(m1, hi[j])
            out[b, col] = s
            out[b, col + 1] = m0
            out[b, col + 2] = m1
            b += 1


@njit(cache=True)
def block_counts(a, hy, hx, ly, lx, by, bx, k, out, col):
    """Counts of the values 0..k-1 of integer field ``a`` per local block into out[b, col:col+k]."""
    nbi = -(-ly // by)
    nbj = -(-lx // bx)
    cnt = np.empty((k, bx), np.int64)
    b = 0
    for bi in range(nbi):
        r0 = bi * by
        r1 = min(r0 + by, ly)
        for bj in range(nbj):
            c0 = hx + bj * bx
            w = min(bx, lx - bj * bx)
            cnt[:, :] = 0
            for r in range(r0, r1):
                row = a[hy + r, c0 : c0 + w]
                for v in range(k):
                    cv = cnt[v, :w]
                    for j in range(w):
                        cv[j] += row[j] == v
            for v in range(k):
                t = 0
                for j in range(w):
                    t += cnt[v, j]
                out[b, col + v] = t
            b += 1


@njit(cache=True)
def rows_stats(a, hy, hx, r0, r1, lx, ac, lo, hi, init):
    """Add rows r0..r1-1 (interior rows) of ``a`` to column accumulators of the tile width.

    With ``init`` the accumulators restart (first row of a block row). Taking a
    block row in several calls gives the same bits as ``block_stats``.
    """
    for c0 in range(0, lx, 64):  # column chunks: accumulators stay in L1
        w = min(64, lx - c0)
        a_ = ac[c0 : c0 + w]
        lo_ = lo[c0 : c0 + w]
        hi_ = hi[c0 : c0 + w]
        if init:
            first = a[hy + r0, hx + c0 : hx + c0 + w]
            for j in range(w):
                a_[j] = 0
                lo_[j] = first[j]
                hi_[j] = first[j]
        for r in range(r0, r1):
            row = a[hy + r, hx + c0 : hx + c0 + w]
            for j in range(w):
                v = row[j]
                a_[j] += v
                lo_[j] = v if v < lo_[j] else lo_[j]
                hi_[j] = v if v > hi_[j] else hi_[j]


@njit(cache=True)
def finish_stats(ac, lo, hi, lx, bx, out, col):
    """Partials of the blocks of one block row from its column accumulators."""
    b = 0
    for c0 in range(0, lx, bx):
        w = min(bx, lx - c0)
        s = ac[c0]
        m0 = lo[c0]
        m1 = hi[c0]
        for j in range(c0 + 1, c0 + w):
            s += ac[j]
            m0 = min(m0, lo[j])
            m1 = max(m1, hi[j])
        out[b, col] = s
        out[b, col + 1] = m0
        out[b, col + 2] = m1
        b += 1


@njit(cache=True)
def rows_counts(a, hy, hx, r0, r1, lx, cnt, init):
    """Add rows r0..r1-1 to per-column counts of the values 0..k-1 (``cnt`` is k x lx)."""
    k = cnt.shape[0]
    if init:
        cnt[:, :] = 0
    for c0 in range(0, lx, 64):
        w = min(64, lx - c0)
        for r in range(r0, r1):
            row = a[hy + r, hx + c0 : hx + c0 + w]
            for v in range(k):
                cv = cnt[v, c0 : c0 + w]
                for j in range(w):
                    cv[j] += row[j] == v


@njit(cache=True)
def finish_counts(cnt, lx, bx, out, col):
    k = cnt.shape[0]
    b = 0
    for c0 in range(0, lx, bx):
        w = min(bx, lx - c0)
        for v in range(k):
            t = 0
            for j in range(c0, c0 + w):
                t += cnt[v, j]
            out[b, col + v] = t
        b += 1


@njit(cache=True)
def combine(partials, order, region, nregions, kinds):
    """Totals and per-region values of the partials of every block, in global block order.

    ``partials`` is (blocks, width) as the ranks sent them, ``order`` the row of
    each global block in it (so the combination never depends on who sent what),
    ``region`` the region of each global block and ``kinds`` the SUM/MIN/MAX
    rule of each column.
    """
    nb, width = partials.shape
    total = np.empty(width, np.float64)
    byreg = np.empty((nregions, width), np.float64)
    seen = np.zeros(nregions, np.bool_)
    for b in range(nb):
        r = region[b]
        row = order[b]
        for c in range(width):
            v = partials[row, c]
            kind = kinds[c]
            if b == 0:
                total[c] = v
            elif kind == SUM:
                total[c] += v
            elif kind == MIN:
                total[c] = min(total[c], v)
            else:
                total[c] = max(total[c], v)
            if not seen[r]:
                byreg[r, c] = v
            elif kind == SUM:
                byreg[r, c] += v
            elif kind == MIN:
                byreg[r, c] = min(byreg[r, c], v)
            else:
                byreg[r, c] = max(byreg[r, c], v)
        seen[r] = True
    return total, byreg


@njit(cache=True)
def gather_values(a, hy, hx, y0, x0, ys, xs, out):
    """out[i] = the value of global cell (ys[i], xs[i]), which lies in this tile."""
    for i in range(ys.shape[0]):
        out[i] = a[hy + ys[i] - y0, hx + xs[i] - x0]
