"""A City scenario whose city does not match: one line naming the city and the fix, exit 2.

The check runs while the scenario loads (``check_scenario`` of the City
classes), so nothing runs and no run folder is made.
"""

from __future__ import annotations

import re
import subprocess
import sys

import h5py
import pytest
from conftest import ROOT

from models.city import generate_city, write_city
from models.city.scenario import scenario_text

FIX = "write the scenario again with python -m models.city.scenario"


@pytest.fixture(scope="module")
def cities(tmp_path_factory):
    """Two tiny cities of different seeds (72 and 71 roads) and a small one, and a scenario."""
    folder = tmp_path_factory.mktemp("cities")
    for name, scale, seed in (("a", "tiny", 2), ("b", "tiny", 5), ("s", "small", 2)):
        write_city(generate_city(scale, seed), folder / f"{name}.h5")
    (folder / "text.h5").write_text("not HDF5\n")
    with h5py.File(folder / "other.h5", "w") as f:
        f.attrs["format"] = "something else"
    return folder


def _run(cities, city: str, *, source: str | None = None, edit=None, ranks: int = 1):
    """Run a scenario written for city a.h5, pointed at ``city``; return (rc, stderr, out)."""
    text = scenario_text("tiny", city=str(source or cities / "a.h5"), districts=2)
    text = text.replace(str(cities / "a.h5"), str(cities / city))
    if edit is not None:
        text = edit(text)
    path = cities / "scenario.toml"
    path.write_text(text)
    out = cities / f"out-{city}-{ranks}"
    cmd = [sys.executable, "-m", "runtime.cli", "run", str(path), "--out", str(out)]
    if ranks > 1:
        cmd += ["--ranks", str(ranks)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    return done.returncode, done.stderr, out


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "scenario.toml: [[actors]]: " in lines[0]
    return lines[0]


CASES = {
    "another city of the same scale": ("b.h5", r"give 71 Road actors, .*b\.h5.* has 72 Road; "),
    "another scale": ("s.h5", r"s\.h5' \(small, seed 2\).* has 144 Incinerator, "),
    "a missing file": ("none.h5", r"none\.h5': no such file"),
    "a file that is not HDF5": ("text.h5", r"text\.h5: cannot read the city"),
    "an HDF5 file that is not a city": ("other.h5", r"other\.h5: not a city file"),
}


@pytest.mark.parametrize(("city", "pattern"), CASES.values(), ids=CASES.keys())
def test_a_mismatched_city_stops_before_the_run_with_one_line(cities, city, pattern) -> None:
    rc, stderr, out = _run(cities, city)
    line = _one_line(stderr)
    assert rc == 2
    assert re.search(pattern, line), line
    assert "python -m models.city.scenario" in line
    assert not out.exists()


def test_counts_edited_by_hand_are_named_with_the_fix(cities) -> None:
    rc, stderr, _ = _run(cities, "a.h5", edit=lambda t: t.replace("count = 1\n", "count = 2\n", 1))
    line = _one_line(stderr)
    assert rc == 2
    assert "the entries give 5 IndustrialWasteSource actors" in line
    assert f"{FIX} tiny --city {cities / 'a.h5'} --districts 2" in line


def test_entries_out_of_order_are_named(cities) -> None:
    def swap(text: str) -> str:
        head, first, second, *rest = text.split("[[actors]]")
        return "[[actors]]".join([head, second, first, *rest])

    rc, stderr, _ = _run(cities, "a.h5", edit=swap)
    line = _one_line(stderr)
    assert rc == 2
    assert "they are out of order" in line and FIX in line


def test_a_generated_city_of_other_districts_names_the_seed_to_write_again(cities) -> None:
    rc, stderr, _ = _run(
        cities, "a.h5", source="tiny:1", edit=lambda t: t.replace("districts = 2", "districts = 3")
    )
    line = _one_line(stderr)
    assert rc == 2
    assert f"{FIX} tiny --seed 1 --districts 3" in line


def test_on_two_ranks_the_line_is_said_once(cities) -> None:
    from test_distributed import MPIEXEC

    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich)")
    rc, stderr, out = _run(cities, "b.h5", ranks=2)
    line = _one_line(stderr)
    assert rc == 2 and "72 Road" in line
    assert not out.exists()
