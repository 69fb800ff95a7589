"""``pydiasca generate city``: write a generated city to an HDF5 file.

Bad input (an unknown scale, a seed that is not a whole number, an output that
cannot be written) is one line on stderr and exit code 2, checked before any
work; a city that cannot be generated is one line and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ._places import GenerationError
from .cityfile import write_city
from .generate import generate_city
from .scales import SCALES

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
DEFAULT_SEED = 1
_PLURALS = ("incinerators", "landfills", "industrial sources", "residential sources", "junctions")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {text}; see {self.prog} --help\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Generate a City (Sim-Diasca's waste-chain benchmark) into an HDF5 file.",
    )
    parser.add_argument(
        "--scale", required=True, choices=list(SCALES), metavar="|".join(SCALES), help="city size"
    )
    parser.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--out", metavar="FILE", help="output file (default city-<scale>.h5)")
    return parser


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written, or None."""
    folder = path.parent
    if path.is_dir():
        return f"{path} is a folder"
    if not folder.is_dir():
        return f"no folder {folder}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} exists and is not writable"
    return None


def main(argv: Sequence[str], prog: str = "pydiasca generate city") -> int:
    """Run the command; return its exit code."""
    args = _parser(prog).parse_args(list(argv))
    out = Path(args.out or f"city-{args.scale}.h5")
    problem = _unwritable(out.absolute())
    if problem:
        print(f"error: --out {out}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        city = generate_city(args.scale, args.seed)
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        write_city(city, out)
    except OSError as exc:
        print(f"error: --out {out}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_BAD_INPUT
    spec, stats = city.spec, city.stats
    counts = ", ".join(f"{n:,} {k}" for k, n in zip(_PLURALS, spec.counts(), strict=True))
    rows, cols = spec.weather_shape
    print(
        f"{out}: {spec.scale} ({spec.city}, {spec.area_km2:,.2f} km2), seed {args.seed}: "
        f"{counts}, {len(city.road_source):,} roads, {spec.trucks:,} trucks, "
        f"weather {rows:,} x {cols:,} cells"
    )
    print(
        f"islands repaired: {stats['islands_repaired']:,} "
        f"({stats['roads_added_for_islands']:,} roads added); "
        f"generated in {stats['generation_s']:.3f} s"
    )
    return 0
