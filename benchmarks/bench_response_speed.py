"""How fast the response model trains and scores, on an otherwise idle machine.

Trains the default ResponseModel on the 14,000 training patients of
`simulate(20000)` (default scenario, the split of bench_response.py), then
times scoring one patient under every option (median of 20) and the 6,000
test patients. Kept apart from bench_response.py, whose peers and replicates
would share the cores with the timings.

    python benchmarks/bench_response_speed.py [--patients 20000] [--seed 0]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_response import split  # noqa: E402
from benchmarks.record import arguments, report  # noqa: E402
from rxpredict.models.response import ResponseModel  # noqa: E402


def main() -> None:
    args = arguments(__doc__).parse_args()
    _, _, train, test = split(args.patients, "default", args.seed)
    n_train, n_test = train["patient_id"].n_unique(), test["patient_id"].n_unique()
    t0 = time.perf_counter()
    model = ResponseModel(seed=args.seed).fit(train)
    train_s = time.perf_counter() - t0
    one = test.head(1)
    model.predict_options(one)  # warm
    timings = []
    for _ in range(20):
        t0 = time.perf_counter()
        model.predict_options(one)
        timings.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    model.predict_options(test)
    test_s = time.perf_counter() - t0
    rows = [
        {"figure": f"train on {n_train:,} patients ({train.height:,} treatment starts)", "value": train_s,
         "unit": "s", "target": "< 180 s", "met": train_s < 180},
        {"figure": "score one patient under every option (median of 20)", "value": statistics.median(timings),
         "unit": "ms", "target": "< 20 ms", "met": statistics.median(timings) < 20},
        {"figure": f"score {n_test:,} patients ({test.height:,} treatment starts)", "value": test_s, "unit": "s",
         "target": "< 5 s", "met": test_s < 5},
    ]
    report("response_speed", f"python benchmarks/bench_response_speed.py --patients {args.patients} "
           f"--seed {args.seed}", rows, store=not args.no_record)


if __name__ == "__main__":
    main()
