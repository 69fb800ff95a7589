"""``pydiasca check``: does a scenario give the same results on every layout?

The reproducibility guarantee (ARCHITECTURE.md section 2) says that results
never depend on the number of ranks. A model can still break it without any
error, for instance with state shared between actors. ``check`` runs the
scenario for a few ticks on 1 rank and on each layout asked for, each run a
``pydiasca run`` of its own process, then compares the probes row by row and
names the first (tick, probe, actor) where a layout differs from 1 rank.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from engine import Kernel
from engine.sharing import SharedState

from .results import RESULTS_FILE, read_probes
from .scenario import Override, Scenario, ScenarioError, load_scenario

DEFAULT_TICKS = 100  # or the scenario's stop_tick when smaller
DEFAULT_LAYOUTS = (2,)
EXIT_DIVERGED = 3  # the layouts disagree (1: a run failed, 2: bad input)

CAUSES = """\
usual causes of results that depend on the layout:
  - state shared between actors: a mutable default argument (def __init__(self, seen=[])),
    or one list, dict or array given to several actors
  - module globals or class attributes that actors change
  - unseeded randomness (the random module, numpy.random, time): draw from self.random
  - iteration over a set of strings or objects, whose order differs between processes
  - hash() of a str or bytes, salted per process: use a stable hash (hashlib)"""

Series = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Divergence:
    """The first row where one layout's results differ from those of 1 rank."""

    tick: int
    probe: str
    aai: int
    reference: list[str]  # the values of (tick, AAI) on 1 rank ([]: no row)
    other: list[str]  # and on the other layout


def check(
    path: str,
    *,
    ticks: int | None = None,
    layouts: Sequence[int] = DEFAULT_LAYOUTS,
    settings: Sequence[str | Override] = (),
    keep: str | None = None,
) -> int:
    """Run ``path`` on 1 rank and on each layout, compare, print; returns the exit code."""
    try:
        scenario = load_scenario(path, list(settings))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = ticks if ticks is not None else min(DEFAULT_TICKS, scenario.stop_tick or DEFAULT_TICKS)
    ranks = [1, *sorted({r for r in layouts if r != 1})]
    print(
        f"check of {scenario.name}: ticks 0 to {stop - 1} on {_ranks_text(ranks)} rank(s)",
        flush=True,
    )
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="pydiasca-check-") as tmp:
            return _check_in(scenario, path, stop, ranks, settings, Path(tmp))
    code = _check_in(scenario, path, stop, ranks, settings, Path(keep))
    print(f"the runs are kept in {keep}/ranks-<N>/")
    return code


def _check_in(
    scenario: Scenario,
    path: str,
    stop: int,
    ranks: list[int],
    settings: Sequence[str | Override],
    folder: Path,
) -> int:
    digests: dict[int, str] = {}
    probes: dict[int, dict[str, Series]] = {}
    warned: set[str] = set()
    for r in ranks:
        run_dir = folder / f"ranks-{r}"
        proc = _run(path, stop, r, settings, run_dir)
        if r == 1:  # its warnings, e.g. about state shared between actors
            for line in proc.stderr.splitlines():
                if line.startswith("warning: ") and line not in warned:
                    warned.add(line)
                    print(line, flush=True)
        if proc.returncode != 0:
            print(
                f"error: the run on {r} rank(s) failed (exit code {proc.returncode}); "
                f"its output ends with:\n{_tail(proc)}",
                file=sys.stderr,
            )
            return 2 if proc.returncode == 2 else 1
        with h5py.File(run_dir / RESULTS_FILE, "r") as f:
            digests[r] = str(f.attrs["digest"])
        probes[r] = read_probes(run_dir / RESULTS_FILE)
    for r in ranks:
        print(f"  {_on(r) + ':':<13} results digest {digests[r]}")
    first: tuple[int, _Divergence] | None = None
    for r in ranks[1:]:
        found = _first_divergence(probes[1], probes[r])
        if found is not None and (first is None or _key(found) < _key(first[1])):
            first = (r, found)
    if first is None and len(set(digests.values())) > 1:  # same rows give the same digest
        print("layouts differ: the digests differ, though every probe row is the same")
        return EXIT_DIVERGED
    if first is None:
        print(f"all layouts agree: the same results on {_ranks_text(ranks)} ranks")
        return 0
    r, d = first
    print(
        f"layouts differ: first divergence at tick {d.tick}, probe {d.probe!r}, "
        f"{_actor(scenario, d.aai)}"
    )
    print(f"  {_on(1) + ':':<13} {_values(d.reference)}")
    print(f"  {_on(r) + ':':<13} {_values(d.other)}")
    print(CAUSES)
    return EXIT_DIVERGED


def shared_state_warning(kernel: Kernel, found: SharedState) -> str:
    """What a run says about a mutable object that two of its actors hold."""
    also = ""
    if found.other_attribute != found.attribute:
        also = f" (the first as {found.other_attribute!r})"
    return (
        f"{found.cls.__name__}.{found.attribute}: actors {kernel.label(found.other_aai)} "
        f"and {kernel.label(found.aai)} hold the same {found.kind} object{also}, so "
        f"results will depend on the number of ranks; give each actor its own (a mutable "
        f"default argument such as {found.attribute}=[] is shared by every call: default "
        f"to None and build it in __init__)"
    )


def _run(
    path: str, stop: int, ranks: int, settings: Sequence[str | Override], run_dir: Path
) -> subprocess.CompletedProcess:
    """``pydiasca run`` in a process of its own: nothing of one run leaks into another."""
    sets = [s for s in settings if isinstance(s, str)]
    command = [sys.executable, "-m", "runtime.cli", "run", path, "--stop-tick", str(stop)]
    command += ["--set", "results.plots=false", "--out", str(run_dir)]
    for text in sets:
        command += ["--set", text]
    if ranks > 1:
        command += ["--ranks", str(ranks)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run(command, capture_output=True, text=True, env=env)


def _first_divergence(reference: dict[str, Series], other: dict[str, Series]) -> _Divergence | None:
    """The first (tick, probe, AAI) whose rows differ between two runs' probes, or None.

    Rows are in canonical order (tick, AAI, recording order) in both, so the first
    row that differs, or that one run has and the other has not, is the place.
    Values are compared bit for bit, as the results digest does.
    """
    found: list[_Divergence] = []
    for name in sorted(set(reference) | set(other)):
        a, b = reference.get(name, _EMPTY), other.get(name, _EMPTY)
        where = _first_row(a, b)
        if where is not None:
            tick, aai = where
            found.append(_Divergence(tick, name, aai, _at(a, tick, aai), _at(b, tick, aai)))
    return min(found, key=_key, default=None)


_EMPTY: Series = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))


def _key(d: _Divergence) -> tuple[int, str, int]:
    return (d.tick, d.probe, d.aai)


def _bits(values: np.ndarray) -> np.ndarray:
    """Each row's values as integers, one row per line: NaN equals NaN, -0.0 differs from 0.0."""
    v = np.ascontiguousarray(values, dtype="<f8")
    return (v if v.ndim == 2 else v.reshape(len(v), 1)).view("<u8")


def _first_row(a: Series, b: Series) -> tuple[int, int] | None:
    """(tick, AAI) of the first row where ``a`` and ``b`` differ, None when they do not."""
    (ta, aa, va), (tb, ab, vb) = a, b
    n = min(len(ta), len(tb))
    ba, bb = _bits(va), _bits(vb)
    if ba.shape[1:] != bb.shape[1:] and len(ta) and len(tb):  # widths differ: every row does
        i = 0
    else:
        differs = (ta[:n] != tb[:n]) | (aa[:n] != ab[:n])
        if n:
            differs |= (ba[:n] != bb[:n]).any(axis=1)
        rows = np.flatnonzero(differs)
        i = int(rows[0]) if len(rows) else n
        if i == len(ta) == len(tb):
            return None
    keys = [(int(t[i]), int(x[i])) for t, x in ((ta, aa), (tb, ab)) if i < len(t)]
    return min(keys)


def _at(series: Series, tick: int, aai: int) -> list[str]:
    ticks, aais, values = series
    rows = (ticks == tick) & (aais == aai)
    return [_number(v) for v in values[rows]]


def _number(value: np.ndarray) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):.17g}"
    return "[" + ", ".join(f"{float(v):.17g}" for v in value) + "]"


def _values(values: list[str]) -> str:
    if not values:
        return "no row"
    return ("value " if len(values) == 1 else "values ") + ", ".join(values)


def _on(ranks: int) -> str:
    return "on 1 rank" if ranks == 1 else f"on {ranks} ranks"


def _ranks_text(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks[:-1])) + f" and {ranks[-1]}" if len(ranks) > 1 else "1"


def _actor(scenario: Scenario, aai: int) -> str:
    """How the report names an actor: its class and scenario id, known from the scenario
    alone for initial actors (AAIs are given in scenario order, whatever the layout)."""
    if aai == 0:
        return "AAI 0 (an aggregate, such as a population's)"
    kernel = Kernel()  # declaring actors builds none of them
    for entry in scenario.actors:
        if entry.count:
            kernel.add_actors(entry.cls, entry.count, entry.hint, entry.id, **entry.args)
    if kernel.class_of(aai) is None:
        return f"actor {aai} (created during the run)"
    return f"actor {kernel.label(aai)}"


def _tail(proc: subprocess.CompletedProcess, lines: int = 12) -> str:
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return "\n".join("  " + line for line in text[-lines:])


__all__ = ["DEFAULT_LAYOUTS", "DEFAULT_TICKS", "EXIT_DIVERGED", "check", "shared_state_warning"]
