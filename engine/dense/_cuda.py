"""The ``cuda`` backend of cell kernels: fields resident on the GPU, the same bits as ``cpu``.

Per tick, for one population (population.py calls these in its update order):

- posts on cells are applied on the device (one small kernel per post box);
- halos: the strips to send are packed on the device, copied to host buffers
  (one copy per field dtype), exchanged by the transport as on the CPU, and the
  received strips go back in one host-to-device copy and are unpacked there
  (CUDA-aware MPI would skip the host; future work);
- the cell kernel runs as a grid-stride loop over the tile;
- block partials are reduced on the device in the CPU's order (each column of a
  block top to bottom, then the columns left to right), and the watched cells
  gathered beside them: one device-to-host copy brings both back.

No fastmath, and FMA contraction is off: NVVM contracts ``a * b + c`` by
default, which the CPU does not, and the digest would change. Numba has no
documented switch for it (``fastmath`` only turns it on), so the launches run
with ``fma=False`` added to the NVVM options (``_no_contraction``).

Under ``NUMBA_ENABLE_CUDASIM=1`` (Numba's CUDA simulator) the same code runs in
Python on tiny grids: that is how the tests check the digests without a GPU.
"""

from __future__ import annotations

import contextlib
import types
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import cuda

if TYPE_CHECKING:
    from .backends import CellKernel

_TPB = 256  # threads per block


def _simulated() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


@contextlib.contextmanager
def _no_contraction():
    """NVVM without FMA contraction for the kernels compiled inside (real GPUs only)."""
    if _simulated():
        yield
        return
    from numba.cuda.cudadrv import nvvm

    original = getattr(nvvm, "compile_ir", None)
    if original is None:
        yield
        return

    def compile_ir(llvmir: Any, **opts: Any) -> Any:
        opts["fma"] = False
        return original(llvmir, **opts)

    nvvm.compile_ir = compile_ir
    try:
        yield
    finally:
        nvvm.compile_ir = original


def _in_python(fn: Any) -> Any:
    """``fn`` for the simulator: compiled helpers it calls (``rng``) give NumPy integers.

    Numba hands a uint64 result back to Python as an int, which the next compiled
    call would take for an int64; the wrappers give np.uint64 (or np.int64) instead.
    """
    from numba.core.registry import CPUDispatcher

    from . import rng

    def wrap(f: Any) -> Any:
        def call(*args: Any) -> Any:
            out = f(*args)
            if type(out) is int:
                return np.uint64(out) if out > 2**63 - 1 else np.int64(out)
            return out

        return call

    proxy = types.SimpleNamespace(
        **{k: wrap(v) if isinstance(v, CPUDispatcher) else v for k, v in vars(rng).items()}
    )
    env = {}
    for k, v in fn.__globals__.items():
        env[k] = proxy if v is rng else wrap(v) if isinstance(v, CPUDispatcher) else v
    return types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)


def _grid(n: int) -> tuple[int, int]:
    """Blocks and threads for ``n`` items (grid-stride kernels take any; few when simulated)."""
    if _simulated():  # the simulator runs each GPU thread as a Python thread
        return (max(1, min(-(-n // 16), 4)), 16)
    return (max(1, min(-(-n // _TPB), 65535 * 4)), _TPB)


def build_update(cellk: CellKernel, nargs: int, shape: tuple) -> Any:
    """The grid-stride CUDA kernel of ``cellk`` (halo and block sizes compiled in)."""
    hy, hx = int(shape[0]), int(shape[1])
    extra = "".join(f", e{n}" for n in range(nargs))
    src = (
        f"def update(src, dst, tick, tk, y0, x0, ly, lx{extra}):\n"
        "    tkey = np.uint64(tk)\n"  # the simulator hands it over as a Python int
        "    for idx in range(cuda.grid(1), ly * lx, cuda.gridsize(1)):\n"
        "        r = idx // lx\n"
        "        c = idx - r * lx\n"
        f"        cell(src, dst, {hy} + r, {hx} + c, y0 + r, x0 + c, tick, tkey{extra})\n"
    )
    cell = _in_python(cellk.py_func) if _simulated() else cellk.device
    namespace = {"cuda": cuda, "cell": cell, "np": np}
    exec(compile(src, "<cuda cell loop>", "exec"), namespace)
    return cuda.jit(fastmath=False)(namespace["update"])


# --- device helpers, the same for every population (all grid-stride loops) ---------------


@cuda.jit
def _col_stats(a, hy, hx, ly, lx, by, acc, lo, hi):
    nbi = (ly + by - 1) // by
    for t in range(cuda.grid(1), nbi * lx, cuda.gridsize(1)):
        bi = t // lx
        c = t - bi * lx
        r0 = bi * by
        r1 = min(r0 + by, ly)
        v = a[hy + r0, hx + c]
        acc[bi, c] = 0
        lo[bi, c] = v
        hi[bi, c] = v
        for r in range(r0, r1):
            v = a[hy + r, hx + c]
            acc[bi, c] += v
            lo[bi, c] = v if v < lo[bi, c] else lo[bi, c]
            hi[bi, c] = v if v > hi[bi, c] else hi[bi, c]


@cuda.jit
def _block_stats(acc, lo, hi, lx, bx, nbj, out, width, col):
    for b in range(cuda.grid(1), acc.shape[0] * nbj, cuda.gridsize(1)):
        bi = b // nbj
        c0 = (b - bi * nbj) * bx
        c1 = min(c0 + bx, lx)
        s = acc[bi, c0]
        m0 = lo[bi, c0]
        m1 = hi[bi, c0]
        for c in range(c0 + 1, c1):
            s += acc[bi, c]
            m0 = min(m0, lo[bi, c])
            m1 = max(m1, hi[bi, c])
        out[b * width + col] = s
        out[b * width + col + 1] = m0
        out[b * width + col + 2] = m1


@cuda.jit
def _block_counts(a, hy, hx, ly, lx, by, bx, nbj, k, out, width, col):
    nbi = (ly + by - 1) // by
    for b in range(cuda.grid(1), nbi * nbj, cuda.gridsize(1)):
        bi = b // nbj
        r0 = bi * by
        r1 = min(r0 + by, ly)
        c0 = (b - bi * nbj) * bx
        c1 = min(c0 + bx, lx)
        for v in range(k):
            out[b * width + col + v] = 0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = a[hy + r, hx + c]
                if v >= 0 and v < k:
                    out[b * width + col + int(v)] += 1


@cuda.jit
def _gather(a, hy, hx, ys, xs, slots, out):
    for t in range(cuda.grid(1), ys.shape[0], cuda.gridsize(1)):
        out[slots[t]] = a[hy + ys[t], hx + xs[t]]


@cuda.jit
def _post(a, y0, y1, x0, x1, add, value):
    w = x1 - x0
    for t in range(cuda.grid(1), (y1 - y0) * w, cuda.gridsize(1)):
        i = y0 + t // w
        j = x0 + t % w
        if add:
            a[i, j] += value
        else:
            a[i, j] = value


@cuda.jit
def _pack(a, r0, c0, h, w, buf, offset, unpack):
    for t in range(cuda.grid(1), h * w, cuda.gridsize(1)):
        i = r0 + t // w
        j = c0 + t % w
        if unpack:
            a[i, j] = buf[offset + t]
        else:
            buf[offset + t] = a[i, j]


class DeviceFields:
    """A population's double buffer on the GPU, and its per-tick device work."""

    def __init__(self, pop: Any) -> None:
        decl, lay = pop._decl, pop._layout
        self._decl, self._lay = decl, lay
        self.cur = {n: cuda.to_device(pop._cur[n]) for n in decl.names}
        self.nxt = {
            n: self.cur[n] if n in decl.static else cuda.to_device(pop._nxt[n]) for n in decl.names
        }
        (ly, lx), by = lay.local_shape, lay.block[0]
        nbi = -(-ly // by)
        self._acc = {}
        for n, (_, k) in pop._aggregates.cols.items():
            if not k:
                acc_dt = np.float64 if decl.dtypes[n].kind == "f" else np.int64
                dt = decl.dtypes[n]
                self._acc[n] = (
                    cuda.device_array((nbi, lx), acc_dt),
                    cuda.device_array((nbi, lx), dt),
                    cuda.device_array((nbi, lx), dt),
                )
        self._halo = self._plan_halo(pop._halo)
        self._updates: dict[tuple, Any] = {}

    # --- halos -------------------------------------------------------------------------
    def _plan_halo(self, halo: Any) -> dict:
        """Per dtype: the send and receive strips, their offsets in one packed buffer."""
        plan: dict = {}
        for side in ("_sends", "_recvs"):
            for _, _, buf, n, sl in getattr(halo, side, ()):
                dt = buf.dtype.str
                entry = plan.setdefault(dt, {"_sends": [], "_recvs": [], "n": {}})
                off = entry["n"].get(side, 0)
                entry[side].append((buf, n, sl, off))
                entry["n"][side] = off + buf.size
        for dt, entry in plan.items():
            for side in ("_sends", "_recvs"):
                size = entry["n"].get(side, 0)
                entry[side + "_dev"] = cuda.device_array(size, np.dtype(dt))
                entry[side + "_host"] = cuda.pinned_array(size, np.dtype(dt))
        return plan

    def exchange(self, halo: Any) -> None:
        """Pack the strips to send on the device, exchange them on the host, unpack."""
        if not self._halo:
            return
        for entry in self._halo.values():
            dev = entry["_sends_dev"]
            for _buf, n, sl, off in entry["_sends"]:
                self._strip(self.cur[n], sl, dev, off, False)
            host = entry["_sends_host"]
            dev.copy_to_host(host)
            for buf, _, _, off in entry["_sends"]:
                buf.reshape(-1)[...] = host[off : off + buf.size]
        halo.exchange_buffers()
        for entry in self._halo.values():
            host = entry["_recvs_host"]
            for buf, _, _, off in entry["_recvs"]:
                host[off : off + buf.size] = buf.reshape(-1)
            dev = entry["_recvs_dev"]
            dev.copy_to_device(host)
            for _buf, n, sl, off in entry["_recvs"]:
                self._strip(self.cur[n], sl, dev, off, True)

    @staticmethod
    def _strip(a: Any, sl: tuple, buf: Any, off: int, unpack: bool) -> None:
        h = sl[0].stop - sl[0].start
        w = sl[1].stop - sl[1].start
        _pack[_grid(h * w)](a, sl[0].start, sl[1].start, h, w, buf, off, unpack)

    # --- posts -------------------------------------------------------------------------
    def apply_posts(self, cells: list) -> None:
        """Cell posts, clipped to the tile: (field, y0, y1, x0, x1, add, value)."""
        for n, y0, y1, x0, x1, add, value in cells:
            a = self.cur[n]
            _post[_grid((y1 - y0) * (x1 - x0))](a, y0, y1, x0, x1, add, value)

    # --- the update and its reductions ------------------------------------------------------
    def update(self, cellk: CellKernel, tick: int, tk: np.uint64, args: tuple, shape: tuple):
        """Run the cell kernel cur -> nxt over the tile."""
        key = (id(cellk), len(args), shape)
        kern = self._updates.get(key)
        if kern is None:
            kern = self._updates[key] = build_update(cellk, len(args), shape)
        lay = self._lay
        (ly, lx) = lay.local_shape
        y0, _, x0, _ = lay.tile
        names = self._decl.names
        src = tuple(self.cur[n] for n in names)
        dst = tuple(self.nxt[n] for n in names)
        dargs = tuple(cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args)
        with _no_contraction():
            kern[_grid(ly * lx)](src, dst, np.int64(tick), tk, y0, x0, ly, lx, *dargs)

    def reduce(self, cols: dict, width: int, nblocks: int, watched: tuple) -> tuple:
        """Block partials of ``nxt`` and the watched cells: one device-to-host copy."""
        lay = self._lay
        (ly, lx), (hy, hx), (by, bx) = lay.local_shape, lay.halo, lay.block
        nbj = -(-lx // bx)
        fields, ys, xs, slots, count = watched
        out = cuda.device_array(nblocks * width + count, np.float64)
        with _no_contraction():
            for n, (col, k) in cols.items():
                a = self.nxt[n]
                if k:
                    _block_counts[_grid(nblocks)](
                        a, hy, hx, ly, lx, by, bx, nbj, k, out, width, col
                    )
                else:
                    acc, lo, hi = self._acc[n]
                    _col_stats[_grid(acc.shape[0] * lx)](a, hy, hx, ly, lx, by, acc, lo, hi)
                    _block_stats[_grid(nblocks)](acc, lo, hi, lx, bx, nbj, out, width, col)
            for n, y, x, s in zip(fields, ys, xs, slots, strict=True):
                y, x, s = (cuda.to_device(v) for v in (y, x, s + nblocks * width))
                _gather[_grid(len(y))](self.nxt[n], hy, hx, y, x, s, out)
        host = out.copy_to_host()
        parts = host[: nblocks * width].reshape(nblocks, width)
        return parts, host[nblocks * width :]

    def values(self, watched: tuple) -> np.ndarray:
        """Values of cells of ``cur`` (newly watched ones): one small copy."""
        fields, ys, xs, slots, count = watched
        hy, hx = self._lay.halo
        out = cuda.device_array(max(count, 1), np.float64)
        for n, y, x, s in zip(fields, ys, xs, slots, strict=True):
            y, x, s = (cuda.to_device(v) for v in (y, x, s))
            _gather[_grid(len(y))](self.cur[n], hy, hx, y, x, s, out)
        return out.copy_to_host()[:count]

    def swap(self) -> None:
        self.cur, self.nxt = self.nxt, self.cur

    def to_host(self, cur: dict) -> None:
        """Copy the current state into the host buffers (checkpoints, tests)."""
        for n, a in self.cur.items():
            a.copy_to_host(cur[n])


__all__: list[str] = []  # the cuda backend of engine.dense.backends; nothing public
