"""Write the scenario files of a City: ``python -m models.city.scenario SCALE [options]``.

A scenario's ``[[actors]]`` entries must count the city's actors exactly, so
they are written from the city itself: one entry per district and class, in the
layout's order (``models.city._layout``), each with the district as its
placement hint. Every actor reads its own data from the city (generated on
every rank from "scale:seed", or read from a file) by its AAI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._layout import CLASSES, layout
from .scales import SCALES

DEFAULT_DISTRICTS = {"tiny": 2, "small": 4, "medium": 4, "large": 4, "huge": 4}
DURATIONS = {"brief": "8h", "short": "3d"}


def scenario_text(
    scale: str,
    seed: int = 1,
    districts: int | None = None,
    city: str | None = None,
    duration: str = "brief",
    policy: str = "graph",
) -> str:
    """The TOML text of a City scenario (``city``: a city file; default "scale:seed")."""
    districts = districts or DEFAULT_DISTRICTS[scale]
    source = city or f"{scale}:{seed}"
    lay = layout(source, districts)
    spec = lay.city.spec
    rows, cols = spec.weather_shape
    lines = [
        f"# City {scale} ({spec.city}), seed {seed}, {districts} x {districts} districts.",
        "# Written by `python -m models.city.scenario`: the actor counts must match the city,",
        "# so write the file again rather than editing them. See docs/city.md.",
        "",
        "[simulation]",
        f'name = "city-{scale}"',
        "tick_duration = 5.0",
        f'duration = "{DURATIONS.get(duration, duration)}"',
        f"seed = {seed}",
        "",
        "[[populations]]",
        'name = "weather"',
        'class = "models.city:Weather"',
        f"args = {{ rows = {rows}, columns = {cols} }}",
        "",
    ]
    args = f'{{ city = "{source}", districts = {districts} }}'
    for district, code, count in lay.entries:
        if count:
            lines += [
                "[[actors]]",
                f'class = "models.city:{CLASSES[code]}"',
                f"count = {count}",
                f'hint = "district-{district}"',
                f"args = {args}",
                "",
            ]
    lines += ["[placement]", f'policy = "{policy}"', "", "[results]", "plots = true", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write scenarios/city-<scale>.toml (or --out)."""
    parser = argparse.ArgumentParser(prog="python -m models.city.scenario")
    parser.add_argument("scale", choices=list(SCALES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--districts", type=int, default=None)
    parser.add_argument("--city", default=None, help="a city file from pydiasca generate city")
    parser.add_argument("--duration", default="brief", help="brief (8h), short (3d) or e.g. 2d")
    parser.add_argument("--policy", default="graph")
    parser.add_argument("--out", default=None)
    a = parser.parse_args(argv)
    try:
        text = scenario_text(a.scale, a.seed, a.districts, a.city, a.duration, a.policy)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(a.out or f"scenarios/city-{a.scale}.toml")
    out.write_text(text)
    print(f"{out}: {text.count('[[actors]]')} actor entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
