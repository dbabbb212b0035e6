"""Importing a 1 GB Apple Health export into a registry: wall time (target < 2 min) and peak memory (< 500 MiB).

Streams a synthetic export of about --size-mb MB to benchmarks/data/ (several
years of per-minute steps from a watch, coarser steps from a phone, heart-rate
samples, exercise minutes, resting heart rate, sleep stages), then imports it
with `import_wearables` into a small registry in a fresh process, so that the
peak resident memory is the import's own. The days stored are compared with
the generator's truth. For scale, the same file is also read by the standard
library's ElementTree.iterparse, counting records only (the way an importer
without line numbers would read it). The export and the registry are deleted afterwards
unless --keep.

    python benchmarks/bench_monitor_import.py [--size-mb 1000] [--keep] [--no-record]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import peak_rss_gb, record  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
EXAMPLE = Path(__file__).resolve().parents[1] / "rxpredict" / "data" / "example_registry"
PATIENT = "EX003"  # has no wearable days in the example registry
TARGET_S, TARGET_MIB = 120, 500


def import_once(export: Path, registry: Path) -> dict:
    """Run in this process: import the export and report seconds, peak memory and counts."""
    from rxpredict.monitoring.ingest import import_wearables

    t0 = time.perf_counter()
    result = import_wearables(registry, PATIENT, export)
    return {"seconds": time.perf_counter() - t0, "peak_mib": peak_rss_gb() * 1024,
            "records": result.file.records_read, "days": result.added, "rejected": result.file.n_rejected}


def iterparse_once(export: Path) -> dict:
    """Run in this process: the stdlib's iterparse over the same file, counting records, clearing as it goes."""
    from xml.etree.ElementTree import iterparse

    t0 = time.perf_counter()
    records = 0
    for _, element in iterparse(export, events=("end",)):
        if element.tag == "Record":
            records += 1
            element.clear()
    return {"seconds": time.perf_counter() - t0, "peak_mib": peak_rss_gb() * 1024, "records": records}


def in_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=1000.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated export in benchmarks/data/")
    ap.add_argument("--no-record", action="store_true", help="print only; do not update docs/benchmarks.md")
    ap.add_argument("--import-once", nargs=2, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--iterparse-once", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.import_once:
        print(json.dumps(import_once(*args.import_once)))
        return
    if args.iterparse_once:
        print(json.dumps(iterparse_once(args.iterparse_once)))
        return

    import polars as pl

    from rxpredict.monitoring.ingest.synthetic import write_synthetic_export
    from rxpredict.registry import read_registry, write_registry

    DATA.mkdir(parents=True, exist_ok=True)
    export, registry = DATA / "monitor_export.xml", DATA / "monitor_registry"
    try:
        t0 = time.perf_counter()
        made = write_synthetic_export(export, size_mb=args.size_mb)
        print(f"wrote {made.bytes / 1e6:,.0f} MB, {made.records:,} records, {made.expected.height:,} days "
              f"in {time.perf_counter() - t0:.0f} s")
        write_registry(read_registry(EXAMPLE), registry)
        (registry / "wearables.parquet").unlink()
        r = in_child("--import-once", str(export), str(registry))
        stored = pl.read_parquet(registry / "wearables.parquet").filter(pl.col("patient_id") == PATIENT)
        correct = stored.select(made.expected.columns).equals(made.expected) and r["rejected"] == 0
        print(f"import: {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB, {r['records']:,} records, "
              f"{r['days']:,} days stored, equal to the generator's truth: {correct}")
        baseline = in_child("--iterparse-once", str(export))
        print(f"stdlib iterparse, counting records only: {baseline['seconds']:.1f} s, "
              f"peak {baseline['peak_mib']:.0f} MiB")
    finally:
        if not args.keep:
            export.unlink(missing_ok=True)
            shutil.rmtree(registry, ignore_errors=True)
    full = args.size_mb >= 1000
    size = f"{made.bytes / 1e9:.2f} GB export ({made.records / 1e6:.1f} M records)"
    rows = [
        {"figure": f"import {size} (wall)", "value": r["seconds"], "unit": "s",
         "target": f"< {TARGET_S} s" if full else "", "met": r["seconds"] < TARGET_S if full else None},
        {"figure": f"import {size} (peak memory)", "value": r["peak_mib"], "unit": "MiB",
         "target": f"< {TARGET_MIB} MiB" if full else "", "met": r["peak_mib"] < TARGET_MIB if full else None},
        {"figure": "import: days equal to the generator's truth", "value": "yes" if correct else "no", "unit": "",
         "target": "yes", "met": correct},
        {"figure": "same file, stdlib iterparse counting records (no line numbers)", "value": baseline["seconds"],
         "unit": "s", "target": "", "met": None},
    ]
    if not args.no_record:
        record("monitor_import", f"python benchmarks/bench_monitor_import.py --size-mb {args.size_mb:g}", rows)


if __name__ == "__main__":
    main()
