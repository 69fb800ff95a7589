"""A run's performance figures: every rank's counts and placement, gathered on the root.

They go to results.h5's ``placement`` and ``performance`` records; the totals
(messages, spontaneous actions, deletions) come back to every rank for the
summary.
"""

from __future__ import annotations

from typing import Any

from engine import Kernel

from .comm import Comm
from .sgroups import ROOT, SGroups


def gather_figures(kernel: Kernel, sgroups: SGroups, comm: Comm) -> dict:
    """Every rank's counts at the root, and the run's totals back on every rank."""
    per_rank = comm.gather(_rank_figures(kernel))
    stats = kernel.stats
    report: dict[str, Any] = {}
    if comm.rank == ROOT:
        assert per_rank is not None
        report = _placement_report(per_rank, sgroups)
        for key in ("messages", "spontaneous", "deleted"):
            report[key] = sum(r[key] for r in per_rank)
    report = comm.bcast(report)
    stats.messages, stats.spontaneous = report["messages"], report["spontaneous"]
    stats.deleted = report["deleted"]
    return report


def _rank_figures(kernel: Kernel) -> dict[str, Any]:
    figures = {
        "actors": kernel.actor_count,
        "messages": kernel.stats.messages,
        "spontaneous": kernel.stats.spontaneous,
        "deleted": kernel.stats.deleted,
        "messages_out": 0,
        "cross_group": 0,
        "bytes_out": 0,
        "peers": 0,
        "exchange_s": 0.0,
        "consensus_s": 0.0,
    }
    ex = getattr(kernel.transport, "stats", None)
    if ex is not None:
        figures.update(
            messages_out=ex.messages_out,
            cross_group=ex.cross_group,
            bytes_out=ex.bytes_out,
            peers=len(ex.peers),
            exchange_s=ex.exchange_s,
            consensus_s=ex.consensus_s,
        )
    return figures


def _placement_report(per_rank: list[dict], sgroups: SGroups) -> dict[str, Any]:
    """Actors per rank and group, and how much traffic crossed ranks and groups."""
    per_rank_actors = [r["actors"] for r in per_rank]
    messages = sum(r["messages"] for r in per_rank)
    crossed = sum(r["messages_out"] for r in per_rank)
    crossed_groups = sum(r["cross_group"] for r in per_rank)
    return {
        "groups": sgroups.count,
        "actors_per_rank": per_rank_actors,
        "actors_per_group": sgroups.per_group(per_rank_actors),
        "cross_rank_fraction": crossed / messages if messages else 0.0,
        "cross_group_fraction": crossed_groups / messages if messages else 0.0,
        "per_rank": per_rank,
    }


__all__ = ["gather_figures"]
