"""Words and numbers for people: durations, time axes, and the run summary.

The CLI prints the summary; the runner writes the same text into ``run.log``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .digest import digest_line

if TYPE_CHECKING:
    from .runner import RunOutcome

# Time units for display, largest first: (name, seconds). Every display follows
# one rule (``time_unit``): a unit is used from two of it on.
_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0))


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit in which to show ``span_s`` seconds: (name, seconds per unit).

    Seconds below 2 min, minutes below 2 h, hours below 2 days, then days; so
    an axis never shows more than a few hundred of its unit, nor less than two.
    """
    for unit, size in _UNITS:
        if span_s >= 2 * size:
            return unit, size
    return "s", 1.0


def format_seconds(s: float) -> str:
    """A duration as people read it: "42.5 s", "3.50 min", "2.25 d" (units of ``time_unit``)."""
    unit, size = time_unit(s)
    if unit == "s":
        return f"{s:.3g} s"
    return f"{s / size:.2f} {unit}"


def summary(outcome: RunOutcome, tick_duration: float) -> str:
    """The run summary; its last line is ``results digest: <64 hex digits>``, or for a
    failed or interrupted run ``partial results digest (failed at tick T): ...``."""
    s = outcome.stats
    rate = s.messages / s.wall_s if s.wall_s > 0 else 0.0
    lines = [
        f"run {outcome.status}: {outcome.run_dir.name}",
        f"  ticks evaluated   {s.ticks:,} (last tick {s.last_tick:,}, "
        f"{format_seconds(s.last_tick * tick_duration)} simulated)",
        f"  diascas           {s.diascas:,}",
        f"  messages          {s.messages:,} processed",
        f"  spontaneous       {s.spontaneous:,} actions",
        f"  actors            {outcome.initial_actors:,} initial, {s.created:,} created, "
        f"{s.deleted:,} deleted",
        f"  wall time         {s.wall_s:.3f} s, {rate:,.0f} messages/s",
        f"  mode              {outcome.mode}, seed {outcome.seed}",
        *placement_lines(outcome),
        f"  load imbalance    {outcome.imbalance:.2f} (busiest over mean rank kernel time "
        f"per tick, time-weighted)",
        f"  communication     {outcome.communication:.1%} of rank time in exchange and consensus",
        f"  probes            {outcome.probes:,} probe(s), {outcome.rows:,} rows"
        + (f", {len(outcome.plots)} plot(s)" if outcome.plots else ""),
        f"  results folder    {outcome.run_dir}",
        *family_lines(outcome.digest_family),
        digest_line(outcome.digest, outcome.status, s.last_tick),
    ]
    return "\n".join(lines)


def family_lines(family: str) -> list[str]:
    """A digest that holds only on some backends says so just above it (docs/results.md)."""
    if family == "portable":
        return []
    return [f"  digest family     {family}: compare with runs of the same family only"]


def placement_lines(outcome: RunOutcome) -> list[str]:
    r = outcome.report
    if outcome.ranks == 1 or not r:
        return []
    per_rank = r["per_rank"]
    peers = max(p["peers"] for p in per_rank)
    return [
        f"  ranks             {outcome.ranks} in {r['groups']} group(s); "
        f"actors per rank {r['actors_per_rank']}",
        f"  actors per group  {r['actors_per_group']}",
        f"  crossing          {r['cross_rank_fraction']:.1%} of messages crossed ranks, "
        f"{r['cross_group_fraction']:.1%} crossed groups; at most {peers} peer(s) per rank",
    ]
