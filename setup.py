"""Build the optional C core of the per-actor random streams (engine/_stream.c).

Everything else is in pyproject.toml. Without a C compiler the build goes on
and engine.random falls back to its Python streams, which give the same draws.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("engine._stream", ["engine/_stream.c"], optional=True)])
