"""Simulator speed and memory: 100,000 patients (target < 60 s) and 1,000,000 (< 10 min, < 12 GB peak).

Each size runs in a fresh process so the peak memory is that run's own.

    python benchmarks/bench_simulate.py [--sizes 100000 1000000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import peak_rss_gb, record  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
TARGETS = {100_000: (60, None), 1_000_000: (600, 12.0)}


def one(n: int) -> dict:
    """Run in this process: simulate n patients to disk and report seconds, peak memory and rows."""
    from rxpredict.simulate import simulate

    out = DATA / f"simulate_{n}"
    t0 = time.perf_counter()
    summary = simulate(n, seed=0, out=out, progress=False)
    return {"n": n, "seconds": time.perf_counter() - t0, "peak_gb": peak_rss_gb(), "rows": summary.rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        secs, mem = TARGETS.get(n, (None, None))
        print(f"{n:>9,} patients: {r['seconds']:.1f} s, peak {r['peak_gb']:.2f} GiB, "
              f"{r['rows']['visits']:,} visits, {r['rows']['imaging']:,} imaging rows, {r['rows']['wearables']:,} wearable days")
        rows.append({"figure": f"simulate {n:,} patients (wall)", "value": r["seconds"], "unit": "s",
                     "target": f"< {secs} s" if secs else "", "met": r["seconds"] < secs if secs else None})
        rows.append({"figure": f"simulate {n:,} patients (peak memory)", "value": r["peak_gb"], "unit": "GiB",
                     "target": f"< {mem} GiB" if mem else "", "met": r["peak_gb"] < mem if mem else None})
        rows.append({"figure": f"simulate {n:,} patients: visit rows", "value": r["rows"]["visits"], "unit": "rows",
                     "target": "", "met": None})
    if not args.no_record:
        record("simulate", "python benchmarks/bench_simulate.py --sizes " + " ".join(map(str, args.sizes)), rows)


if __name__ == "__main__":
    main()
