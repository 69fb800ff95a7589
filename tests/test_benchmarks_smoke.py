"""Smoke tests of the benchmarks: they run, print their tables, and count alike.

No timing is asserted: the figures depend on the machine.

- benchmarks/phold.py: the engine and both SimPy forms of PHOLD process
  comparable events. With mean 1.0 every increment is one tick, so all three
  process exactly ``LPs * (ticks - 1)`` events; with another mean the engine's
  random streams differ from SimPy's, so its count only has to be close.
- benchmarks/wealth.py, pydiasca's side only (Mesa is no dependency): the
  total wealth is conserved.
- benchmarks/spread.py, pydiasca's side only (Repast4Py is no dependency): the
  informed counts and the results digest do not depend on the number of ranks.
- benchmarks/costs.py and profiles.py: they print a figure for every
  operation and a profile for every workload.
- benchmarks/city_generate.py: it generates tiny and prints its row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "phold.py"


def test_phold_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "phold.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-memory", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only: --quick takes a few seconds
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for header in (
        "LPs",
        "ticks",
        "events",
        "wall s",
        "events/s",
        "peak RSS MB",
        "engine/simpy-process",
        "engine/simpy-callbacks",
    ):
        assert header in text, f"missing table header {header!r}:\n{text}"
    assert "WARNING" not in text, text
    assert "Memory at" not in text  # --no-memory

    rates = json.loads(out.read_text())["rates"]
    groups: dict[tuple[int, float], dict[str, dict]] = {}
    for row in rates:
        groups.setdefault((row["lps"], row["mean"]), {})[row["form"]] = row
    assert {mean for _, mean in groups} == {1.0, 2.0}
    for (lps, mean), forms in groups.items():
        assert set(forms) == {"engine", "simpy-process", "simpy-callbacks"}
        ticks = {r["ticks"] for r in forms.values()}
        assert len(ticks) == 1, f"forms ran different tick counts: {ticks}"
        (t,) = ticks
        counts = {form: r["events"] for form, r in forms.items()}
        for form, r in forms.items():
            assert r["events"] > 0 and r["wall_s"] > 0 and r["peak_rss"] > 0, (form, r)
            assert f"{form:<16}{r['events']:>12}" in text  # the row is printed
        # Both SimPy forms draw the same numbers in the same order: same events.
        assert counts["simpy-process"] == counts["simpy-callbacks"], counts
        if mean == 1.0:
            assert counts["engine"] == lps * (t - 1), counts
            assert counts["engine"] == counts["simpy-process"], counts
        else:
            ratio = counts["engine"] / counts["simpy-process"]
            assert 0.8 < ratio < 1.25, counts


# --- benchmarks/wealth.py: Boltzmann wealth against Mesa (pydiasca side only here) ---------
WEALTH = ROOT / "benchmarks" / "wealth.py"


def test_wealth_benchmark_quick(tmp_path: Path) -> None:
    """It runs, prints its table and conserves wealth; Mesa is not needed (--no-peer)."""
    out = tmp_path / "wealth.json"
    proc = subprocess.run(
        [sys.executable, str(WEALTH), "--quick", "--no-peer", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only: --quick takes about a second
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for header in ("build s", "run s", "total s", "agent-steps/s", "peak MB", "Gini"):
        assert header in proc.stdout, f"missing table header {header!r}:\n{proc.stdout}"
    (row,) = json.loads(out.read_text())["results"]
    assert row["side"] == "pydiasca"
    n, steps = row["agents"], row["steps"]
    wealth = {int(value): count for value, count in row["wealth"].items()}
    assert sum(wealth.values()) == n  # every agent is counted once
    assert sum(value * count for value, count in wealth.items()) == n  # and no unit is lost
    assert row["ticks"] == steps + 1  # tick 0 builds, ticks 1 .. steps are the steps
    assert row["messages"] == row["actions"] > 0  # one give per spontaneous action
    assert 0.0 < row["gini"] < 1.0
    assert row["build_s"] > 0 and row["run_s"] > 0 and row["peak_rss"] > 0


SPREAD = ROOT / "benchmarks" / "spread.py"


def test_spread_benchmark_quick(tmp_path: Path) -> None:
    """The rumour benchmark's pydiasca side: same counts and digest on 1 and 2 ranks."""
    from runtime.launch import find_mpiexec

    ranks = ["1", "2"] if find_mpiexec() else ["1"]  # 2 ranks need mpiexec (pip install mpich)
    out = tmp_path / "spread.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SPREAD),
            "--quick",
            "--no-peer",
            "--ranks",
            *ranks,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only: --quick takes a few seconds
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert [r["engine"] for r in runs] == ["pydiasca"] * len(ranks)
    assert [r["ranks"] for r in runs] == [int(n) for n in ranks]
    assert result["pydiasca_ranks_agree"] is True
    first = runs[0]
    assert sum(first["new_per_tick"]) > 5  # the rumour went beyond the 5 initial nodes
    for r in runs:
        assert r["status"] == "completed"
        assert r["new_per_tick"] == first["new_per_tick"]
        assert r["digest"] == first["digest"]
    assert "identical informed counts and results digest" in proc.stdout


def _run_script(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,  # a hang guard only: these sizes take seconds
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_costs_script_prints_every_operation() -> None:
    text = _run_script("costs.py", "--actors", "300", "--ticks", "5")
    lines = text.splitlines()[1:]
    assert len(lines) == 8, text
    for line in lines:
        label, figure = line.rsplit(maxsplit=1)
        assert label and figure.replace(",", "").lstrip("-").isdigit(), line


def test_profiles_script_profiles_every_workload() -> None:
    text = _run_script("profiles.py", "--quick", "--top", "3")
    for workload in ("phold", "soda", "spread", "wealth"):
        header = next(line for line in text.splitlines() if line.startswith(f"## {workload}:"))
        assert "function calls" in header
    assert text.count("ncalls") == 4


def test_checkpoint_costs_quick() -> None:
    """benchmarks/checkpoints.py runs and prints its three figures (and the digests agree)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "checkpoints.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for start in ("PHOLD actors 1,000:", "heat cells 4,096:", "PHOLD 1,000 LPs, 30 ticks:"):
        assert start in proc.stdout


def test_city_generate_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "city.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "city_generate.py"),
            "--scales",
            "tiny",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| tiny | 27 |" in proc.stdout and "islands repaired" in proc.stdout
    (run,) = json.loads(out.read_text())["tiny"]
    assert run["points"] == 27 and run["trucks"] == 5
