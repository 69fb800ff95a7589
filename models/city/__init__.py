"""Sim-Diasca's City example, rebuilt: its generator, its models and its weather."""

from ._places import GenerationError
from .cityfile import FORMAT_VERSION, CityFileError, read_city, write_city
from .generate import City, generate_city
from .roads import Road, RoadJunction
from .scales import KINDS, SCALES, CitySpec
from .truck import WasteTruck
from .waste import (
    WASTE_TYPES,
    Incinerator,
    IndustrialWasteSource,
    Landfill,
    ResidentialWasteSource,
)
from .weather import Weather

__all__ = [
    "FORMAT_VERSION",
    "WASTE_TYPES",
    "Incinerator",
    "IndustrialWasteSource",
    "Landfill",
    "ResidentialWasteSource",
    "Road",
    "RoadJunction",
    "WasteTruck",
    "Weather",
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
