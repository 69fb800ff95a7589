"""The load balancer: every policy, group-first spreading, determinism."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from runtime.placement import (
    POLICIES,
    GraphPlacement,
    class_weight,
    hint_key,
    make_placement,
    quotas_of,
)
from runtime.scenario import load_scenario
from runtime.sgroups import groups_of

MODEL = """
from engine import Actor


class Light(Actor):
    pass


class Heavy(Actor):
    weight = 10


class Node(Actor):
    def __init__(self, peers=(), hub=None):
        self.peers = list(peers)
        self.hub = hub


class Odd(Actor):
    weight = "not a number"
"""


@pytest.fixture
def scenario(tmp_path):
    """Load a scenario from TOML text, with model.py next to it."""
    (tmp_path / "model.py").write_text(MODEL)

    def load(text, name="s.toml", overrides=()):
        path = tmp_path / name
        path.write_text("[simulation]\n" + textwrap.dedent(text))
        return load_scenario(path, overrides)

    return load


def place_initial(placement, scenario):
    """Place the scenario's initial actors as the kernel does: AAI order, creator 0."""
    return [
        placement.place(aai, entry.cls, entry.hint, 0)
        for entry in scenario.actors
        for aai in range(entry.first_aai, entry.first_aai + entry.count)
    ]


def lights(count, hint=None):
    hint_line = f"hint = {json.dumps(hint)}\n" if hint is not None else ""
    return f'[[actors]]\nclass = "model.py:Light"\ncount = {count}\n{hint_line}'


def balanced(counts, total=None):
    """Every rank within 10% + 1 of the mean."""
    mean = (sum(counts) if total is None else total) / len(counts)
    return all(abs(c - mean) <= 0.1 * mean + 1 for c in counts)


def star(spokes):
    return f"""
        [[actors]]
        class = "model.py:Node"
        id = "hub"
        args = {{ peers = [{", ".join(f'"@spoke-{i}"' for i in range(spokes))}] }}

        [[actors]]
        class = "model.py:Node"
        id = "spoke"
        count = {spokes}
        args = {{ hub = "@hub" }}
        """


def ring_of_cliques(cliques, size):
    """Each clique: ``size`` actors all referencing each other; member 0 links the next one."""
    text = ""
    for q in range(cliques):
        members = ", ".join(f'"@c{q}-{i}"' for i in range(size))
        text += f'[[actors]]\nclass = "model.py:Node"\nid = "c{q}"\ncount = {size}\n'
        text += f"args = {{ peers = [{members}] }}\n"
        text += f'[[actors]]\nclass = "model.py:Node"\nargs = {{ peers = ["@c{q}-0"], '
        text += f'hub = "@c{(q + 1) % cliques}-0" }}\n'
    return text


def cut_and_links(scenario, ranks):
    """(links whose ends are on different ranks, all links) of the reference graph."""
    links = set()
    for entry in scenario.actors:
        for aai in range(entry.first_aai, entry.first_aai + entry.count):
            links.update((min(aai, r), max(aai, r)) for r in entry.refs if r != aai)
    cut = sum(ranks[a - 1] != ranks[b - 1] for a, b in links)
    return cut, len(links)


# --- groups ----------------------------------------------------------------------


def test_groups_of():
    assert groups_of(10, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    assert groups_of(8, 4) == [range(0, 4), range(4, 8)]
    assert groups_of(3, 8) == [range(0, 3)]
    assert groups_of(1, 1) == [range(0, 1)]
    assert groups_of(5, 1) == [range(r, r + 1) for r in range(5)]


@pytest.mark.parametrize("size, group_size", [(0, 1), (4, 0), (4, 1.5), (True, 1)])
def test_groups_of_refuses(size, group_size):
    with pytest.raises(ValueError):
        groups_of(size, group_size)


def test_unknown_policy():
    with pytest.raises(ValueError) as info:
        make_placement("metis", size=4, group_size=2)
    assert str(info.value) == (
        "unknown placement policy 'metis'; the policies: round_robin, hint, least_loaded, graph"
    )


def test_group_size_none_is_one_group():
    p = make_placement("round_robin", size=6, group_size=None)
    assert p.groups == [range(0, 6)]
    assert [p.place(a, object, None, 0) for a in range(1, 8)] == [0, 1, 2, 3, 4, 5, 0]


def test_quotas():
    assert quotas_of(10, [1, 1, 1]) == [3, 3, 4]
    assert quotas_of(10, [4, 4, 2]) == [4, 4, 2]
    assert quotas_of(2, [1, 1, 1, 1]) == [0, 1, 0, 1]
    assert sum(quotas_of(1001, [3, 3, 1])) == 1001


# --- every policy ------------------------------------------------------------------

LAYOUTS = [(1, 1), (4, 4), (4, 2), (6, 4), (8, 3), (12, 4), (7, 10)]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("size, group_size", LAYOUTS)
def test_every_policy_spreads_group_first(scenario, policy, size, group_size):
    s = scenario(
        lights(120)
        + '[[actors]]\nclass = "model.py:Heavy"\ncount = 12\n'
        + "".join(lights(4, hint=f"h{i}") for i in range(40))
        + star(20)
    )
    p = make_placement(policy, size=size, group_size=group_size, scenario=s)
    ranks = place_initial(p, s)
    assert len(ranks) == 120 + 12 + 160 + 21
    assert all(type(r) is int and 0 <= r < size for r in ranks)
    counts = p.actors_per_rank()
    assert counts == [ranks.count(r) for r in range(size)]
    assert sum(p.actors_per_group()) == len(ranks)
    assert p.actors_per_group() == [sum(counts[r] for r in g) for g in groups_of(size, group_size)]
    for group in p.groups:  # every rank of every group is used
        assert all(counts[r] > 0 for r in group)
    if policy in ("round_robin", "graph"):  # least_loaded balances weights; hint follows hints
        assert balanced(counts), counts


@pytest.mark.parametrize("policy", POLICIES)
def test_determinism(scenario, policy):
    """Two placement objects fed the same calls give the same answers."""
    s = scenario(lights(30) + star(10) + lights(6, hint="x") + ring_of_cliques(3, 5))
    answers = []
    for _ in range(2):
        p = make_placement(policy, size=5, group_size=2, scenario=s)
        ranks = place_initial(p, s)
        next_aai = len(ranks) + 1
        for creator in [1, 1, 2, 12, 12, 12, 40, next_aai, next_aai + 1] * 3:
            cls = s.actors[0].cls
            ranks.append(p.place(next_aai, cls, "x" if creator == 12 else None, creator))
            next_aai += 1
        answers.append((ranks, p.actors_per_rank(), list(p.loads), p.fingerprint()))
    assert answers[0] == answers[1]


# --- round_robin ----------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 8))
@pytest.mark.parametrize("group_size", [None, 7, 100])
def test_round_robin_with_one_group_is_the_modulo(size, group_size):
    p = make_placement("round_robin", size=size, group_size=group_size or size)
    assert [p.place(a, object, None, 0) for a in range(1, 50)] == [
        (a - 1) % size for a in range(1, 50)
    ]
    assert p.actors_per_group() == [49]


def test_round_robin_goes_round_the_groups_first():
    p = make_placement("round_robin", size=8, group_size=4)
    ranks = [p.place(a, object, None, 0) for a in range(1, 17)]
    assert ranks == [0, 4, 1, 5, 2, 6, 3, 7] * 2
    group_of = p.group_of_rank
    assert all(group_of[a] != group_of[b] for a, b in zip(ranks, ranks[1:], strict=False))
    assert p.actors_per_rank() == [2] * 8
    assert p.actors_per_group() == [8, 8]


def test_round_robin_with_a_short_last_group_stays_balanced():
    p = make_placement("round_robin", size=5, group_size=2)  # groups 0-1, 2-3, 4
    ranks = [p.place(a, object, None, 0) for a in range(1, 11)]
    assert ranks == [0, 2, 4, 1, 3] * 2
    assert p.actors_per_rank() == [2] * 5
    assert p.actors_per_group() == [4, 4, 2]


def test_round_robin_follows_the_aai_even_for_creations():
    p = make_placement("round_robin", size=3, group_size=3)
    assert [p.place(a, object, None, 1) for a in (7, 8, 9)] == [0, 1, 2]


# --- hint ----------------------------------------------------------------------

HINTS = ["depot", "north", "south", "", "é", 0, 1, 7, -3, 2**70, "1"]


def test_same_hint_same_rank(scenario):
    s = scenario("".join(lights(3, hint=h) + lights(2) for h in ["a", "b", "c", "a", 5, "b", 5]))
    p = make_placement("hint", size=6, group_size=2, scenario=s)
    ranks = place_initial(p, s)
    by_hint = {}
    for entry in s.actors:
        if entry.hint is not None:
            for aai in range(entry.first_aai, entry.first_aai + entry.count):
                by_hint.setdefault((type(entry.hint), entry.hint), set()).add(ranks[aai - 1])
    assert all(len(r) == 1 for r in by_hint.values())
    assert by_hint[(str, "a")] == {p.rank_of_hint("a")}


def test_hint_rank_does_not_depend_on_call_order():
    first = make_placement("hint", size=7, group_size=3)
    second = make_placement("hint", size=7, group_size=3)
    forward = {(type(h), h): first.place(i + 1, object, h, 0) for i, h in enumerate(HINTS)}
    for i in range(5):  # unhinted actors in between move the round robin, not the hints
        second.place(100 + i, object, None, 0)
    backward = {
        (type(h), h): second.place(i + 1, object, h, 0) for i, h in enumerate(reversed(HINTS))
    }
    assert forward == backward


def test_hint_rank_is_the_same_in_another_process():
    code = (
        "import json, sys\n"
        "from runtime.placement import make_placement\n"
        "hints = json.loads(sys.argv[1])\n"
        "p = make_placement('hint', size=13, group_size=4)\n"
        "print(json.dumps([p.rank_of_hint(h) for h in hints]))\n"
    )
    hints = [h for h in HINTS if isinstance(h, str) or abs(h) < 2**53] + [
        f"k{i}" for i in range(50)
    ]
    here = make_placement("hint", size=13, group_size=4)
    expected = [here.rank_of_hint(h) for h in hints]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(hints)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == expected


def test_hints_spread_over_groups_then_ranks():
    p = make_placement("hint", size=10, group_size=4)  # groups of 4, 4 and 2 ranks
    for i in range(4000):
        p.place(i + 1, object, f"hint-{i}", 0)
    # A hash spreads about evenly: the groups in proportion to their ranks, then the ranks.
    assert all(abs(c - 400) <= 60 for c in p.actors_per_rank()), p.actors_per_rank()
    per_group = p.actors_per_group()
    assert all(abs(c - e) <= 0.05 * e for c, e in zip(per_group, [1600, 1600, 800], strict=True))


def test_hint_keys_are_canonical():
    assert hint_key("1") != hint_key(1) != hint_key(True)
    assert hint_key(1) == hint_key(1) == b"i1"
    assert hint_key(("a", 1)) == hint_key(["a", 1])
    assert hint_key(("ab", "c")) != hint_key(("a", "bc"))
    with pytest.raises(TypeError, match="no stable encoding"):
        hint_key(object())


def test_unhinted_actors_go_round_robin_on_their_own_count():
    p = make_placement("hint", size=4, group_size=2)
    ranks = []
    for i in range(8):
        p.place(100 + 2 * i, object, "sticky", 0)
        ranks.append(p.place(101 + 2 * i, object, None, 0))
    assert ranks == [0, 2, 1, 3] * 2


# --- least_loaded ------------------------------------------------------------------


def weight_per_rank(scenario_, ranks, weights):
    totals = {}
    for entry in scenario_.actors:
        for aai in range(entry.first_aai, entry.first_aai + entry.count):
            totals[ranks[aai - 1]] = totals.get(ranks[aai - 1], 0) + weights[entry.cls]
    return totals


@pytest.mark.parametrize("size, group_size, spread", [(4, 4, 1), (5, 5, 1), (8, 2, 2), (7, 3, 2)])
def test_least_loaded_balances_weights(scenario, size, group_size, spread):
    s = scenario(
        '[[actors]]\nclass = "model.py:Heavy"\ncount = 7\n'
        + lights(50)
        + '[[actors]]\nclass = "model.py:Heavy"\ncount = 5\n'
        + lights(13)
    )
    heavy, light = s.actors[0].cls, s.actors[1].cls
    p = make_placement("least_loaded", size=size, group_size=group_size, scenario=s)
    ranks = place_initial(p, s)
    totals = weight_per_rank(s, ranks, {heavy: 10, light: 1})
    assert sorted(totals) == list(range(size))
    assert p.loads == [float(totals[r]) for r in range(size)]
    # One group: greedy keeps every rank within the heaviest weight of the others.
    # Groups first: the groups are within it, so ranks are within twice it.
    assert max(p.loads) - min(p.loads) <= spread * 10


def test_least_loaded_greedy_order():
    class Heavy:
        weight = 3

    p = make_placement("least_loaded", size=4, group_size=2)
    ranks = [p.place(a, cls, None, 0) for a, cls in enumerate([Heavy, object, object, object], 1)]
    # Heavy: group 0 (tie), rank 0; group 0 now weighs 1.5 per rank. The next three
    # go to group 1 (0, 0.5, then 1.0 per rank, all < 1.5): ranks 2, 3, then 2 (tie).
    assert ranks == [0, 2, 3, 2]
    assert p.loads == [3.0, 0.0, 2.0, 1.0]
    assert p.weights_per_group() == [3.0, 3.0]


def test_least_loaded_scenario_weights_win_over_class_weights(scenario):
    s = scenario(
        '[[actors]]\nclass = "model.py:Heavy"\ncount = 2\n'
        + lights(2)
        + '[placement]\npolicy = "least_loaded"\nweights = { "model.py:Light" = 4.5 }\n'
    )
    heavy, light = s.actors[0].cls, s.actors[1].cls
    assert class_weight(heavy, s.weights) == 10.0
    assert class_weight(light, s.weights) == 4.5
    assert class_weight(light) == 1.0
    p = make_placement(s.placement, size=2, group_size=1, scenario=s)
    assert place_initial(p, s) == [0, 1, 0, 1]
    assert p.loads == [14.5, 14.5]


def test_least_loaded_weighs_creations_too(scenario):
    s = scenario(lights(4))
    p = make_placement("least_loaded", size=2, group_size=2, scenario=s)
    place_initial(p, s)
    heavy = type("Big", (s.actors[0].cls,), {"weight": 6})
    assert p.place(5, heavy, None, 1) == 0
    assert [p.place(a, s.actors[0].cls, None, 1) for a in range(6, 12)] == [1] * 6
    assert p.loads == [8.0, 8.0]


def test_class_weight_rules(scenario):
    s = scenario('[[actors]]\nclass = "model.py:Odd"\n')
    assert class_weight(s.actors[0].cls) == 1.0  # not a number: not a placement weight
    bad = type("Bad", (), {"weight": 0})
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        class_weight(bad)
    assert class_weight(type("Flag", (), {"weight": True})) == 1.0


# --- graph ---------------------------------------------------------------------


@pytest.mark.parametrize("size, group_size", [(2, 2), (4, 2), (4, 4), (6, 3), (8, 4), (5, 2)])
def test_graph_keeps_cliques_together(scenario, size, group_size):
    s = scenario(ring_of_cliques(cliques=2 * size, size=8))
    p = make_placement("graph", size=size, group_size=group_size, scenario=s)
    ranks = place_initial(p, s)
    cut, links = cut_and_links(s, ranks)
    assert cut / links < 0.1, (cut, links)
    assert balanced(p.actors_per_rank()), p.actors_per_rank()
    for group in p.groups:
        assert all(p.actors_per_rank()[r] > 0 for r in group)
    # Far better than ignoring the graph:
    rr = make_placement("round_robin", size=size, group_size=group_size)
    assert cut * 4 < cut_and_links(s, place_initial(rr, s))[0]


def test_graph_star(scenario):
    """A hub with few spokes stays with them; with many, the spokes are balanced."""
    s = scenario(star(6) + lights(30))
    p = make_placement("graph", size=4, group_size=2, scenario=s)
    ranks = place_initial(p, s)
    assert len({ranks[i] for i in range(7)}) == 1  # hub and spokes on one rank
    assert balanced(p.actors_per_rank()), p.actors_per_rank()

    s = scenario(star(100), name="big.toml")
    p = make_placement("graph", size=4, group_size=2, scenario=s)
    ranks = place_initial(p, s)
    assert balanced(p.actors_per_rank()), p.actors_per_rank()
    with_hub = sum(r == ranks[0] for r in ranks[1:])
    assert with_hub >= 100 / 4 - 3


def test_graph_without_links_is_contiguous_blocks(scenario):
    s = scenario(lights(10) + '[[actors]]\nclass = "model.py:Heavy"\ncount = 4\n')
    p = make_placement("graph", size=4, group_size=2, scenario=s)
    assert place_initial(p, s) == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert p.actors_per_rank() == [3, 4, 3, 4]


def test_graph_on_one_rank(scenario):
    s = scenario(ring_of_cliques(3, 4))
    p = make_placement("graph", size=1, group_size=1, scenario=s)
    assert set(place_initial(p, s)) == {0}


def test_graph_smaller_than_the_ranks(scenario):
    s = scenario(star(2))
    p = make_placement("graph", size=8, group_size=3, scenario=s)
    ranks = place_initial(p, s)
    assert len(set(ranks)) == 3 and max(p.actors_per_rank()) == 1


def test_graph_without_scenario_goes_round_robin():
    p = make_placement("graph", size=3, group_size=3)
    assert [p.place(a, object, None, 0) for a in range(1, 7)] == [0, 1, 2, 0, 1, 2]


def test_graph_creations_stay_with_their_creator_until_it_is_overloaded(scenario):
    s = scenario(lights(16))  # no links: ranks 0-3 get 4 each
    p = make_placement("graph", size=4, group_size=2, scenario=s)
    assert place_initial(p, s) == [r for r in range(4) for _ in range(4)]
    ranks = [p.place(aai, object, None, 1) for aai in range(17, 25)]
    # Before each creation the limit is ceil(1.1 * total / 4): 5, 5, 5, 6, 6, 6, 7, 7.
    # Rank 0 (the creator's) takes it while it holds no more than that, else rank 1,
    # the least loaded of the creator's group, which is never over the limit here.
    assert ranks == [0, 0, 1, 0, 1, 1, 0, 1]
    assert p.actors_per_rank() == [8, 8, 4, 4]
    # Now the limit is 7 and the whole group holds 8 each: the least-loaded rank of all.
    assert p.place(25, object, None, 17) == 2
    # And that actor's own creations stay with it.
    assert p.place(26, object, None, 25) == 2
    assert p.actors_per_rank() == [8, 8, 6, 4]


def test_graph_creations_leave_a_full_group():
    p = make_placement("graph", size=4, group_size=2)
    for aai in range(1, 5):
        p.place(aai, object, None, 0)  # round robin: one per rank
    ranks = [p.place(aai, object, None, 1) for aai in range(5, 41)]
    assert ranks[0] == 0
    assert set(ranks) == {0, 1, 2, 3}  # group 0 filled up, then the others
    assert balanced(p.actors_per_rank())


def test_graph_creations_follow_their_creator(scenario):
    s = scenario(ring_of_cliques(4, 6))
    p = make_placement("graph", size=4, group_size=2, scenario=s)
    ranks = place_initial(p, s)
    for aai in range(len(ranks) + 1, len(ranks) + 5):  # few: no rank is overloaded
        creator = 1 + (aai * 7) % len(ranks)
        assert p.place(aai, object, None, creator) == ranks[creator - 1]


GRAPH_RUN = """
import json, sys
from runtime.placement import make_placement
from runtime.scenario import load_scenario
s = load_scenario(sys.argv[1])
p = make_placement("graph", size=int(sys.argv[2]), group_size=int(sys.argv[3]), scenario=s)
ranks = [p.place(a, e.cls, e.hint, 0) for e in s.actors
         for a in range(e.first_aai, e.first_aai + e.count)]
print(json.dumps([ranks, p.fingerprint()]))
"""


def test_graph_partition_is_the_same_in_another_process(scenario, tmp_path):
    """METIS runs with a fixed seed: every rank computes the same partition."""
    s = scenario(ring_of_cliques(12, 7) + star(30) + lights(20))
    for size, group_size in [(6, 3), (9, 4)]:
        p = make_placement("graph", size=size, group_size=group_size, scenario=s)
        here = [place_initial(p, s), p.fingerprint()]
        for seed in ("3", "4"):
            out = subprocess.run(
                [sys.executable, "-c", GRAPH_RUN, str(s.path), str(size), str(group_size)],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
            )
            assert json.loads(out.stdout) == here


def test_graph_partition_repeats_in_one_process(scenario):
    s = scenario(ring_of_cliques(10, 9) + star(40))
    first = GraphPlacement(size=7, group_size=3, scenario=s).initial
    assert all(GraphPlacement(size=7, group_size=3, scenario=s).initial == first for _ in range(5))
