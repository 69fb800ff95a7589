"""Dense populations: homogeneous agents as NumPy fields updated by Numba kernels.

See docs/populations.md. ``rng`` holds the counter-based generators that
kernels call; ``partition`` the layout maths shared by every rank.
"""

from . import partition, rng
from .population import Aggregate, DensePopulation, Local, PopulationView

__all__ = ["Aggregate", "DensePopulation", "Local", "PopulationView", "partition", "rng"]
