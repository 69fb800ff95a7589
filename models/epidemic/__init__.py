"""SEIR epidemic on a 2-D grid of cells, with health authorities and hospitals as actors."""

from .model import (
    EXPOSED,
    INFECTED,
    RECOVERED,
    SUSCEPTIBLE,
    EpidemicGrid,
    HealthAuthority,
    Hospital,
    seir_step,
)

__all__ = [
    "EXPOSED",
    "INFECTED",
    "RECOVERED",
    "SUSCEPTIBLE",
    "EpidemicGrid",
    "HealthAuthority",
    "Hospital",
    "seir_step",
]
