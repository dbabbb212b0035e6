"""How fast the therapy comparison page is complete in a real browser, with the demo model.

Builds `make run`'s demo (1,000 simulated patients and the response and
survival models trained on them) in a temporary folder, serves the app, signs
in as the rheumatologist in Debian's headless chromium and opens the
comparison of several demo patients, each on the day after their latest visit.
The time runs from choosing the patient until the table, the retention curves
and the SHAP waterfall are drawn and no run is pending (tests/browser.py,
`open_comparison`). The first patient warms the app's caches (the model
loaded once per process) and is not counted.

    python benchmarks/bench_compare_page.py [--patients 1000] [--seed 0] [--opened 6]
"""
from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import arguments, report  # noqa: E402
from rxpredict.store.alerts import stored_registry  # noqa: E402
from rxpredict.store.demo import build_demo  # noqa: E402
from rxpredict.store.migrate import open_store  # noqa: E402
from tests import browser  # noqa: E402


def patients_to_open(n: int) -> list[tuple[str, dt.date]]:
    """``n`` demo patients with visits, each with the day after their latest visit."""
    visits = stored_registry(open_store())["visits"]
    latest = visits.group_by("patient_id").agg(pl.col("visit_date").max().alias("last")).sort("patient_id")
    return [(p, last + dt.timedelta(days=1)) for p, last in latest.head(n).iter_rows()]


def main() -> None:
    ap = arguments(__doc__)
    ap.set_defaults(patients=1_000)
    ap.add_argument("--opened", type=int, default=6, help="patients opened (the first only warms up)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rxpredict-bench-page-") as tmp:
        home = Path(tmp)
        os.environ["RXPREDICT_HOME"] = str(home)
        demo = build_demo(patients=args.patients, seed=args.seed, monitor=False, scorer=False, progress=print)
        with browser.served(home) as (page, url):
            browser.sign_in(page, url, *demo.logins["rheumatologist"], first_heading="Patients")
            seconds = [browser.open_comparison(page, patient, f"{day:%Y%m%d}")
                       for patient, day in patients_to_open(args.opened)]
    counted = seconds[1:]
    median = statistics.median(counted)
    print("seconds per patient opened (first one warms up):", ", ".join(f"{s:.2f}" for s in seconds))
    report("compare_page", f"python benchmarks/bench_compare_page.py --patients {args.patients} --seed {args.seed} "
           f"--opened {args.opened}", [
               {"figure": f"comparison page complete after choosing a patient (median of {len(counted)}, "
                          "demo model, in headless chromium)", "value": median, "unit": "s", "target": "< 2 s",
                "met": median < 2},
               {"figure": "slowest of those", "value": max(counted), "unit": "s", "target": "(for information)", "met": None},
           ], store=not args.no_record)


if __name__ == "__main__":
    main()
