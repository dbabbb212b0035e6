"""Flare-risk monitor against its two baselines and the oracle, on the simulator's held-out patients; scoring speed.

Simulates a registry (default scenario), fits the monitor (rxpredict.monitoring.fit_monitor: 75 % of the
wearable patients for training, 25 % held out), and on the same training days fits the two baselines the
issue names: the last visit's DAS28 alone (logistic regression) and LightGBM on the summary features and
context (the same tabular inputs the network gets, without the daily sequence), Platt-calibrated on a
held-out share of the training patients like the network. All are scored on every labelled day of the
held-out patients: AUROC, ECE (10 bins), Brier; the oracle's own AUROC on those days where the simulator
writes one. The alert policy at the default budget (one alert per patient-month) gives sensitivity, median
lead time and PPV. With ``--seeds`` each seed simulates and fits anew and the figures are the seeds' means
(the held-out patients are a few hundred, so one seed's AUROC moves by about 0.01). Speed: the probability on
one date for 10,000 patients with wearables, from their last 56 days (windows built from the registry and
scored), and the full ``score_patients`` (policy replay).

The *learnable limit* is how well the inputs can order the held-out days at all: LightGBM regressed on the
oracle's true probability ``p_flare_28d`` of the training days (noise-free labels instead of the observed
flares; squared error on the probability scale) from the tabular inputs and the flattened 56-day sequence.
The oracle knows the latent flare onsets, which no input holds, so its AUROC is out of reach of any model;
the limit says how far the network and LightGBM are from what their inputs allow. Its AUROC only: a
regression of probabilities is not calibrated to the flares, so it has no ECE or Brier score here.

    python benchmarks/bench_monitor.py [--patients 20000] [--seed 0 | --seeds 0 1] [--no-record]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import arguments, record, report  # noqa: E402
from rxpredict.metrics import auroc, brier, expected_calibration_error  # noqa: E402
from rxpredict.models.platt import platt_apply, platt_fit  # noqa: E402
from rxpredict.monitoring.pipeline import fit_monitor, score_patients  # noqa: E402
from rxpredict.monitoring.windows import build_windows  # noqa: E402
from rxpredict.registry import Registry  # noqa: E402
from rxpredict.simulate import simulate  # noqa: E402
from rxpredict.simulate.scenario import Scenario  # noqa: E402

SPEED_PATIENTS = 10_000
LIMIT = "learnable limit (oracle labels)"
LGBM = {"n_estimators": 400, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 100, "subsample": 0.8,
        "subsample_freq": 1, "colsample_bytree": 0.8, "verbose": -1}  # the LightGBM baseline's hyper-parameters


def _figures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auroc": auroc(y, p), "ece": expected_calibration_error(y, p), "brier": brier(y, p)}


def _tabular(w) -> np.ndarray:
    """The summary and context inputs of a window batch as one float matrix (LightGBM's inputs)."""
    return pl.concat([w.summary, w.context], how="horizontal").cast(pl.Float64).to_numpy()


def baselines(fitted, w_train, w_test, seed: int) -> dict[str, dict[str, float]]:
    """Last-visit DAS28 and LightGBM fitted on the monitor's training days, scored on its held-out days."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    held, train = fitted.held_out, fitted.train
    y_train, y_test = train["flare"].to_numpy().astype(int), held["flare"].to_numpy().astype(int)
    rng = np.random.default_rng(seed)
    patients = train["patient_id"].unique().sort().to_numpy()
    calib = np.isin(train["patient_id"].to_numpy(), rng.choice(patients, len(patients) // 4, replace=False))

    def last_das28(w):
        d = w.context["last_das28"].to_numpy()
        return np.column_stack([np.nan_to_num(d, nan=np.nanmean(d)), np.isnan(d)])

    out = {}
    for name, make, features in [
        ("last visit DAS28", lambda: LogisticRegression(), last_das28),
        ("LightGBM summary", lambda: lgb.LGBMClassifier(**LGBM, random_state=seed), _tabular),
    ]:
        X_train, X_test = features(w_train), features(w_test)
        model = make().fit(X_train[~calib], y_train[~calib])
        intercept, slope = platt_fit(model.predict_proba(X_train[calib])[:, 1], y_train[calib])
        out[name] = _figures(y_test, platt_apply(model.predict_proba(X_test)[:, 1], intercept, slope))
    return out


def learnable_limit(frames: dict[str, pl.DataFrame], fitted, w_train, w_test, seed: int) -> float | None:
    """Held-out AUROC of LightGBM regressed on the training days' oracle probability (see the module docstring)."""
    import lightgbm as lgb

    if "flare_oracle" not in frames:
        return None
    oracle = frames["flare_oracle"].select("patient_id", "date", "p_flare_28d")
    target = fitted.train.select("patient_id", "date").join(oracle, on=["patient_id", "date"], how="left")
    target = target["p_flare_28d"].to_numpy()  # train's order (a left join keeps it)
    known = ~np.isnan(target)
    if not known.any():
        return None

    def inputs(w) -> np.ndarray:
        return np.column_stack([_tabular(w), w.sequence.reshape(len(w.sequence), -1)])

    model = lgb.LGBMRegressor(**{**LGBM, "n_estimators": 800}, random_state=seed)
    model.fit(inputs(w_train)[known], np.clip(target[known], 1e-4, 1 - 1e-4))
    return auroc(fitted.held_out["flare"].to_numpy().astype(int), model.predict(inputs(w_test)))


def oracle_auroc(frames: dict[str, pl.DataFrame], held: pl.DataFrame) -> float | None:
    if "flare_oracle" not in frames:
        return None
    oracle = frames["flare_oracle"].select("patient_id", "date", pl.col("p_flare_28d").alias("p_oracle"))
    truth = held.join(oracle, on=["patient_id", "date"], how="inner")
    return auroc(truth["flare"].to_numpy().astype(int), truth["p_oracle"].to_numpy()) if truth.height else None


def speed(fitted, seed: int) -> tuple[float, float]:
    frames = simulate(SPEED_PATIENTS, seed=seed + 1, scenario=Scenario.default().replace(wearables_fraction=1.0),
                      progress=False)
    registry = Registry.from_tables(frames)
    at = registry["wearables"]["date"].max()
    keys = registry["wearables"].filter(pl.col("date") > at - pl.duration(days=56)).select("patient_id").unique()
    keys = keys.with_columns(pl.lit(at).alias("date"))
    t0 = time.perf_counter()
    fitted.model.predict_proba(build_windows(registry, keys))
    one_day = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_patients(fitted.model, fitted.policy, fitted.background, registry, at, reasons=False)
    return one_day, time.perf_counter() - t0


def one_seed(patients: int, seed: int) -> dict:
    """Simulate, fit the monitor and its peers on one seed's registry; figures on its held-out patients."""
    t0 = time.perf_counter()
    frames = simulate(patients, seed=seed, progress=False)
    registry = Registry.from_tables(frames)
    fitted = fit_monitor(registry, seed=seed, progress=True)
    held = fitted.held_out
    fit_seconds = time.perf_counter() - t0
    w_train = build_windows(registry, fitted.train.select("patient_id", "date"))
    w_test = build_windows(registry, held.select("patient_id", "date"))
    return {"fitted": fitted, "fit_seconds": fit_seconds,
            "ours": _figures(held["flare"].to_numpy().astype(int), held["p_flare_28d"].to_numpy()),
            "peers": baselines(fitted, w_train, w_test, seed), "oracle": oracle_auroc(frames, held),
            "limit": learnable_limit(frames, fitted, w_train, w_test, seed),
            "held": f"{held.height:,} held-out patient-days of {held['patient_id'].n_unique():,} patients, "
                    f"flare rate {held['flare'].mean():.3f}"}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", help="several seeds: figures are their means (default: --seed)")
    args = parser.parse_args()
    seeds = args.seeds or [args.seed]
    runs = [one_seed(args.patients, seed) for seed in seeds]

    def mean(get) -> float:
        return float(np.mean([get(r) for r in runs]))

    ours = {k: mean(lambda r: r["ours"][k]) for k in ("auroc", "ece", "brier")}
    peers = {name: {k: mean(lambda r: r["peers"][name][k]) for k in ("auroc", "ece", "brier")}
             for name in runs[0]["peers"]}
    oracles = [r["oracle"] for r in runs if r["oracle"] is not None]
    limits = [r["limit"] for r in runs if r["limit"] is not None]
    limit_text = f"; learnable limit {np.mean(limits):.3f}" if limits else ""
    alerts = {k: mean(lambda r: r["fitted"].metrics[k]) for k in
              ("alerts_per_patient_month", "sensitivity", "median_lead_days", "ppv")}
    one_day, full = speed(runs[0]["fitted"], seeds[0])
    of = f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""
    best_peer = max(v["auroc"] for v in peers.values())
    rows = [
        {"figure": f"temporal network: AUROC, flare within 28 days (held-out patients){of}", "value": ours["auroc"],
         "unit": "", "target": f"> LightGBM ({peers['LightGBM summary']['auroc']:.3f}) and >= last visit + 0.08 "
                               f"({peers['last visit DAS28']['auroc'] + 0.08:.3f}){limit_text}",
         "met": bool(ours["auroc"] > best_peer and ours["auroc"] >= peers["last visit DAS28"]["auroc"] + 0.08)},
        {"figure": f"temporal network: ECE{of}", "value": ours["ece"], "unit": "", "target": "<= 0.03",
         "met": bool(ours["ece"] <= 0.03)},
        *({"figure": f"oracle: AUROC on the same days{of}", "value": float(np.mean(oracles)), "unit": "",
           "target": "", "met": None} for _ in oracles[:1]),
        *({"figure": f"{LIMIT}: AUROC{of}", "value": float(np.mean(limits)), "unit": "", "target": "", "met": None}
          for _ in limits[:1]),
        *({"figure": f"{name}: AUROC{of}", "value": v["auroc"], "unit": "", "target": "", "met": None}
          for name, v in peers.items()),
        {"figure": f"alerts per patient-month (budget 1){of}", "value": alerts["alerts_per_patient_month"],
         "unit": "", "target": "<= 1", "met": bool(alerts["alerts_per_patient_month"] <= 1.0)},
        {"figure": f"alert sensitivity (flares with an alert in the 28 days before){of}",
         "value": alerts["sensitivity"], "unit": "", "target": "reported", "met": None},
        {"figure": f"median lead time, alert to flare{of}", "value": alerts["median_lead_days"], "unit": "days",
         "target": "reported", "met": None},
        {"figure": f"alert PPV (a flare within 28 days){of}", "value": alerts["ppv"], "unit": "",
         "target": "reported", "met": None},
        {"figure": f"score {SPEED_PATIENTS:,} patients' last 56 days (one date)", "value": one_day, "unit": "s",
         "target": "< 10 s", "met": bool(one_day < 10)},
        {"figure": f"score_patients for {SPEED_PATIENTS:,} patients (with the 14-day alert replay)", "value": full,
         "unit": "s", "target": "", "met": None},
        {"figure": "simulate + fit the monitor (one seed)", "value": runs[0]["fit_seconds"], "unit": "s",
         "target": "", "met": None},
    ]
    table = ["| seed | model | AUROC | ECE | Brier |", "| --- | --- | --- | --- | --- |"]
    for seed, r in zip(seeds, runs):
        table.append(f"| {seed} | temporal network (ours) | {r['ours']['auroc']:.3f} | {r['ours']['ece']:.3f} | "
                     f"{r['ours']['brier']:.4f} |")
        table += [f"| {seed} | {name} | {v['auroc']:.3f} | {v['ece']:.3f} | {v['brier']:.4f} |"
                  for name, v in r["peers"].items()]
        if r["oracle"] is not None:
            table.append(f"| {seed} | oracle | {r['oracle']:.3f} | | |")
        if r["limit"] is not None:
            table.append(f"| {seed} | {LIMIT} | {r['limit']:.3f} | | |")
    held_text = "; ".join(f"seed {seed}: {r['held']}" for seed, r in zip(seeds, runs))
    command = (f"python benchmarks/bench_monitor.py --patients {args.patients} "
               + (f"--seeds {' '.join(map(str, seeds))}" if args.seeds else f"--seed {args.seed}"))
    report("monitor", command, rows, store=False)
    print(held_text)
    print("\n".join(table))
    if not args.no_record:
        record("monitor", command, rows, sections=[held_text, "\n".join(table)])


if __name__ == "__main__":
    main()
