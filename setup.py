"""Build the optional C cores of the engine: the actors' random streams and the mail.

Everything else is in pyproject.toml. Without a C compiler the build goes on,
and engine.random and engine.mail fall back to their Python references, which
behave the same (the tests compare them).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("engine._stream", ["engine/_stream.c"], optional=True),
        Extension("engine._mail", ["engine/_mail.c"], optional=True),
    ]
)
