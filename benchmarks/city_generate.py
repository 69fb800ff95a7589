"""How long the City generator takes, per scale, on one core.

    python benchmarks/city_generate.py                      # every scale, 3 repeats
    python benchmarks/city_generate.py --scales tiny small  # some scales
    python benchmarks/city_generate.py --repeats 1 --json out.json

Each repeat runs in a fresh Python process (the script calls itself with
``--worker``), with BLAS and OpenMP held to one thread. The worker times
``generate_city`` (placement, roads, island repair, truck starts) and
``write_city`` apart, and reports its peak RSS; the parent also times the whole
process, interpreter start and imports included, which is what
``pydiasca generate city`` costs. Sim-Diasca took about 2 days for huge.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCALE_NAMES = ("tiny", "small", "medium", "large", "huge")
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def worker(scale: str, seed: int, out: Path) -> dict:
    from models.city import generate_city, write_city

    start = time.perf_counter()
    city = generate_city(scale, seed)
    generated = time.perf_counter()
    write_city(city, out)
    written = time.perf_counter()
    return {
        "scale": scale,
        "points": len(city.xy),
        "roads": len(city.road_source),
        "trucks": len(city.truck_start),
        "islands": city.stats["islands_repaired"],
        "stranded": city.stats["points_stranded_before_repair"],
        "generate_s": generated - start,
        "placement_s": city.stats["placement_s"],
        "write_s": written - generated,
        "file_mb": out.stat().st_size / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(scale: str, seed: int, folder: Path) -> dict:
    out = folder / f"city-{scale}.h5"
    cmd = [sys.executable, __file__, "--worker", scale, "--seed", str(seed), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD}
    )
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_s"] = time.perf_counter() - start
    out.unlink()
    return row


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if len(values) == 1 else f"{lo:.3f}-{hi:.3f}"


def table(rows: dict[str, list[dict]]) -> str:
    head = (
        "| scale | points | roads | islands repaired | stranded before repair | "
        "generate s | of which placement s | write s | process s | file MB | peak RSS MB |"
    )
    lines = [head, "|---" * 11 + "|"]
    for scale, runs in rows.items():
        r = runs[0]
        lines.append(
            f"| {scale} | {r['points']:,} | {r['roads']:,} | {r['islands']:,} | "
            f"{r['stranded']:,} | {_span([x['generate_s'] for x in runs])} | "
            f"{_span([x['placement_s'] for x in runs])} | {_span([x['write_s'] for x in runs])} | "
            f"{_span([x['process_s'] for x in runs])} | {r['file_mb']:.1f} | "
            f"{max(x['peak_rss_mb'] for x in runs):.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", choices=SCALE_NAMES, default=list(SCALE_NAMES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    parser.add_argument("--worker", choices=SCALE_NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seed, Path(args.out))))
        return 0
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for scale in args.scales:
            rows[scale] = [measure(scale, args.seed, Path(folder)) for _ in range(args.repeats)]
    print(f"City generation, seed {args.seed}, {args.repeats} repeat(s), one thread each")
    print(f"(ranges are min-max over the repeats; python {sys.version.split()[0]})\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
