"""Sim-Diasca's City example, rebuilt: for now its generator (the models come next)."""

from .cityfile import FORMAT_VERSION, read_city, write_city
from .generate import City, generate_city
from .places import GenerationError
from .scales import KINDS, SCALES, CitySpec

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "SCALES",
    "City",
    "CitySpec",
    "GenerationError",
    "generate_city",
    "read_city",
    "write_city",
]
