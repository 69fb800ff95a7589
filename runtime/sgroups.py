"""s_groups: which group each rank is in, and which rank leads and gates each group.

Ranks ``0 .. size-1`` form consecutive groups of ``group_size`` ranks; the last
group may be shorter. A group's *leader* is its lowest rank: it collects its
members' consensus reports, and under ``s_group`` routing it is also the
group's *gateway*, the one rank that passes messages to and from other groups.
The *root* is rank 0, the leader of group 0.

This is the one place that says so. Placement, transport and run reports all
ask an ``SGroups``; nothing here touches MPI, so every process gets the same
answers from ``(size, group_size)`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Cross-group message routing: straight to the destination rank, or gateway to gateway.
ROUTINGS = ("direct", "s_group")

ROOT = 0


def groups_of(size: int, group_size: int) -> list[range]:
    """The s_groups of ``size`` ranks: runs of ``group_size``, the last one maybe shorter."""
    return list(SGroups(size, group_size).groups)


@dataclass(frozen=True)
class SGroups:
    """The s_group layout of ``size`` ranks; ``group_size`` above ``size`` means one group."""

    size: int
    group_size: int
    groups: tuple[range, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 1:
            raise ValueError(f"size must be a whole number >= 1; got {self.size!r}")
        if type(self.group_size) is not int or self.group_size < 1:
            raise ValueError(f"group_size must be a whole number >= 1; got {self.group_size!r}")
        object.__setattr__(self, "group_size", min(self.group_size, self.size))
        groups = tuple(
            range(start, min(start + self.group_size, self.size))
            for start in range(0, self.size, self.group_size)
        )
        object.__setattr__(self, "groups", groups)

    @classmethod
    def of(cls, size: int, group_size: int | None) -> SGroups:
        """``group_size`` None means one group of every rank."""
        return cls(size, size if group_size is None else group_size)

    @property
    def count(self) -> int:
        """The number of groups."""
        return len(self.groups)

    def group_of(self, rank: int) -> int:
        return rank // self.group_size

    def ranks_of(self, group: int) -> range:
        return self.groups[group]

    def leader_of(self, group: int) -> int:
        """The group's lowest rank: its consensus leader and, under s_group routing, gateway."""
        return group * self.group_size

    def gateway_of(self, group: int) -> int:
        """The rank through which the group's cross-group traffic passes (its leader)."""
        return self.leader_of(group)

    def is_leader(self, rank: int) -> bool:
        return rank % self.group_size == 0

    @property
    def leaders(self) -> list[int]:
        return [ranks.start for ranks in self.groups]

    def per_group(self, per_rank: list) -> list:
        """Sums of a per-rank list over each group's ranks."""
        return [sum(per_rank[r] for r in ranks) for ranks in self.groups]


__all__ = ["ROOT", "ROUTINGS", "SGroups", "groups_of"]
