"""The kernel's transport over MPI: s_groups, sparse exchange, hierarchical consensus.

The s_groups (see ``runtime.sgroups``) give each group a leader, which is also
its gateway; the root is rank 0. Per diasca the kernel makes two calls:

- ``exchange``: message batches, one pickle per destination. ``direct`` routing
  sends each batch straight to its rank. ``s_group`` routing sends inside the
  group directly and hands traffic for other groups to the gateway, which passes
  it to the destination group's gateway, which hands it out. Every step is a
  sparse exchange (synchronous sends, probing, then a non-blocking barrier), so
  its cost follows the peers a rank talks to, not the world size.
- ``agree``: rank reports go to the group leader, group reports to the root, and
  the merged report comes back down. A watchdog on the leaders and the root
  names any rank that stays silent for ``watchdog_s`` and aborts the job.
"""

from __future__ import annotations

import pickle
import sys
import time
from dataclasses import dataclass, field

from mpi4py import MPI

from engine import Failure, Report

from .polling import Backoff
from .sgroups import ROOT, ROUTINGS, SGroups

# Each exchange step has a tag of its own, and probes only for it: a fast rank
# may already be in the next step, or in the consensus, while a slow one probes.
_TAG_DIRECT = 11  # direct routing, world communicator
_TAG_STEP1 = 12  # s_group: inside the group (first byte: D = batch, B = bundle)
_TAG_STEP2 = 13  # s_group: gateway to gateway
_TAG_STEP3 = 14  # s_group: gateway to its members
_WATCHDOG = ("watchdog", "exchange")  # failures that mean a rank went silent
_TAG_REPORT = 21
_TAG_GROUP_REPORT = 22


@dataclass
class ExchangeStats:
    """What this rank's exchanges cost, for the placement and scaling reports."""

    messages_out: int = 0  # envelopes to other ranks
    cross_group: int = 0  # of which to ranks of other groups
    bytes_out: int = 0  # payload bytes this rank sent, forwarding included
    peers: set[int] = field(default_factory=set)  # world ranks it sent to
    exchange_s: float = 0.0
    consensus_s: float = 0.0


def _sparse_exchange(
    comm: MPI.Comm, outgoing: dict[int, bytes], tag: int, deadline: float
) -> list[bytes] | None:
    """Send each payload to its rank; return the payloads that arrive.

    Synchronous sends complete only once matched, so when a rank's sends are
    done it joins a non-blocking barrier; when the barrier completes, every
    payload of this round has been received everywhere. Returns None when the
    round has not completed by ``deadline``: some rank has gone silent.
    """
    requests = [comm.Issend([payload, MPI.BYTE], dest, tag) for dest, payload in outgoing.items()]
    received: list[bytes] = []
    status = MPI.Status()
    barrier = None
    backoff = Backoff()
    while True:
        if comm.Iprobe(MPI.ANY_SOURCE, tag, status):
            buf = bytearray(status.Get_count(MPI.BYTE))
            comm.Recv([buf, MPI.BYTE], status.Get_source(), tag)
            received.append(bytes(buf))
            backoff.reset()
            continue
        if barrier is None:
            if MPI.Request.Testall(requests):
                barrier = comm.Ibarrier()
        elif barrier.Test():
            return received
        backoff.pause()
        if time.monotonic() > deadline:
            return None


class MpiTransport:
    """Implements ``engine.Transport`` across the ranks of ``comm``."""

    def __init__(
        self,
        comm: MPI.Comm,
        *,
        sgroups: SGroups | None = None,
        routing: str = "direct",
        watchdog_s: float = 60.0,
    ) -> None:
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}; got {routing!r}")
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.sgroups = sgroups = sgroups or SGroups.of(self.size, None)
        if sgroups.size != self.size:
            raise ValueError(f"s_groups of {sgroups.size} ranks for a job of {self.size}")
        self.routing = routing
        self.watchdog_s = watchdog_s
        self.group = sgroups.group_of(self.rank)
        self.group_comm = comm.Split(self.group, self.rank)
        self.is_leader = sgroups.is_leader(self.rank)
        self.leaders_comm = comm.Split(0 if self.is_leader else MPI.UNDEFINED, self.rank)
        self.stats = ExchangeStats()
        self._stalled = False  # an exchange round timed out: the run is being stopped

    # --- exchange ---------------------------------------------------------
    def exchange(self, outgoing: dict[int, list]) -> list:
        start = time.perf_counter()
        st, group_of = self.stats, self.sgroups.group_of
        for dest, batch in outgoing.items():
            st.messages_out += len(batch)
            if group_of(dest) != self.group:
                st.cross_group += len(batch)
        if self.routing == "direct" or self.sgroups.count == 1:
            incoming = self._exchange_direct(outgoing)
        else:
            incoming = self._exchange_s_group(outgoing)
        st.exchange_s += time.perf_counter() - start
        return incoming

    def _exchange_direct(self, outgoing: dict[int, list]) -> list:
        payloads = {dest: _dumps(batch) for dest, batch in outgoing.items()}
        self._count_sent(payloads, 0)
        incoming: list = []
        for payload in self._sparse(self.comm, payloads, _TAG_DIRECT):
            incoming.extend(pickle.loads(payload))
        return incoming

    def _exchange_s_group(self, outgoing: dict[int, list]) -> list:
        sg = self.sgroups
        base = sg.leader_of(self.group)  # world rank of group-local rank 0
        mine: dict[int, list] = {}  # group-local rank -> envelopes
        foreign: dict[int, dict[int, list]] = {}  # dest group -> dest rank -> envelopes
        for dest, batch in outgoing.items():
            g = sg.group_of(dest)
            if g == self.group:
                mine[dest - base] = batch
            else:
                foreign.setdefault(g, {})[dest] = batch
        to_forward: dict[int, dict[int, list]] = {}
        if foreign and self.is_leader:
            to_forward = foreign
        # A step-1 payload is (envelopes for the receiver, bundle for it to forward).
        local = {d: _dumps((batch, None)) for d, batch in mine.items()}
        if foreign and not self.is_leader:  # the gateway is group-local rank 0
            local[0] = _dumps((mine.get(0, []), foreign))
        self._count_sent(local, base)
        incoming: list = []
        # Step 1: inside the group, direct batches and bundles for the gateway.
        for payload in self._sparse(self.group_comm, local, _TAG_STEP1):
            batch, bundle = pickle.loads(payload)
            incoming.extend(batch)
            for g, by_rank in (bundle or {}).items():
                dest_group = to_forward.setdefault(g, {})
                for dest, envelopes in by_rank.items():
                    dest_group.setdefault(dest, []).extend(envelopes)
        # Step 2: gateway to gateway, one bundle per destination group.
        arrived: dict[int, list] = {}
        if self.is_leader:
            bundles = {g: _dumps(by_rank) for g, by_rank in to_forward.items()}
            self._count_sent(bundles, None)
            for payload in self._sparse(self.leaders_comm, bundles, _TAG_STEP2):
                for dest, batch in pickle.loads(payload).items():
                    arrived.setdefault(dest, []).extend(batch)
        # Step 3: the gateway hands out what arrived for its group.
        handout = {}
        for dest, batch in arrived.items():
            if dest == self.rank:
                incoming.extend(batch)
            else:
                handout[dest - base] = _dumps(batch)
        self._count_sent(handout, base)
        for payload in self._sparse(self.group_comm, handout, _TAG_STEP3):
            incoming.extend(pickle.loads(payload))
        return incoming

    def _sparse(self, comm: MPI.Comm, payloads: dict[int, bytes], tag: int) -> list[bytes]:
        """A sparse exchange under the watchdog: a stalled round is reported, not awaited."""
        if self._stalled:
            return []
        got = _sparse_exchange(comm, payloads, tag, time.monotonic() + self.watchdog_s)
        if got is None:
            self._stalled = True
            return []
        return got

    def _count_sent(self, payloads: dict[int, bytes], base: int | None) -> None:
        """Count bytes and peers; ``base`` maps group-local ranks, None means gateways."""
        for dest, payload in payloads.items():
            self.stats.bytes_out += len(payload)
            self.stats.peers.add(self.sgroups.gateway_of(dest) if base is None else base + dest)

    # --- consensus ----------------------------------------------------------
    def agree(self, report: Report) -> Report:
        start = time.perf_counter()
        if self._stalled:  # this rank is a victim: the silent one is named below
            report.failures.append(
                Failure(
                    aai=0,
                    class_name="",
                    handler="exchange",
                    tick=report.tick,
                    diasca=report.diasca,
                    message=f"message exchange did not complete within {self.watchdog_s:g} s",
                    rank=self.rank,
                )
            )
        if self.group_comm.Get_size() > 1:
            if self.is_leader:
                members = list(self.sgroups.ranks_of(self.group))
                parts = self._collect(self.group_comm, _TAG_REPORT, report, members)
                report = Report.merge(parts)
            else:
                self.group_comm.send(report, 0, _TAG_REPORT)
        several = self.sgroups.count > 1
        if self.is_leader and several:
            if self.rank == ROOT:
                leaders = self.sgroups.leaders
                parts = self._collect(self.leaders_comm, _TAG_GROUP_REPORT, report, leaders)
                report = Report.merge(parts)
            else:
                self.leaders_comm.send(report, 0, _TAG_GROUP_REPORT)
        if self.rank == ROOT and any(f.handler in _WATCHDOG for f in report.failures):
            self._abort(report.failures)
        if self.is_leader and several:
            report = self.leaders_comm.bcast(report, 0)
        if self.group_comm.Get_size() > 1:
            report = self.group_comm.bcast(report, 0)
        self.stats.consensus_s += time.perf_counter() - start
        return report

    def _collect(self, comm: MPI.Comm, tag: int, own: Report, world: list[int]) -> list[Report]:
        """Reports of every other rank of ``comm``; silent ranks become watchdog failures."""
        waiting = set(range(1, comm.Get_size()))
        parts = [own]
        status = MPI.Status()
        # The root waits a little longer than the leaders, so that a leader can
        # name its silent member before the root blames the leader.
        limit = self.watchdog_s * (1.5 if comm is self.leaders_comm else 1.0)
        deadline = time.monotonic() + limit
        backoff = Backoff()
        while waiting:
            if comm.Iprobe(MPI.ANY_SOURCE, tag, status):
                source = status.Get_source()
                parts.append(comm.recv(source=source, tag=tag))
                waiting.discard(source)
                backoff.reset()
                continue
            if time.monotonic() > deadline:
                tick, diasca = own.tick, own.diasca
                for r in sorted(waiting):
                    parts.append(
                        Failure(
                            aai=0,
                            class_name="",
                            handler="watchdog",
                            tick=tick,
                            diasca=diasca,
                            message=f"rank {world[r]} sent no report within {limit:g} s",
                            rank=world[r],
                        )
                    )
                break
            backoff.pause()
        return [p if isinstance(p, Report) else Report(failures=[p]) for p in parts]

    def _abort(self, failures: list[Failure]) -> None:
        silent = [f for f in failures if f.handler == "watchdog"]
        stalled = [f for f in failures if f.handler == "exchange"]
        first = (silent or stalled)[0]
        if silent:
            what = f"rank(s) {', '.join(str(f.rank) for f in silent)} did not report"
        else:
            ranks = ", ".join(str(f.rank) for f in stalled)
            what = f"the message exchange stalled on rank(s) {ranks}"
        print(
            f"error: watchdog: {what} for tick {first.tick} diasca {first.diasca} within "
            f"{self.watchdog_s:g} s; stopping the run",
            file=sys.stderr,
            flush=True,
        )
        self.comm.Abort(3)

    # --- dense populations: see runtime/mpi_halo.py ----------------------------
    def halo_exchange(self, sends: list, recvs: list) -> None:
        from .mpi_halo import halo_exchange

        halo_exchange(self.comm, sends, recvs)

    def allgather_arrays(self, array: object) -> list:
        from .mpi_halo import allgather_arrays

        return allgather_arrays(self.comm, array)


def _dumps(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
