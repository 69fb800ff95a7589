"""Explicit heat diffusion on a 2-D plate, heated by source actors."""

from .model import HeatPlate, HeatSource, diffuse

__all__ = ["HeatPlate", "HeatSource", "diffuse"]
