"""A network population for the multi-rank tests: SIS on generated contact lists.

Agents are people; each has a ring of neighbours plus shortcuts derived from a
stable hash of its number, generated row range by row range (``edges``) so no
rank holds the whole graph. A ``Seeder`` actor infects agents that may live on
any rank and watches one of them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine import Actor, DensePopulation
from engine.dense import rng
from engine.random import mix64


@njit(cache=True)
def sis_step(src, dst, tick, key, block, indptr, indices, beta, gamma):
    (s,) = src
    (out,) = dst
    ox = block[1]
    tk = rng.tick_key(key, tick)
    for i in range(indptr.shape[0] - 1):
        ck = rng.cell_key(tk, ox + i)
        if s[i]:
            out[i] = 0 if rng.bernoulli(ck, 0, gamma) else 1
        else:
            k = 0
            for e in range(indptr[i], indptr[i + 1]):
                k += s[indices[e]]
            out[i] = 1 if rng.uniform(ck, 0) < 1.0 - (1.0 - beta) ** k else 0


class Contacts(DensePopulation):
    fields = {"s": np.int8}
    categories = {"s": 2}
    kernel = staticmethod(sis_step)
    regions = 4

    def __init__(self, people: int, shortcuts: int = 2, beta: float = 0.1, gamma: float = 0.1):
        self.shape = people
        self.shortcuts, self.beta, self.gamma = shortcuts, beta, gamma

    def edges(self, lo, hi):
        n = self.shape
        rows = []
        for i in range(lo, hi):
            far = {mix64(i * 31 + j) % n for j in range(self.shortcuts)}
            rows.append(sorted(({(i - 1) % n, (i + 1) % n} | far) - {i}))
        indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
        return indptr, np.array([j for r in rows for j in r], dtype=np.int64)

    def kernel_args(self):
        return (self.beta, self.gamma)


class Seeder(Actor):
    def __init__(self, agents, every=5):
        self.agents, self.every = agents, every

    def on_first_diasca(self):
        self.population("contacts").watch("s", self.agents[-1])
        self.schedule_in(1)

    def act_spontaneous(self):
        pop = self.population("contacts")
        self.record("watched", pop.value("s", self.agents[-1]))
        self.record("infected_seen", int(pop.counts("s")[1]))
        if self.tick % self.every == 1:
            for a in self.agents:
                pop.post_set("s", a, 1)
        self.schedule_in(1)
