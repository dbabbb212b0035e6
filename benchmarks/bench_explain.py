"""How fast the SHAP explanations are, on an otherwise idle machine.

Trains the default ResponseModel (10 members) and the ProgressionModel on the
14,000 training patients of `simulate(20000)` (default scenario, the split of
bench_response.py), draws the default backgrounds (100 training episodes), then
times explaining every option for one test patient (median of 10, after a
warm-up) and one option for 1,000 test patients, for the response model's
P(response) and the progression model's p_rrp. Each explanation's additivity is
checked as it is made.

    python benchmarks/bench_explain.py [--patients 20000] [--seed 0] [--option il6i]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_response import split  # noqa: E402
from benchmarks.record import arguments, report  # noqa: E402
from rxpredict.explain import draw_background, explain_all_options, explain_options  # noqa: E402
from rxpredict.explain.progression import draw_progression_background, explain_progression  # noqa: E402
from rxpredict.models.response import ResponseModel  # noqa: E402
from rxpredict.survival import ProgressionModel  # noqa: E402

#: Test patients explained for one option.
COHORT = 1_000


def main() -> None:
    ap = arguments(__doc__)
    ap.add_argument("--option", default="il6i")
    args = ap.parse_args()
    _, _, train, test = split(args.patients, "default", args.seed)
    model = ResponseModel(seed=args.seed, progress=False).fit(train)
    model.background_ = draw_background(model, train)
    progression = ProgressionModel().fit(train)
    progression.background_ = draw_progression_background(progression, train)
    one = test.head(1)
    cohort = test.unique("patient_id", keep="first", maintain_order=True).head(COHORT)
    tasks = {
        "": (lambda: explain_all_options(model, one), lambda: explain_options(model, cohort, args.option)),
        "p_rrp: ": (lambda: [explain_progression(progression, one, o) for o in progression.options_],
                    lambda: explain_progression(progression, cohort, args.option)),
    }
    rows = []
    for label, (every_option, one_option) in tasks.items():
        one_ms, cohort_s = _median_ms(every_option), _seconds(one_option)
        rows += [
            {"figure": f"{label}explain every option ({len(model.options_)}) for one patient (median of 10)",
             "value": one_ms, "unit": "ms", "target": "< 300 ms", "met": one_ms < 300},
            {"figure": f"{label}explain one option ({args.option}) for {cohort.height:,} patients",
             "value": cohort_s, "unit": "s", "target": "< 30 s", "met": cohort_s < 30},
        ]
    report("explain", f"python benchmarks/bench_explain.py --patients {args.patients} --seed {args.seed} "
           f"--option {args.option}", rows, store=not args.no_record)


def _median_ms(task) -> float:
    """Median of 10 timed runs of ``task``, after one warm-up, in milliseconds."""
    task()
    timings = []
    for _ in range(10):
        t0 = time.perf_counter()
        task()
        timings.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(timings)


def _seconds(task) -> float:
    t0 = time.perf_counter()
    task()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
