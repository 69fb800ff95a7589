"""Smoke test of benchmarks/city.py: it runs tiny and prints its row (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_city_benchmark_prints_a_row_for_tiny(tmp_path) -> None:
    out = tmp_path / "city.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/city.py", "--scales", "tiny", "--ranks", "1"]
        + ["--ticks", "60", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard only
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| tiny | 1 | 98 | 256 |" in proc.stdout
    (row,) = json.loads(out.read_text())
    assert row["actors"] == 98 and row["events"] > 0 and row["acceleration"] > 0
    assert row["activations_per_s"] > 0 and row["cells"] == 256
