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
  names any rank that stays silent for ``watchdog_s`` (the root waits on
  leaders 1.5 x that, so that a leader can name its silent member first). A
  rank waiting for the decision watches its parent in turn: no decision within
  2 x ``watchdog_s`` (2.5 x under a leader that waits on the root) names the
  silent leader or root. Every wait has a deadline (``runtime.polling``): a
  silent rank raises ``Silence`` on the rank that noticed it, which ends the job.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field

from mpi4py import MPI

from engine import Failure, Report

from .comm import bcast_object
from .polling import Backoff, Silence, wait_until
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
_STAGGER_S = 0.25  # each further rank waits this much longer for a decision


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
    backoff = Backoff(deadline)
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
        if not backoff.pause():
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
        begun = time.monotonic()
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
        in_group = self.group_comm.Get_size() > 1
        several = self.sgroups.count > 1
        if in_group:
            if self.is_leader:
                members = list(self.sgroups.ranks_of(self.group))
                parts = self._collect(self.group_comm, _TAG_REPORT, report, members)
                report = Report.merge(parts)
            else:
                self._send_up(self.group_comm, report, _TAG_REPORT, begun)
        if self.is_leader and several:
            if self.rank == ROOT:
                leaders = self.sgroups.leaders
                parts = self._collect(self.leaders_comm, _TAG_GROUP_REPORT, report, leaders)
                report = Report.merge(parts)
            else:
                self._send_up(self.leaders_comm, report, _TAG_GROUP_REPORT, begun)
        if self.rank == ROOT and any(f.handler in _WATCHDOG for f in report.failures):
            raise Silence(_silent_ranks(report.failures, self.watchdog_s))
        if self.is_leader and several:
            report = self._decision(self.leaders_comm, report, begun, 2.0)
        if in_group:
            # Under a leader that is not the root, the leader itself may wait 2 x on the root.
            factor = 2.0 if self.group == 0 else 2.5
            report = self._decision(self.group_comm, report, begun, factor)
        self.stats.consensus_s += time.perf_counter() - start
        return report

    def _parent(self, comm: MPI.Comm) -> int:
        """The world rank this rank waits on in ``comm``: its leader, or the root."""
        return ROOT if comm is self.leaders_comm else self.sgroups.leader_of(self.group)

    def _silent_parent(self, comm: MPI.Comm, waited: float, tick: int, diasca: int) -> str:
        parent = self._parent(comm)
        who = "the root" if parent == ROOT else f"leader of s_group {self.group}"
        return (
            f"watchdog: rank {parent} ({who}) sent no decision for tick {tick} diasca {diasca} "
            f"within {waited:g} s (noticed by rank {self.rank}); stopping the run"
        )

    def _send_up(self, comm: MPI.Comm, report: Report, tag: int, begun: float) -> None:
        """Send this rank's report to its parent, which must take it within 2 x watchdog_s."""
        limit = 2.0 * self.watchdog_s
        silence = self._silent_parent(comm, limit, report.tick, report.diasca)
        wait_until(comm.isend(report, 0, tag).Test, begun + limit, silence)

    def _decision(self, comm: MPI.Comm, report: Report, begun: float, factor: float) -> Report:
        """The parent's merged report. Higher ranks wait a little longer, so that one
        rank, not all, names a silent parent."""
        if comm.Get_rank() == 0:  # its members all reported: they are alive
            silence = f"watchdog: the decision for tick {report.tick} diasca {report.diasca} "
            silence += f"was not taken within {self.watchdog_s:g} s; stopping the run"
            return bcast_object(comm, report, time.monotonic() + self.watchdog_s, silence)
        limit = factor * self.watchdog_s + _STAGGER_S * min(self.rank - 1, 8)
        silence = self._silent_parent(comm, limit, report.tick, report.diasca)
        return bcast_object(comm, None, begun + limit, silence)

    def _collect(self, comm: MPI.Comm, tag: int, own: Report, world: list[int]) -> list[Report]:
        """Reports of every other rank of ``comm``; silent ranks become watchdog failures."""
        waiting = set(range(1, comm.Get_size()))
        parts = [own]
        status = MPI.Status()
        # The root waits a little longer than the leaders, so that a leader can
        # name its silent member before the root blames the leader.
        limit = self.watchdog_s * (1.5 if comm is self.leaders_comm else 1.0)
        backoff = Backoff(time.monotonic() + limit)
        while waiting:
            if comm.Iprobe(MPI.ANY_SOURCE, tag, status):
                source = status.Get_source()
                parts.append(comm.recv(source=source, tag=tag))
                waiting.discard(source)
                backoff.reset()
                continue
            if not backoff.pause():
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
        return [p if isinstance(p, Report) else Report(failures=[p]) for p in parts]

    # --- dense populations: see runtime/mpi_halo.py ----------------------------
    def halo_exchange(self, sends: list, recvs: list) -> None:
        from .mpi_halo import halo_exchange

        halo_exchange(self.comm, sends, recvs, time.monotonic() + self.watchdog_s)

    def allgather_arrays(self, array: object) -> list:
        from .mpi_halo import allgather_arrays

        return allgather_arrays(self.comm, array, time.monotonic() + self.watchdog_s)


def _silent_ranks(failures: list[Failure], watchdog_s: float) -> str:
    """The root's message when ranks went silent or an exchange stalled."""
    silent = [f for f in failures if f.handler == "watchdog"]
    stalled = [f for f in failures if f.handler == "exchange"]
    first = (silent or stalled)[0]
    if silent:
        what = f"rank(s) {', '.join(str(f.rank) for f in silent)} did not report"
    else:
        what = f"the message exchange stalled on rank(s) {', '.join(str(f.rank) for f in stalled)}"
    return (
        f"watchdog: {what} for tick {first.tick} diasca {first.diasca} within "
        f"{watchdog_s:g} s; stopping the run"
    )


def _dumps(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
