"""Build the optional C cores of the engine: streams, mail, actor core, checkpoint columns.

Everything else is in pyproject.toml. Without a C compiler the build goes on,
and engine.random, engine.mail, engine.actor and engine._columns fall back to their Python
references, which behave the same (the tests compare them).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # No fused multiply-add: the draws must round as Python's arithmetic does.
        Extension(
            "engine._stream",
            ["engine/_stream.c"],
            depends=["engine/_buffers.h", "engine/_bind.h"],
            extra_compile_args=["-ffp-contract=off"],
            libraries=["m"],
            optional=True,
        ),
        Extension("engine._mail", ["engine/_mail.c"], optional=True),
        Extension(
            "engine._packing",
            ["engine/_packing.c"],
            depends=["engine/_buffers.h"],
            optional=True,
        ),
        Extension("engine._actor", ["engine/_actor.c"], depends=["engine/_bind.h"], optional=True),
    ]
)
