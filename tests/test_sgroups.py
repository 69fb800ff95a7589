"""s_groups and the communicator wrapper: the one home of each, checked alone and over MPI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

from runtime.comm import Comm
from runtime.launch import find_mpiexec
from runtime.placement import make_placement
from runtime.sgroups import SGroups, groups_of

LAYOUTS = [(1, 1), (4, 1), (4, 2), (5, 2), (7, 3), (8, 8), (3, 10)]


@pytest.mark.parametrize("size, group_size", LAYOUTS)
def test_every_rank_is_in_exactly_one_group_led_by_its_lowest_rank(size, group_size):
    sg = SGroups(size, group_size)
    assert [r for ranks in sg.groups for r in ranks] == list(range(size))
    assert sg.count == len(sg.groups) == -(-size // min(group_size, size))
    for rank in range(size):
        group = sg.group_of(rank)
        assert rank in sg.ranks_of(group)
        assert sg.is_leader(rank) == (rank == sg.leader_of(group))
    for g, ranks in enumerate(sg.groups):
        assert sg.leader_of(g) == sg.gateway_of(g) == ranks.start == sg.leaders[g]
        assert len(ranks) == min(group_size, size) or g == sg.count - 1  # only the last is short
    assert sg.leaders[0] == 0  # the root leads group 0


def test_one_group_of_every_rank_unless_told_otherwise():
    assert SGroups.of(6, None).groups == (range(0, 6),)
    assert SGroups.of(6, 2).groups == (range(0, 2), range(2, 4), range(4, 6))
    assert SGroups(3, 10).group_size == 3  # a group cannot be larger than the job


def test_per_group_sums_each_groups_ranks():
    assert SGroups(5, 2).per_group([1, 2, 3, 4, 5]) == [3, 7, 5]


@pytest.mark.parametrize("size, group_size", [(0, 1), (4, 0), (2.0, 1), (True, 1), (4, None)])
def test_bad_layouts_are_refused(size, group_size):
    with pytest.raises(ValueError):
        SGroups(size, group_size)


@pytest.mark.parametrize("policy", ["round_robin", "hint", "least_loaded", "graph"])
def test_placement_uses_the_same_groups(policy):
    p = make_placement(policy, size=7, group_size=3)
    assert p.groups == groups_of(7, 3) == list(SGroups(7, 3).groups)
    assert p.group_of_rank == [SGroups(7, 3).group_of(r) for r in range(7)]


def test_a_plain_process_is_a_world_of_one():
    c = Comm()
    assert (c.rank, c.size, c.mpi) == (0, 1, None)
    assert c.bcast("x") == "x" and c.gather(3) == [3] and c.allgather(4) == [4]
    a = np.array([1.0, 5.0])
    assert c.allreduce(a, "max") is a and c.reduce(a, "sum") is a
    parts = [np.arange(3)]
    assert c.alltoallv(parts) is parts
    c.barrier()
    c.abort(1)  # nothing to abort: a plain process goes on
    assert c.library == "none (single process)"


MPI_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from runtime.launch import world

    c = world()
    r, n = c.rank, c.size
    assert c.mpi is not None and n == 3
    assert c.bcast(f"from {r}") == "from 0"
    assert c.allgather(r * r) == [0, 1, 4]
    g = c.gather(r)
    assert g == ([0, 1, 2] if r == 0 else None), g
    assert c.allreduce(np.array([r, -r], np.int64), "max").tolist() == [2, 0]
    assert c.allreduce(np.array([r], np.int64), "min").tolist() == [0]
    s = c.reduce(np.array([1.5 * r]), "sum")
    assert (s.tolist() == [4.5]) if r == 0 else s is None
    # rank r sends [r] * (dest + 1) to each dest: dest gets [src] * (dest + 1) from each src
    got = c.alltoallv([np.full(d + 1, r, np.int64) for d in range(n)])
    assert [x.tolist() for x in got] == [[src] * (r + 1) for src in range(n)], got
    got = c.alltoallv([np.full(d, float(r)) for d in range(n)])
    assert [x.tolist() for x in got] == [[float(src)] * r for src in range(n)], got
    c.barrier()
    if r == 0:
        print("collectives ok", c.library != "")
    """
)


@pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec (pip install mpich)")
def test_the_collectives_over_three_ranks(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(MPI_SCRIPT)
    proc = subprocess.run(
        [find_mpiexec(), "-n", "3", sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "collectives ok True" in proc.stdout
