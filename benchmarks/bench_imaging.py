"""Radiograph scorer on synthetic films: train on --patients, score --test held-out patients, time both.

Figures are on films of our own generator (rxpredict.imaging.synth), not on
real radiographs: they show that the pipeline learns what it is shown, not
how it would score a clinic's films.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import arguments, record  # noqa: E402
from rxpredict.imaging.evaluate import evaluate  # noqa: E402
from rxpredict.imaging.layout import read_folder, read_image  # noqa: E402
from rxpredict.imaging.persist import load_scorer, save_scorer  # noqa: E402
from rxpredict.imaging.scorer import RadiographScorer  # noqa: E402
from rxpredict.imaging.synth import synthesize  # noqa: E402

CAVEAT = ("Synthetic films only (`rxpredict imaging synth`): drawn bones, joint spaces and punched-out erosions "
          "of known scores. These figures say the pipeline learns what it is shown; they say nothing of real "
          "radiographs. Retraining for a clinic needs scored real films (the RA2-DREAM layout; a few hundred "
          "patients at least, with landmark files for some of them or a locator bundle), a larger canvas "
          "(`canvas_size`, with `crop_pixels` scaled alike) for real erosions, and a held-out check against readers "
          "(ICC, SDD) before use.")


def main() -> None:
    ap = arguments(__doc__)
    ap.set_defaults(patients=300)
    ap.add_argument("--test", type=int, default=100, help="held-out patients to score")
    ap.add_argument("--keep", type=Path, default=None, help="also save the trained scorer here")
    args = ap.parse_args()
    command = f"python benchmarks/bench_imaging.py --patients {args.patients} --test {args.test} --seed {args.seed}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(args.patients, tmp / "train", seed=args.seed)
        synthesize(args.test, tmp / "test", seed=args.seed + 1)
        started = time.perf_counter()
        scorer = RadiographScorer(seed=args.seed).fit(read_folder(tmp / "train"))
        train_s = time.perf_counter() - started
        save_scorer(scorer, args.keep or tmp / "model", overwrite=args.keep is not None)
        scorer = load_scorer(args.keep or tmp / "model")
        test = read_folder(tmp / "test")
        figures, areas = evaluate(scorer, test, expected=True)
        whole, whole_areas = evaluate(scorer, test)
        hand = next(iter(test.images.values()))["LH"]
        timings = []
        for _ in range(7):
            t = time.perf_counter()
            scorer.score_film(read_image(hand), "LH")
            timings.append(time.perf_counter() - t)
    worst = areas.filter(pl.col("sd") > 0)["rmse_over_sd"].max()
    worst_whole = whole_areas.filter(pl.col("sd") > 0)["rmse_over_sd"].max()
    one_hand = statistics.median(timings)
    rows = [
        {"figure": "training, 300 patients (1,200 films)" if args.patients == 300 else
         f"training, {args.patients} patients", "value": train_s, "unit": "s", "target": "< 900 s",
         "met": train_s < 900},
        {"figure": "scoring one hand film (read + locate + score)", "value": one_hand, "unit": "s",
         "target": "< 1 s", "met": one_hand < 1},
        {"figure": "worst per-area RMSE / SD, expected scores", "value": worst, "unit": "", "target": "<= 0.5",
         "met": worst <= 0.5},
        {"figure": "score columns with RMSE <= SD / 2, expected scores",
         "value": figures["share_columns_rmse_le_half_sd"], "unit": "share", "target": "", "met": None},
        {"figure": "RMSE per joint score, expected scores", "value": figures["rmse_joint"], "unit": "points",
         "target": "", "met": None},
        {"figure": "RMSE of total SvdH, expected scores", "value": figures["rmse_total"], "unit": "points",
         "target": "< 5", "met": figures["rmse_total"] < 5},
        {"figure": "mean error of total (predicted - true)", "value": figures["mean_error_total"], "unit": "points",
         "target": "", "met": None},
        {"figure": "challenge-weighted RMSE of total", "value": figures["weighted_rmse_total"], "unit": "points",
         "target": "", "met": None},
        {"figure": "ICC(2,1) of total with the truth", "value": figures["icc_total"], "unit": "", "target": "",
         "met": None},
        {"figure": "SDD of total", "value": figures["sdd_total"], "unit": "points", "target": "", "met": None},
        {"figure": "worst per-area RMSE / SD, whole scores (the imaging table's)", "value": worst_whole, "unit": "",
         "target": "", "met": None},
        {"figure": "RMSE of total SvdH, whole scores", "value": whole["rmse_total"], "unit": "points",
         "target": "< 5", "met": whole["rmse_total"] < 5},
        {"figure": "landmark error, mean", "value": figures["landmark_error_mean_px"], "unit": "px", "target": "",
         "met": None},
        {"figure": "landmark error / joint spacing, mean", "value": figures["landmark_error_over_spacing_mean"],
         "unit": "", "target": "< 0.1", "met": figures["landmark_error_over_spacing_mean"] < 0.1},
    ]
    for r in rows:
        print(f"{r['figure']}: {r['value']:.3g} {r['unit']} (target {r['target'] or '-'})")
    areas = areas.join(whole_areas.select("area", "kind", pl.col("rmse_over_sd").alias("whole")), on=["area", "kind"])
    table = ["Per joint area (both sides), expected scores; the last column is RMSE/SD of the whole scores.", "",
             "| area | kind | RMSE | SD | RMSE/SD | ICC | SDD | RMSE/SD, whole |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    table += ["| " + " | ".join([r["area"], r["kind"], *(_cell(r[k]) for k in ("rmse", "sd", "rmse_over_sd", "icc",
                                                                         "sdd", "whole"))]) + " |"
              for r in areas.iter_rows(named=True)]
    print("\n".join(table))
    print(f"training: {scorer.training_}", file=sys.stderr)
    if not args.no_record:
        record("imaging", command, rows, sections=[CAVEAT, "\n".join(table)])


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
