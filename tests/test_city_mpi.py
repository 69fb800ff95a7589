"""City on 1 to 4 ranks: the results digest depends neither on the ranks nor on the placement."""

from __future__ import annotations

import pytest
from conftest import ROOT
from test_distributed import MPIEXEC, digest_of_run, pydiasca

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")

TINY = ROOT / "scenarios" / "city-tiny.toml"
STOP = "simulation.stop_tick=1440"  # 2 simulated hours


def _digest(ranks: int, policy: str, tmp_path) -> str:
    out = tmp_path / f"{policy}-{ranks}"
    args = ["run", str(TINY), "--set", STOP, "--set", f"placement.policy={policy}"]
    args += ["--set", "results.plots=false", "--out", str(out)]
    return digest_of_run(pydiasca(args, ranks=ranks))


def test_city_digest_is_the_same_on_1_to_4_ranks_for_two_policies(tmp_path) -> None:
    reference = _digest(1, "graph", tmp_path)
    for policy in ("graph", "hint"):
        for ranks in (2, 3, 4):
            assert _digest(ranks, policy, tmp_path) == reference, (policy, ranks)


def test_city_resumed_from_a_checkpoint_on_other_ranks_ends_with_the_same_digest(tmp_path) -> None:
    from test_checkpoint import resumes_match

    resumes_match(TINY, tmp_path, 1, 2, 300, "--stop-tick", "900", picks=[1])
