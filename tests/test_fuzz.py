"""Fuzzing in CI: mutants of every shipped scenario are refused in one line, or run cleanly.

A few hundred mutants are loaded in-process, through the checks the command
line uses; two dozen of them also run as real ``pydiasca run`` processes. The
larger run is ``python -m tests.fuzz --mutants 2000 --seed 1``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fuzz.check import SMALL, check_load, check_run
from tests.fuzz.mutate import dumps, mutants, scenario_files

SEED = 2026
LOADED = 800
RUNS = 32


def _write(tmp_path, index, mutant):
    folder = tmp_path / f"m{index}"
    folder.mkdir()
    path = folder / "scenario.toml"
    path.write_text(mutant.text, encoding="utf-8", errors="surrogatepass")
    return path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(index, mutant, path, outcome) of every mutant, loaded in this process."""
    tmp = tmp_path_factory.mktemp("fuzz")
    found = []
    for index, mutant in enumerate(mutants(SEED, LOADED)):
        path = _write(tmp, index, mutant)
        found.append((index, mutant, path, check_load(path)))
    return found


def test_the_mutator_is_seeded_and_covers_every_scenario():
    first = [m.text for m in mutants(SEED, 20)]
    assert first == [m.text for m in mutants(SEED, 20)]
    assert first != [m.text for m in mutants(SEED + 1, 20)]
    assert {m.source for m in mutants(SEED, 20)} == {p.name for p in scenario_files()}


def test_the_toml_writer_round_trips_the_shipped_scenarios():
    import tomllib

    for path in scenario_files():
        doc = tomllib.loads(path.read_text())
        assert tomllib.loads(dumps(doc)) == doc


def test_every_mutant_is_refused_in_one_line_or_accepted(loaded):
    defects = [f"{m.label}: {o.detail}" for _, m, _, o in loaded if o.kind == "defect"]
    assert not defects, "\n".join(defects[:5])
    kinds = {o.kind for *_, o in loaded}
    assert kinds == {"refused", "accepted"}  # the mutants reach both sides


def test_real_runs_of_mutants_keep_the_contract(loaded):
    """Refused ones exit 2 in one line with no folder; accepted ones complete or fail cleanly."""
    accepted = [item for item in loaded if item[3].kind == "accepted" and item[1].source in SMALL]
    refused = [item for item in loaded if item[3].kind == "refused"]
    chosen = accepted[: RUNS // 2] + refused[: RUNS - min(len(accepted), RUNS // 2)]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda item: check_run(item[2], timeout=120), chosen))
    problems = []
    for (_, mutant, _, before), after in zip(chosen, outcomes, strict=True):
        # a run may still refuse what loads (a population's own checks, memory), not the reverse
        if after.kind == "defect" or (before.kind == "refused" and after.kind != "refused"):
            problems.append(
                f"{mutant.label}: loaded {before.kind}, ran {after.kind}: {after.detail}"
            )
    assert not problems, "\n".join(problems)
    assert {o.kind for o in outcomes} >= {"refused", "ran"}
