"""The rumour benchmark on Repast4Py: the peer side of ``spread.py``.

Runs with the Python of ``benchmarks/.venv-repast4py`` (never pydiasca's), as
one process or under that environment's ``mpiexec``; rank 0 prints one line,
``RESULT {json}``, in the form of ``spread.py``'s pydiasca worker.

The model, written with Repast4Py's documented API: a ``Person`` agent per
network node, in a ``SharedContext``; the network comes from a network
description file read by ``repast4py.network.read_network``, with the nodes
cut into R runs of consecutive nodes (``--partition block``, the default) or
node i on rank i mod R (``round-robin``); a repeating event at ticks 1, 2,
... of the shared schedule.

Each tick, every person who knows the rumour tells each neighbour who does
not with probability p. Ranks only change the state of their own agents, so
each rank handles the pairs whose listener is local: for every informed
person it can see (its own, or a ghost copy of another rank's), it draws once
per uninformed local neighbour. That is one draw per (informed, uninformed)
pair per tick, as on the pydiasca side. The new states reach the ghosts with
``context.synchronize`` at the end of the tick, so a person informed at tick t
spreads from tick t + 1 on, on every rank. Each rank draws from
``repast4py.random.default_rng`` seeded with seed + rank, so the counts depend
on the number of ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI
from repast4py import context, core, network, random, schedule

PERSON = 0  # the agent type of every node
NETWORK = "rumour"


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Person(core.Agent):
    """A network node; ``informed`` is the state its ghosts on other ranks mirror."""

    def __init__(self, nid: int, rank: int, informed: bool = False) -> None:
        super().__init__(id=nid, type=PERSON, rank=rank)
        self.informed = informed

    def save(self) -> tuple:
        return (self.uid, self.informed)

    def update(self, informed: bool) -> None:
        """A ghost's new state, sent by the agent's own rank at each synchronize."""
        self.informed = informed


def create_person(nid: int, agent_type: int, rank: int, **attributes) -> Person:
    return Person(nid, rank)


def restore_person(data: tuple) -> Person:
    (nid, _, rank), informed = data
    return Person(nid, rank, informed)


def write_network_file(npz: Path, path: Path, ranks: int, partition: str) -> None:
    """Repast4Py's network description: 'name 0', 'id type rank' lines, EDGES, 'u v' lines.

    ``block`` gives rank r the r-th run of consecutive nodes, so only the
    rewired edges cross ranks (the ring's neighbours are consecutive);
    ``round-robin`` puts node i on rank i mod R, so nearly every edge crosses.
    """
    with np.load(npz) as data:
        edges = data["edges"]
        n = len(data["indptr"]) - 1
    ids = np.arange(n)
    owner = ids * ranks // n if partition == "block" else ids % ranks
    with open(path, "w") as f:
        f.write(f"{NETWORK} 0\n")
        np.savetxt(f, np.stack([ids, np.zeros(n, dtype=int), owner], axis=1), fmt="%d")
        f.write("EDGES\n")
        np.savetxt(f, edges, fmt="%d")


class Rumour:
    """One rank's share of the model: its context, network and schedule."""

    def __init__(self, comm: MPI.Intracomm, network_file: Path, seeds: list[int], p: float):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.p = p
        self.context = context.SharedContext(comm)
        network.read_network(str(network_file), self.context, create_person, restore_person)
        self.net = self.context.get_projection(NETWORK)
        self.new_per_tick: list[int] = [0]
        self.tick_ends: list[float] = []  # perf_counter() at the end of each step
        self.last_active = 0  # the last tick at which this rank had a spreader
        self.draws = 0
        for nid in seeds:
            person = self.context.agent((nid, PERSON, self.rank))  # None: not on this rank
            if person is not None:
                person.informed = True
                self.new_per_tick[0] += 1
        self.context.synchronize(restore_person)
        # The informed people visible here that may still have uninformed local
        # neighbours, and the ghosts not yet known to be informed.
        self.spreaders = [a for a in self.net.graph.nodes if a.informed]
        self.watched = [a for a in self.net.graph.nodes if self._ghost(a) and not a.informed]

    def _ghost(self, agent: Person) -> bool:
        return agent.uid_rank != self.rank

    def step(self) -> None:
        """One tick: draw for every (informed, unaware local) pair, then update the ghosts.

        The new states are set only after all the draws, so that a person
        informed at this tick spreads from the next one, as on pydiasca's side.
        """
        rng, rank = random.default_rng, self.rank
        if self.spreaders:
            self.last_active = len(self.new_per_tick)
        told, keep = [], []
        for spreader in self.spreaders:
            listeners = [
                n
                for n in self.net.graph.neighbors(spreader)
                if not n.informed and n.uid_rank == rank
            ]
            if listeners:
                keep.append(spreader)
                self.draws += len(listeners)
                told.extend(n for n in listeners if rng.random() < self.p)
        new = 0
        for person in told:
            if not person.informed:  # two spreaders may tell the same person
                person.informed = True
                keep.append(person)
                new += 1
        self.new_per_tick.append(new)
        self.context.synchronize(restore_person)
        watched = []
        for ghost in self.watched:
            (keep if ghost.informed else watched).append(ghost)
        self.spreaders, self.watched = keep, watched
        self.tick_ends.append(time.perf_counter())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--network", type=Path, required=True, help="the .npz of spread.py")
    p.add_argument("--work", type=Path, required=True, help="folder for the network file")
    p.add_argument("--ticks", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--probability", type=float, required=True)
    p.add_argument("--partition", choices=("block", "round-robin"), default="block")
    args = p.parse_args()

    comm = MPI.COMM_WORLD
    rank, ranks = comm.Get_rank(), comm.Get_size()
    base = _rss_now()
    network_file = args.work / f"repast-network-{ranks}-{args.partition}.txt"
    if rank == 0:
        write_network_file(args.network, network_file, ranks, args.partition)
    with np.load(args.network) as data:
        seeds = data["seeds"].tolist()
    random.init(args.seed + rank)
    comm.Barrier()

    t0 = time.perf_counter()
    model = Rumour(comm, network_file, seeds, args.probability)
    runner = schedule.init_schedule_runner(comm)
    runner.schedule_repeating_event(1, 1, model.step)
    runner.schedule_stop(args.ticks)
    comm.Barrier()
    t1 = time.perf_counter()
    runner.execute()
    comm.Barrier()
    t2 = time.perf_counter()

    if len(model.new_per_tick) != args.ticks + 1:
        raise RuntimeError(f"{len(model.new_per_tick) - 1} steps ran, expected {args.ticks}")
    new_per_tick = comm.reduce(np.array(model.new_per_tick), op=MPI.SUM, root=0)
    draws = comm.reduce(model.draws, op=MPI.SUM, root=0)
    # Once no rank has a spreader, the ticks left only synchronize unchanged ghosts.
    active = comm.allreduce(model.last_active, op=MPI.MAX)
    peaks, bases = comm.gather(_rss_peak(), root=0), comm.gather(base, root=0)
    if rank == 0:
        result = {
            "engine": "repast4py",
            "ranks": ranks,
            "build_s": t1 - t0,
            "run_s": t2 - t1,
            "total_s": t2 - t0,
            "active_s": model.tick_ends[active - 1] - t1 if active else 0.0,
            "last_active_tick": active,
            "draws": int(draws),
            "last_tick": int(runner.tick()),
            "new_per_tick": new_per_tick.tolist(),
            "base_rss": bases,
            "peak_rss": peaks,
        }
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
