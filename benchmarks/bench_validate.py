"""How long validating a large registry takes: 10 million visit rows by default (target < 20 s on 2 cores).

Builds a registry of random but plausible rows with numpy (a small share of
planted violations so the report has work to do), writes it as Parquet (and, with
--csv, as CSV), then times `validate_registry` end to end: reading files, every
check, and the report.

    python benchmarks/bench_validate.py [--visits 10000000] [--csv]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import peak_rss_gb, record  # noqa: E402
from rxpredict.registry import validate_registry  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def build(n_visits: int, out: Path, seed: int = 0) -> dict[str, int]:
    """Write patients, visits and treatments with about 10 visits a patient; returns planted error counts."""
    rng = np.random.default_rng(seed)
    n_pat = max(n_visits // 10, 1)
    ids = np.char.add("P", np.arange(n_pat).astype(str))
    diag = np.datetime64("2000-01-01") + rng.integers(0, 8000, n_pat).astype("timedelta64[D]")
    patients = pl.DataFrame({
        "patient_id": ids, "sex": rng.choice(["F", "M"], n_pat, p=[0.7, 0.3]),
        "birth_year": rng.integers(1930, 1990, n_pat), "diagnosis_date": diag,
        "rf_positive": rng.random(n_pat) < 0.7, "acpa_positive": rng.random(n_pat) < 0.65,
        "smoking": rng.choice(["never", "former", "current"], n_pat),
    })
    who = np.sort(rng.integers(0, n_pat, n_visits))
    day = diag[who] + (np.arange(n_visits) % 4000).astype("timedelta64[D]")  # unique per patient in practice
    tjc = rng.integers(0, 29, n_visits)
    bad = rng.random(n_visits) < 1e-4  # planted: tender joint count out of range
    tjc[bad] = 35
    visits = pl.DataFrame({
        "patient_id": ids[who], "visit_date": day, "tjc28": tjc, "sjc28": rng.integers(0, 29, n_visits),
        "esr_mm_h": np.round(rng.gamma(2, 12, n_visits), 0), "crp_mg_l": np.round(rng.gamma(1.5, 8, n_visits), 1),
        "patient_global_0_100": rng.integers(0, 101, n_visits).astype(float),
        "physician_global_0_100": rng.integers(0, 101, n_visits).astype(float),
        "pain_0_100": rng.integers(0, 101, n_visits).astype(float),
        "haq_di": rng.integers(0, 25, n_visits) * 0.125, "bmi_kg_m2": np.round(rng.normal(27, 5, n_visits).clip(15, 60), 1),
        "morning_stiffness_min": rng.integers(0, 240, n_visits),
    }).with_columns(pl.col("visit_date").cast(pl.Date))
    treatments = pl.DataFrame({
        "patient_id": ids, "drug": rng.choice(["methotrexate", "adalimumab", "tocilizumab"], n_pat),
        "start_date": diag, "stop_date": None, "stop_reason": None,
    }, schema_overrides={"stop_date": pl.Date, "stop_reason": pl.String}).with_columns(pl.col("start_date").cast(pl.Date))
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in [("patients", patients), ("visits", visits), ("treatments", treatments)]:
        frame.write_parquet(out / f"{name}.parquet")
    return {"tjc28 maximum": int(bad.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=10_000_000)
    ap.add_argument("--csv", action="store_true", help="also time the same registry as CSV")
    ap.add_argument("--no-record", action="store_true", help="print only; do not update docs/benchmarks.md")
    args = ap.parse_args()
    reg = DATA / f"validate_{args.visits}"
    if not (reg / "visits.parquet").exists():
        t0 = time.perf_counter()
        build(args.visits, reg)
        print(f"built registry in {time.perf_counter() - t0:.1f} s: {reg}")
    t0 = time.perf_counter()
    report = validate_registry(reg).report
    seconds = time.perf_counter() - t0
    print(report.to_text(max_per_rule=2))
    print(f"\nvalidated {args.visits:,} visit rows (Parquet) in {seconds:.1f} s; peak memory {peak_rss_gb():.1f} GiB")
    rows = [{"figure": f"validate {args.visits:,} visits (Parquet)", "value": seconds, "unit": "s",
             "target": "< 20 s" if args.visits >= 10_000_000 else "", "met": seconds < 20 if args.visits >= 10_000_000 else None},
            {"figure": "peak memory", "value": peak_rss_gb(), "unit": "GiB", "target": "", "met": None}]
    if args.csv:
        csv_dir = reg.with_name(reg.name + "_csv")
        if not (csv_dir / "visits.csv").exists():
            csv_dir.mkdir(parents=True, exist_ok=True)
            for p in reg.glob("*.parquet"):
                pl.read_parquet(p).write_csv(csv_dir / f"{p.stem}.csv")
        t0 = time.perf_counter()
        validate_registry(csv_dir)
        csv_seconds = time.perf_counter() - t0
        print(f"validated {args.visits:,} visit rows (CSV) in {csv_seconds:.1f} s")
        rows.append({"figure": f"validate {args.visits:,} visits (CSV)", "value": csv_seconds, "unit": "s",
                     "target": "", "met": None})
    if not args.no_record:
        record("validate", f"python benchmarks/bench_validate.py --visits {args.visits}" + (" --csv" if args.csv else ""),
               rows)


if __name__ == "__main__":
    main()
