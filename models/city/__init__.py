"""Sim-Diasca's City example, rebuilt: for now its generator (the models come next)."""

from ._places import GenerationError
from .cityfile import FORMAT_VERSION, CityFileError, read_city, write_city
from .generate import City, generate_city
from .scales import KINDS, SCALES, CitySpec

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "SCALES",
    "City",
    "CityFileError",
    "CitySpec",
    "GenerationError",
    "generate_city",
    "read_city",
    "write_city",
]
