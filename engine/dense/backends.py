"""One per-cell update, compiled for each backend: ``cpu``, ``threads`` and ``cuda``.

A model writes its update once, as a function of one cell (see
docs/populations.md)::

    @cell_kernel
    def diffuse(src, dst, i, j, y, x, tick, tk, alpha):
        (t,) = src
        c = t[i, j]
        dst[0][i, j] = c + alpha * (t[i - 1, j] + t[i + 1, j] + t[i, j - 1] + t[i, j + 1] - 4.0 * c)

``i, j`` index the padded local arrays, ``y, x`` are the cell's global row and
column, ``tk`` the tick's random key (``rng.tick_key(key, tick)``): draw with
``rng.uniform(rng.cell_key(tk, y * columns + x), n)``. The engine compiles the
function into a loop over the rank's tile: a plain loop for ``cpu``, a
``prange`` over block rows for ``threads``, a grid-stride CUDA kernel for
``cuda`` (engine/dense/_cuda.py).

The CPU loops take the block partials of the aggregates in the same pass, while
the cells are in cache: each block row is one unit of work, its column
accumulators run top to bottom and the columns of a block left to right, the
order of ``_numba.block_stats``. So the partials, hence the digest, do not depend
on the backend or the thread count.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads, types
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

from . import rng

BACKENDS = ("cpu", "threads", "cuda")
# Idle OpenMP workers sleep rather than spin between updates: a tick's serial
# work (actors, aggregates) would otherwise share its cores with spinning threads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
_MIN_PARALLEL_CELLS = 1 << 20  # smaller tiles run on one thread under ``threads``


class CellKernel:
    """A per-cell update and its compiled loops, one per backend and aggregation plan.

    Calling it with the whole-block signature ``(src, dst, tick, key, block,
    *args)`` runs the ``cpu`` loop over the block, without aggregates: a cell
    kernel is also a population kernel of the older form.
    """

    def __init__(self, fn: Any) -> None:
        py = fn.py_func if isinstance(fn, CPUDispatcher) else fn
        self.py_func = py
        self.cell = njit(inline="always")(py)  # the CPU loops inline it
        self.device = fn if isinstance(fn, CPUDispatcher) else njit(py)  # retargeted by CUDA
        self.__name__ = getattr(py, "__name__", "cell")
        self.__doc__ = py.__doc__
        self._loops: dict[tuple, Any] = {}
        self._compiled: dict[tuple, Any] = {}

    def loop(self, backend: str, plan: tuple, nargs: int, shape: tuple) -> Any:
        """The compiled loop of ``backend`` ("cpu" or "threads") for aggregation ``plan``.

        ``nargs``: how many extra arguments the cell takes (the loop passes them one
        by one); ``shape``: (halo rows, halo columns, block rows, block columns),
        compiled in as constants: LLVM then knows every index is >= 0, drops
        Numba's negative-index wraparound and vectorises the loop (4x on heat).
        """
        fn = self._loops.get((backend, plan, nargs, shape))
        if fn is None:
            compiled = self._compiled.get((plan, nargs, shape))
            if compiled is None:  # one compilation serves both backends
                compiled = _build_loop(self.cell, plan, nargs, shape)
                self._compiled[plan, nargs, shape] = compiled
            fn = _dynamic(compiled) if backend == "threads" else _one_thread(compiled)
            self._loops[backend, plan, nargs, shape] = fn
        return fn

    def __call__(self, src: tuple, dst: tuple, tick: int, key: Any, block: tuple, *args: Any):
        h, y0, x0 = block[0], block[1], block[2]
        ly = dst[0].shape[0] - 2 * h
        lx = dst[0].shape[1] - 2 * h
        geo = np.array([y0, x0, ly, lx], np.int64)
        parts = np.empty((0, 0), np.float64)
        self.loop("cpu", (), len(args), (h, h, max(ly, 1), max(lx, 1)))(
            src, dst, np.int64(tick), np.uint64(rng.tick_key(key, tick)), geo, parts, args
        )


def cell_kernel(fn: Any) -> CellKernel:
    """Declare a per-cell update (a plain or ``@njit`` function) for every backend."""
    return CellKernel(fn)


def default_backend(ranks_per_node: int = 1) -> str:
    """``threads`` when a rank has its node to itself, ``cpu`` when ranks share it.

    Ranks that share a node already share its cores: threads in each would only
    compete for them. On an idle 2-core machine ``threads`` runs a whole tick of
    heat at 1.67-1.77x ``cpu`` and the epidemic at 1.91-1.96x (benchmarks/README.md).
    """
    return "threads" if ranks_per_node <= 1 else "cpu"


def _ranks_per_node() -> int:
    """Ranks sharing this node, from the launcher's environment (1 when unknown)."""
    for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(name, "")
        if value.split("(")[0].isdigit():
            return int(value.split("(")[0])
    return 1


def _check_backend(name: Any) -> str:
    """``name`` if it names a backend, else a ValueError listing them."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; use {', '.join(BACKENDS)}")
    return name


def _cuda_problem() -> str | None:
    """Why the ``cuda`` backend cannot run here (no numba.cuda, no GPU), or None."""
    try:
        from numba import cuda
    except ImportError as exc:  # numba without its CUDA target
        return f"backend 'cuda' needs numba-cuda ({exc})"
    if not cuda.is_available():
        return "backend 'cuda' needs a CUDA GPU and driver; none is available here"
    return None


# --- the CPU loops ------------------------------------------------------------------
# The loop's source is generated from the aggregation plan: one tuple per
# aggregated field, (field number, first column, k categories or 0, accumulator
# dtype name). Fields and plans are few, so each combination is compiled once.

# Rows updated before the aggregates take them: the column accumulators are then
# loaded and stored once per group rather than once per row (they span the
# tile's width, far more than L1 holds).
_GROUP = 4


def _build_loop(cell: Any, plan: tuple, nargs: int, shape: tuple) -> Any:
    hy, hx, by, bx = (int(v) for v in shape)
    g = _GROUP if plan else 1
    lines = [
        "def loop(src, dst, tick, tk, geo, parts, args):",
        "    y0, x0, ly, lx = geo[0], geo[1], geo[2], geo[3]",
        f"    hy, hx, by, bx = {hy}, {hx}, {by}, {bx}",
        *(f"    e{n} = args[{n}]" for n in range(nargs)),
        "    nbi = (ly + by - 1) // by",
        "    nbj = (lx + bx - 1) // bx",
    ]
    for f, _, _, _ in plan:
        lines.append(f"    d{f} = dst[{f}]")
    # One task per thread, each taking the next block row from an atomic counter
    # until none is left. Numba's own prange splits the rows evenly up front,
    # whatever its chunk size (on the OpenMP layer): every tick then waited for
    # the thread that was descheduled or got the busier rows.
    lines += [
        "    counter = np.zeros(1, np.int64)",
        "    for _task in prange(get_num_threads()):",
    ]
    for f, _, k, acc in plan:
        if k:
            lines.append(f"        n{f} = np.empty(({k}, lx), np.int64)")
        else:
            lines += [
                f"        a{f} = np.empty(lx, np.{acc})",
                f"        lo{f} = np.empty(lx, d{f}.dtype)",
                f"        hi{f} = np.empty(lx, d{f}.dtype)",
            ]
    lines += [
        "        while True:",
        "            bi = take(counter)",
        "            if bi >= nbi:",
        "                break",
        "            r0 = bi * by",
        "            r1 = min(r0 + by, ly)",
    ]
    body = []
    for f, _, k, _ in plan:
        if k:
            body.append(f"        n{f}[:, :] = 0")
    # The column index starts at a constant: LLVM sees j - hx >= 0 and drops
    # Numba's negative-index wraparound.
    body += [
        f"        for g0 in range(r0, r1, {g}):",
        f"            g1 = min(g0 + {g}, r1)",
        "            for r in range(g0, g1):",
        "                i = hy + r",
        "                y = y0 + r",
        f"                for j in range({hx}, {hx} + lx):",
        f"                    cell(src, dst, i, j, y, x0 + j - {hx}, tick, tk"
        + "".join(f", e{n}" for n in range(nargs))
        + ")",
    ]
    if plan:
        # A whole group, then the rows of a short last group one by one. The first
        # rows of a block row start the column accumulators: code of their own, so
        # that the inner loops carry no branch on the row.
        stats = any(not k for _, _, k, _ in plan)
        body.append(f"            if g1 - g0 == {g}:")
        if stats:
            body.append("                if g0 == r0:")
            body += _group_lines(plan, hx, g, first=True, indent=20)
            body.append("                else:")
            body += _group_lines(plan, hx, g, first=False, indent=20)
        else:
            body += _group_lines(plan, hx, g, first=False, indent=16)
        body += ["            else:", "                for r in range(g0, g1):"]
        if stats:
            body.append("                    if r == r0:")
            body += _group_lines(plan, hx, 1, first=True, indent=24, row="r")
            body.append("                    else:")
            body += _group_lines(plan, hx, 1, first=False, indent=24, row="r")
        else:
            body += _group_lines(plan, hx, 1, first=False, indent=20, row="r")
        body += [
            "        for bj in range(nbj):",
            "            b = bi * nbj + bj",
            "            c0 = bj * bx",
            "            c1 = min(c0 + bx, lx)",
        ]
    for f, col, k, _ in plan:
        if k:
            body += [
                f"            for v in range({k}):",
                "                t = 0",
                "                for c in range(c0, c1):",
                f"                    t += n{f}[v, c]",
                f"                parts[b, {col} + v] = t",
            ]
        else:
            body += [
                f"            s = a{f}[c0]",
                f"            m0 = lo{f}[c0]",
                f"            m1 = hi{f}[c0]",
                "            for c in range(c0 + 1, c1):",
                f"                s += a{f}[c]",
                f"                m0 = min(m0, lo{f}[c])",
                f"                m1 = max(m1, hi{f}[c])",
                f"            parts[b, {col}] = s",
                f"            parts[b, {col + 1}] = m0",
                f"            parts[b, {col + 2}] = m1",
            ]
    lines += ["    " + line for line in body]
    namespace = {
        "np": np,
        "prange": prange,
        "get_num_threads": get_num_threads,
        "take": _take,
        "cell": cell,
    }
    exec(compile("\n".join(lines), "<cell loop>", "exec"), namespace)
    # Both backends compile the prange loop: Numba's parallel pipeline gives faster
    # code even on one thread (2-4x on the epidemic). ``cpu`` runs it on one thread.
    return njit(parallel=True)(namespace["loop"])


def _group_lines(plan: tuple, hx: int, g: int, first: bool, indent: int, row: str = "g0") -> list:
    """The aggregates of the ``g`` rows just updated from ``row`` on: one pass over their columns.

    Each column's accumulators take the rows top to bottom and start, on a block
    row's first row, as ``_numba.block_stats`` does (0 + v, min = max = v): the
    partials do not depend on the group size. The pass reads rows just written
    (still in cache) and vectorises on its own, where one loop fused with the
    update does not (2x on the heat plate).
    """
    body = []
    for f, _, k, acc in plan:
        body += [f"w{f}_{q} = d{f}[hy + {row} + {q}, {hx} : {hx} + lx]" for q in range(g)]
        body.append("for c in range(lx):")
        if k:  # counts add exactly in any order: one compare per value and row
            body += [f"    t{f}_{q} = w{f}_{q}[c]" for q in range(g)]
            for v in range(k):
                body.append(f"    n = n{f}[{v}, c]")
                body += [f"    n += t{f}_{q} == {v}" for q in range(g)]
                body.append(f"    n{f}[{v}, c] = n")
            continue
        if first:
            body += [
                f"    v{f} = w{f}_0[c]",
                f"    s{f} = np.{acc}(0)",
                f"    s{f} += v{f}",
                f"    lo{f}_ = v{f}",
                f"    hi{f}_ = v{f}",
            ]
        else:
            body += [f"    s{f} = a{f}[c]", f"    lo{f}_ = lo{f}[c]", f"    hi{f}_ = hi{f}[c]"]
        for q in range(1 if first else 0, g):
            body += [
                f"    v{f} = w{f}_{q}[c]",
                f"    s{f} += v{f}",
                f"    lo{f}_ = v{f} if v{f} < lo{f}_ else lo{f}_",
                f"    hi{f}_ = v{f} if v{f} > hi{f}_ else hi{f}_",
            ]
        body += [f"    a{f}[c] = s{f}", f"    lo{f}[c] = lo{f}_", f"    hi{f}[c] = hi{f}_"]
    return [" " * indent + line for line in body]


def _dynamic(loop: Any) -> Any:
    """``loop`` on every thread (the ``threads`` backend); small tiles on the calling one."""

    def run(*args: Any) -> None:
        geo = args[4]
        if geo[2] * geo[3] < _MIN_PARALLEL_CELLS:  # waking threads would cost more
            _one_thread(loop)(*args)
            return
        loop(*args)

    run.compiled = loop
    return run


@intrinsic
def _take(typingctx: Any, counter: Any) -> Any:
    """``counter[0] += 1`` as one atomic step, in Numba code; gives the value before."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        array = context.make_array(sig.args[0])(context, builder, args[0])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", array.data, one, "monotonic")

    return types.int64(counter), codegen


def _one_thread(loop: Any) -> Any:
    """``loop`` run on the calling thread alone (the ``cpu`` backend)."""

    def run(*args: Any) -> None:
        n = get_num_threads()
        set_num_threads(1)
        try:
            loop(*args)
        finally:
            set_num_threads(n)

    run.compiled = loop
    return run


def _aggregation_plan(names: list[str], dtypes: dict, cols: dict) -> tuple:
    """The plan of ``_build_loop`` for the aggregated fields (``cols`` of _Aggregates)."""
    plan = []
    for n, (col, k) in cols.items():
        acc = "float64" if dtypes[n].kind == "f" else "int64"
        plan.append((names.index(n), col, k, acc))
    return tuple(plan)


__all__ = ["BACKENDS", "CellKernel", "cell_kernel", "default_backend"]
