"""The soda model: vending machines, thirsty customers and a neighbourhood.

The classic first model of a tick/diasca engine, and pydiasca's tutorial
(docs/tutorial.md walks through it). Classes, as a scenario names them:

- ``models.soda:SodaMachine``: sells cans, answers orders, is restocked.
- ``models.soda:Customer``: gets thirsty at a fixed rate, buys, leaves when
  broke; ``models.soda:StochasticCustomer`` draws its thirst intervals.
- ``models.soda:Neighbourhood``: creates new customers while the simulation
  runs; ``models.soda:StochasticNeighbourhood`` does so at random.

Scenarios: ``scenarios/soda.toml`` (deterministic) and
``scenarios/soda-stochastic.toml``.
"""

from .customer import Customer, StochasticCustomer
from .machine import NOT_ENOUGH_MONEY, OUT_OF_STOCK, SodaMachine
from .neighbourhood import Neighbourhood, StochasticNeighbourhood

__all__ = [
    "NOT_ENOUGH_MONEY",
    "OUT_OF_STOCK",
    "Customer",
    "Neighbourhood",
    "SodaMachine",
    "StochasticCustomer",
    "StochasticNeighbourhood",
]
