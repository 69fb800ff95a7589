"""Random actor programs, shared by the property test and the multi-rank tests."""

from __future__ import annotations

from engine import Actor

# Children per actor. Without a cap a program can be explosive: each poke may
# create a child, whose first action pokes again, so the actors of one tick grow
# without bound (some random programs ran for hours).
MAX_CHILDREN = 2


class Wanderer(Actor):
    """An actor whose every choice comes from its own generator.

    It only messages its contacts. Contacts are symmetric and an actor says
    goodbye to all of them before it terminates, so no message can reach a
    deleted actor whatever the program does.
    """

    def __init__(self, contacts: list, p: dict, generation: int = 0, parent: int = 0) -> None:
        self.contacts = [c for c in contacts if c != self.aai]
        self.p = p
        self.generation = generation
        self.children = 0  # at most MAX_CHILDREN: a creation may follow every poke
        self.gone = False
        if parent:
            self.contacts.append(parent)

    def _act(self, why: str, sender: int, ttl: int) -> None:
        if self.gone:
            return
        rng, p = self.random, self.p
        self.record("seen", [self.tick, self.diasca, sender, ttl, len(self.contacts)])
        self.record(f"draw_{why}", rng.random())
        if ttl > 0 and self.contacts:
            for _ in range(rng.integers(0, p["fanout"] + 1)):
                self.send(rng.choice(self.contacts), "poke", ttl - 1)
        if rng.random() < p["plan"]:
            self.add_spontaneous_tick(self.tick + 1 + rng.integers(0, 4))
        if self.generation < 2 and self.children < MAX_CHILDREN and rng.random() < p["create"]:
            self.children += 1
            self.create_actor(
                Wanderer,
                tag=self.tick,
                contacts=[],
                p=p,
                generation=self.generation + 1,
                parent=self.aai,
            )
        if self.generation > 0 and rng.random() < p["leave"]:
            self.gone = True
            for c in self.contacts:
                self.send(c, "bye")
            self.declare_termination()

    def on_first_diasca(self) -> None:
        self._act("first", 0, self.p["ttl"])

    def act_spontaneous(self) -> None:
        self._act("spontaneous", 0, self.p["ttl"])

    def on_actor_created(self, aai: int, tag: int) -> None:
        self.record("child", [aai, tag])
        if self.gone:  # the child knows its parent: tell it the parent is leaving
            self.send(aai, "bye")
        else:
            self.contacts.append(aai)

    def poke(self, sender: int, ttl: int) -> None:
        self._act("poke", sender, ttl)

    def bye(self, sender: int) -> None:
        if sender in self.contacts:
            self.contacts.remove(sender)
        self.record("bye", sender)
