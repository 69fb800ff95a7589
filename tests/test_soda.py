"""The soda model, run directly on the kernel (no runtime, no scenario loader).

The scenario files are read here with tomllib and a few lines of resolution
(ids, counts, "@id" references), independent of runtime's loader.
"""

from __future__ import annotations

import importlib
import inspect
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from engine import Actor, Kernel
from models.soda import (
    Customer,
    Neighbourhood,
    SodaMachine,
    StochasticCustomer,
    StochasticNeighbourhood,
)

ROOT = Path(__file__).resolve().parent.parent
SODA = ROOT / "scenarios" / "soda.toml"
STOCHASTIC = ROOT / "scenarios" / "soda-stochastic.toml"
SCENARIOS = [SODA, STOCHASTIC]


# --- helpers -------------------------------------------------------------------
def expand_ids(actors: list[dict]) -> dict[str, int]:
    """Scenario ids to AAIs: consecutive from 1, counted entries as id-0, id-1..."""
    ids: dict[str, int] = {}
    aai = 1
    for entry in actors:
        count = entry.get("count")
        names = [entry["id"]] if count is None else [f"{entry['id']}-{i}" for i in range(count)]
        for name in names:
            assert name not in ids, f"duplicate id {name}"
            ids[name] = aai
            aai += 1
    return ids


def resolve(value, ids: dict[str, int]):
    if isinstance(value, str) and value.startswith("@"):
        return ids[value[1:]]
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    return value


def load_class(spec: str) -> type:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def scenario_kernel(path: Path, **overrides) -> tuple[Kernel, dict[str, int], dict]:
    """A kernel holding the scenario's initial actors; ``overrides`` go to Kernel."""
    scenario = tomllib.loads(path.read_text())
    sim = scenario["simulation"]
    ids = expand_ids(scenario["actors"])
    options = dict(
        tick_duration=sim["tick_duration"],
        stop_tick=sim["stop_tick"],
        seed=sim["seed"],
        mode=sim.get("mode", "reproducible"),
    )
    options.update(overrides)
    k = Kernel(**options)
    for entry in scenario["actors"]:
        args = resolve(entry.get("args", {}), ids)
        k.add_actors(load_class(entry["class"]), entry.get("count", 1), **args)
    return k, ids, scenario


def probe(k: Kernel, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A probe's rows sorted by (tick, AAI), keeping each actor's record order."""
    if name not in k.probes.sink.chunks:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype=np.float64)
    ticks, aais, values = k.probes.sink.series(name)
    order = np.lexsort((aais, ticks))  # stable: equal (tick, aai) rows stay in order
    return ticks[order], aais[order], values[order]


def all_probes(k: Kernel) -> dict[str, tuple]:
    return {name: tuple(a.tolist() for a in probe(k, name)) for name in k.probes.names}


def last_by_actor(k: Kernel, name: str) -> dict[int, float]:
    _, aais, values = probe(k, name)
    return {int(a): float(v) for a, v in zip(aais, values, strict=True)}


def first_by_actor(k: Kernel, name: str) -> dict[int, float]:
    _, aais, values = probe(k, name)
    first: dict[int, float] = {}
    for a, v in zip(aais, values, strict=True):
        first.setdefault(int(a), float(v))
    return first


def run(path: Path, **overrides):
    k, ids, scenario = scenario_kernel(path, **overrides)
    stats = k.run()
    assert stats.status == "completed", [f.describe() for f in stats.failures]
    return k, ids, scenario, stats


# --- the scenarios as shipped -------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_classes_and_args_resolve(path: Path) -> None:
    scenario = tomllib.loads(path.read_text())
    assert {"simulation", "actors"} <= scenario.keys()
    ids = expand_ids(scenario["actors"])
    for entry in scenario["actors"]:
        cls = load_class(entry["class"])
        assert isinstance(cls, type) and issubclass(cls, Actor), entry["class"]
        args = entry.get("args", {})
        # Every argument is one the constructor takes, and none is missing.
        inspect.signature(cls).bind(**args)

        def refs(value):
            if isinstance(value, str) and value.startswith("@"):
                yield value[1:]
            elif isinstance(value, list):
                for v in value:
                    yield from refs(v)

        for value in args.values():
            for ref in refs(value):
                assert ref in ids, f"{path.name}: {entry['id']} refers to unknown id {ref!r}"


@pytest.mark.parametrize("path,limit", [(SODA, 1.0), (STOCHASTIC, 2.0)], ids=["soda", "stoch"])
def test_scenario_runs_fast_and_completes(path: Path, limit: float) -> None:
    start = time.perf_counter()
    k, _, scenario, stats = run(path)
    assert time.perf_counter() - start < limit
    assert stats.last_tick < scenario["simulation"]["stop_tick"]
    assert stats.created > 0 and stats.deleted > 0
    assert {"stock", "cans_sold", "revenue", "restocked", "thirst", "budget", "residents"} <= set(
        k.probes.names
    )


def test_deterministic_story() -> None:
    """The Quickstart scenario tells the same story every time (numbers checked by hand)."""
    k, ids, _, stats = run(SODA)
    assert (stats.created, stats.deleted) == (5, 8)  # 5 newcomers (1 turned away), all leave
    hood = k.actor(ids["neighbourhood"])
    assert (hood.arrived, hood.turned_away, hood.residents) == (6, 1, [])
    cans = last_by_actor(k, "cans_sold")
    assert cans == {ids["machine-0"]: 22.0, ids["machine-1"]: 18.0}
    # machine-0 ran empty at 30 s; its operator came 20 s later, and the
    # regular restock moved to every 60 s from then on.
    ticks, aais, _ = probe(k, "restocked")
    assert ticks[aais == ids["machine-0"]].tolist() == [5000, 11000, 17000, 23000, 29000]
    assert ticks[aais == ids["machine-1"]].tolist() == [6000, 12000, 18000, 24000]
    # alice and bob found machine-0 empty and came back every 5 s, thirstier.
    t_ticks, t_aais, thirst = probe(k, "thirst")
    bob = t_aais == ids["bob"]
    assert t_ticks[bob & (thirst > 10.5)].tolist() == [4250, 4750, 5250]
    assert thirst[bob & (thirst > 10.5)].tolist() == pytest.approx([14.0, 18.0, 22.0])
    # Everyone of the scenario left: bob and alice with 1.00, carol with 0.
    budgets = last_by_actor(k, "budget")
    people = [ids["alice"], ids["bob"], ids["carol"]]
    assert [budgets[a] for a in people] == [1.0, 1.0, 0.0]
    assert all(k.actor(a) is None for a in people)


# --- invariants, on both scenarios ------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_cans_are_conserved(path: Path) -> None:
    k, ids, scenario, _ = run(path)
    machines = [a for name, a in ids.items() if name.startswith("machine-")]
    first_stock, last_stock = first_by_actor(k, "stock"), last_by_actor(k, "stock")
    sold = last_by_actor(k, "cans_sold")
    _, r_aais, r_values = probe(k, "restocked")
    for m in machines:
        restocked = r_values[r_aais == m].sum()
        assert last_stock[m] + sold[m] == first_stock[m] + restocked
        machine = k.actor(m)  # machines never leave: their state is still there
        assert (machine.stock, machine.cans_sold, machine.restocked) == (
            last_stock[m],
            sold[m],
            restocked,
        )
    _, _, stock = probe(k, "stock")
    assert stock.min() >= 0
    assert stock.max() <= max(k.actor(m).capacity for m in machines)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_machines_and_customers_agree_on_cans_and_money(path: Path) -> None:
    k, ids, _, _ = run(path)
    machines = {a for name, a in ids.items() if name.startswith("machine-")}
    _, b_aais, budgets = probe(k, "budget")
    assert budgets.min() >= 0.0
    purchases, spent = 0, 0.0
    for a in np.unique(b_aais):
        series = budgets[b_aais == a]
        assert np.all(np.diff(series) < 0), "a budget only goes down, one can at a time"
        purchases += len(series) - 1  # the first row is the starting budget
        spent += series[0] - series[-1]
    assert purchases == sum(k.actor(m).cans_sold for m in machines)
    assert spent == pytest.approx(sum(k.actor(m).revenue for m in machines))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_customers_who_cannot_pay_leave(path: Path) -> None:
    k, ids, _, stats = run(path)
    machines = {a for name, a in ids.items() if name.startswith("machine-")}
    cheapest = min(k.actor(m).price for m in machines)
    final = last_by_actor(k, "budget")
    gone = {a for a in final if k.actor(a) is None}
    assert len(gone) == stats.deleted > 0
    assert all(k.actor(m) is not None for m in machines)
    broke = {a for a, b in final.items() if b < cheapest}
    assert broke & gone
    # A broke customer learns it at its next order ("not_enough_money") and
    # leaves then; one still here has not ordered since its last purchase.
    b_ticks, b_aais, _ = probe(k, "budget")
    t_ticks, t_aais, thirst = probe(k, "thirst")
    for a in broke - gone:
        last_order = t_ticks[(t_aais == a) & (thirst > 0)][-1]
        assert last_order == b_ticks[b_aais == a][-1]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_created_customers_buy_and_are_counted(path: Path) -> None:
    k, ids, _, stats = run(path)
    hood = k.actor(ids["neighbourhood"])
    initial = len(ids)
    created = sorted(a for a in last_by_actor(k, "budget") if a > initial)
    # Runtime AAIs follow the initial ones, without gaps.
    assert created == list(range(initial + 1, initial + 1 + stats.created))
    assert stats.created == hood.arrived - hood.turned_away > 0
    b_ticks, b_aais, _ = probe(k, "budget")
    buyers = {int(a) for a in b_aais[b_aais > initial]}
    bought = [a for a in created if (b_aais == a).sum() > 1]
    assert len(bought) >= len(created) // 2 and buyers == set(created)
    # A newcomer first records at the tick of its arrival (creation + 1 diasca).
    assert b_ticks[b_aais == created[0]][0] > 0
    # The residents probe follows creations and departures, within capacity.
    _, _, residents = probe(k, "residents")
    assert residents.max() <= hood.capacity
    assert residents[-1] == len(hood.residents)


# --- reproducibility --------------------------------------------------------------
def test_deterministic_variant_ignores_the_seed() -> None:
    a = all_probes(run(SODA, seed=1)[0])
    b = all_probes(run(SODA, seed=2)[0])
    assert a == b


def test_stochastic_same_seed_same_probes_other_seed_other_probes() -> None:
    a = all_probes(run(STOCHASTIC, seed=7)[0])
    b = all_probes(run(STOCHASTIC, seed=7)[0])
    c = all_probes(run(STOCHASTIC, seed=8)[0])
    assert a == b
    assert a != c
    assert a["budget"] != c["budget"] and a["stock"] != c["stock"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_order_of_actors_within_a_diasca_changes_nothing(path: Path) -> None:
    reference = all_probes(run(path)[0])
    for order_seed in (1, 2, 3):
        assert all_probes(run(path, run_order_seed=order_seed)[0]) == reference


def test_ergodic_mode_is_replayable() -> None:
    a = all_probes(run(STOCHASTIC, mode="ergodic", seed=5)[0])
    b = all_probes(run(STOCHASTIC, mode="ergodic", seed=5, run_order_seed=4)[0])
    assert a == b


# --- edge cases, on small hand-made setups ----------------------------------------
def test_out_of_stock_patience_and_early_stop() -> None:
    k = Kernel(tick_duration=0.01, stop_tick=100_000, seed=1)
    (m,) = k.add_actors(SodaMachine, stock=1, price=1.5)  # never restocked
    first, second = k.add_actors(Customer, 2, machine=m, budget=10.0, patience=3)
    stats = k.run()
    assert stats.status == "completed"
    # Both ordered at tick 1000 (10 s); canonical order served the lower AAI.
    ticks, aais, budgets = probe(k, "budget")
    assert budgets[aais == first].tolist() == [10.0, 8.5]
    assert budgets[aais == second].tolist() == [10.0]
    assert ticks[aais == first][-1] == 1000
    # The second retried every 5 s and gave up on the 3rd empty answer; the
    # first got thirsty again at 20 s and gave up at 30 s. Then nothing was
    # planned, so the run ended long before stop_tick.
    t_ticks, t_aais, thirst = probe(k, "thirst")
    assert t_ticks[(t_aais == second) & (thirst > 0)].tolist() == [1000, 1500, 2000]
    assert thirst[t_aais == second].tolist() == pytest.approx([0.0, 10.0, 15.0, 20.0])
    assert t_ticks[(t_aais == first) & (thirst > 0)].tolist() == [1000, 2000, 2500, 3000]
    assert stats.deleted == 2 and stats.last_tick == 3000
    assert k.actor(first) is None and k.actor(second) is None
    assert k.actor(m).stock == 0


def test_not_enough_money_leaves_at_once_and_zero_budget_never_orders() -> None:
    k = Kernel(tick_duration=0.01, stop_tick=100_000, seed=1)
    (m,) = k.add_actors(SodaMachine, stock=5, price=1.5)
    (poor,) = k.add_actors(Customer, 1, machine=m, budget=1.0)
    (broke,) = k.add_actors(Customer, 1, machine=m, budget=0.0)
    stats = k.run()
    assert stats.status == "completed" and stats.deleted == 2
    assert stats.last_tick == 1000  # the poor customer's only order
    assert k.actor(m).stock == 5 and k.actor(m).cans_sold == 0
    ticks, aais, budgets = probe(k, "budget")
    assert budgets[aais == poor].tolist() == [1.0]
    t_ticks, t_aais, _ = probe(k, "thirst")
    assert t_ticks[t_aais == broke].tolist() == [0]  # left at (0, 0)


def test_restock_refills_to_capacity_and_alert_moves_the_restock() -> None:
    k = Kernel(tick_duration=0.01, stop_tick=30_000, seed=1)
    (m,) = k.add_actors(
        SodaMachine, stock=2, capacity=4, price=1.0, restock_period=100.0, alert_delay=30.0
    )
    (c,) = k.add_actors(Customer, machine=m, budget=10.0, thirst_rate=1.0, thirst_threshold=10.0)
    stats = k.run()
    assert stats.status == "completed"
    # Empty at 20 s: the operator comes at 50 s instead of 100 s. Empty again
    # at 80 s and 140 s (the customer's 10th and last can): restocks move to
    # 110 s and 170 s. Nobody buys after that: the next is 100 s later.
    r_ticks, _, added = probe(k, "restocked")
    assert r_ticks.tolist() == [5000, 11000, 17000, 27000]
    assert added.tolist() == [4.0, 4.0, 4.0, 0.0]
    s_ticks, _, stock = probe(k, "stock")
    for tick in r_ticks:
        assert stock[s_ticks == tick][0] == 4  # first record of a restock tick: full
    assert stock.min() == 0 and stock.max() == 4
    assert k.actor(c) is None and k.actor(m).cans_sold == 10


def test_runtime_customers_get_aais_in_creation_order_and_leave_cleanly() -> None:
    k = Kernel(tick_duration=0.1, stop_tick=50_000, seed=3)
    machines = k.add_actors(SodaMachine, 2, stock=50, price=2.0, restock_period=60.0)
    (hood,) = k.add_actors(
        Neighbourhood, machines=list(machines), arrivals=4, arrival_period=10.0, budget=4.0
    )
    stats = k.run()
    assert stats.status == "completed"
    assert stats.created == 4 and stats.deleted == 4  # each bought 2 cans, then had 0
    assert k.actor(hood).residents == []
    _, aais, budgets = probe(k, "budget")
    assert sorted(set(aais.tolist())) == [4, 5, 6, 7]
    assert budgets.min() == 0.0
    # Newcomers alternate between the machines.
    assert [k.actor(m).cans_sold for m in machines] == [4, 4]


def test_stochastic_classes_draw_from_their_own_generator() -> None:
    def once(seed: int) -> list:
        k = Kernel(tick_duration=0.01, stop_tick=200_000, seed=seed)
        machines = k.add_actors(SodaMachine, 2, stock=10, price=1.0, restock_period=120.0)
        k.add_actors(StochasticCustomer, 3, machine=machines[0], budget=5.0)
        k.add_actors(
            StochasticNeighbourhood, machines=list(machines), arrivals=5, arrival_period=30.0
        )
        assert k.run().status == "completed"
        return [all_probes(k)["budget"], all_probes(k)["thirst"]]

    assert once(11) == once(11)
    assert once(11) != once(12)


@pytest.mark.parametrize(
    "cls,args,needle",
    [
        (SodaMachine, {"stock": 5, "price": 0.0}, "price"),
        (SodaMachine, {"stock": 5, "capacity": 3, "price": 1.0}, "capacity"),
        (SodaMachine, {"stock": 5, "price": 1.0, "restock_period": 0.004}, "limit 1.5%"),
        (Customer, {"machine": 1, "budget": -1.0}, "budget"),
    ],
)
def test_bad_arguments_stop_the_run_with_a_clear_failure(cls, args, needle) -> None:
    k = Kernel(tick_duration=0.01, stop_tick=1000, seed=1)
    k.add_actors(cls, **args)
    stats = k.run()
    assert stats.status == "failed"
    (failure,) = stats.failures
    assert (failure.aai, failure.class_name, failure.handler) == (1, cls.__name__, "__init__")
    assert (failure.tick, failure.diasca) == (0, 0)
    assert needle in failure.message
