"""Cohort building speed: a 1,000,000-patient registry becomes a cohort in under 60 s (2 cores).

Reads (and validates) a simulated registry, then times `build_cohort` on it:
episodes, history, baseline visits, the four feature blocks and all outcomes.

    python benchmarks/bench_cohort.py [--patients 1000000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import peak_rss_gb, record  # noqa: E402
from rxpredict.cohort import build_cohort  # noqa: E402
from rxpredict.registry import read_registry  # noqa: E402
from rxpredict.simulate import simulate  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    reg_dir = DATA / f"simulate_{args.patients}"
    if not (reg_dir / "visits.parquet").exists():
        simulate(args.patients, seed=0, out=reg_dir)
    t0 = time.perf_counter()
    registry = read_registry(reg_dir)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cohort = build_cohort(registry)
    build_s = time.perf_counter() - t0
    visits = registry["visits"].height
    print(f"{args.patients:,} patients, {visits:,} visits: read and validated in {read_s:.1f} s; "
          f"cohort of {cohort.frame.height:,} episodes x {cohort.frame.width} columns built in {build_s:.1f} s; "
          f"peak {peak_rss_gb():.1f} GiB")
    print(cohort.summary())
    big = args.patients >= 1_000_000
    if not args.no_record:
        record("cohort", f"python benchmarks/bench_cohort.py --patients {args.patients}", [
            {"figure": f"build cohort, {args.patients:,} patients ({visits:,} visits)", "value": build_s, "unit": "s",
             "target": "< 60 s" if big else "", "met": build_s < 60 if big else None},
            {"figure": "read + validate that registry", "value": read_s, "unit": "s", "target": "", "met": None},
            {"figure": "peak memory (read, validate, build)", "value": peak_rss_gb(), "unit": "GiB", "target": "",
             "met": None},
        ])


if __name__ == "__main__":
    main()
