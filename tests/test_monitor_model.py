"""Flare-risk model, alert policy, SHAP reasons, bundles and the monitor CLI."""
from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import polars as pl
import pytest
import shap
from click.testing import CliRunner

from rxpredict.cli import main
from rxpredict.exceptions import BundleError
from rxpredict.metrics import auroc
from rxpredict.monitoring.alerts import AlertPolicy, alert_performance
from rxpredict.monitoring.model import FlareRiskModel
from rxpredict.monitoring.persist import load_monitor, save_monitor
from rxpredict.monitoring.pipeline import score_patients
from rxpredict.monitoring.reasons import (CONTEXT_LABELS, background_sample, group_label, reasons_frame, risk_points,
                                         risk_shap, stream_reasons)
from rxpredict.monitoring.windows import WINDOW_DAYS, Windows, context_features, sequence_names
from rxpredict.registry import Registry, read_registry, write_registry
from rxpredict.schemas import load_contract
from rxpredict.simulate import simulate
from rxpredict.simulate.scenario import Scenario

DAY0 = dt.date(2024, 1, 1)


def synthetic_windows(n: int = 3000, seed: int = 0) -> tuple[Windows, np.ndarray]:
    """Windows whose label follows the last 7 days of steps and the last visit's DAS28, plus noise."""
    rng = np.random.default_rng(seed)
    names = sequence_names()
    seq = np.zeros((n, WINDOW_DAYS, len(names)), dtype=np.float32)
    z = rng.normal(0, 1, (n, WINDOW_DAYS, len(names) // 2)).astype(np.float32)
    drop = rng.normal(0, 1.5, n) * (rng.random(n) < 0.3)
    z[:, -7:, 0] -= np.abs(drop)[:, None]
    seen = rng.random(z.shape) > 0.1
    seq[:, :, 0::2], seq[:, :, 1::2] = np.where(seen, z, 0), seen
    das = rng.normal(4, 1, n)
    logit = -3 + 1.5 * np.abs(drop) + 0.5 * (das - 4)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    keys = pl.DataFrame({"patient_id": [f"P{i // 20:04d}" for i in range(n)],
                         "date": [DAY0 + dt.timedelta(days=i % 20) for i in range(n)]})
    summary = pl.DataFrame({"steps_dev7": z[:, -7:, 0].mean(1).astype(float), "steps_baseline": 7000.0,
                            "steps_mean7": 7000.0 + 1000 * z[:, -7:, 0].mean(1)})
    context = pl.DataFrame({"last_das28": das, "flares_past_year": rng.integers(0, 3, n).astype(float)})
    return Windows(keys, seq, names, summary, context), y


@pytest.fixture(scope="module")
def fitted():
    windows, y = synthetic_windows()
    model = FlareRiskModel(n_members=2, learning_rate=2e-3, batch_size=256, epochs=15, patience=4,
                           progress=False).fit(windows, y)
    return model, windows, y


def test_the_network_learns_a_lead_up_in_the_streams(fitted):
    model, _, _ = fitted
    test, y = synthetic_windows(n=2000, seed=1)
    p = model.predict_proba(test)
    assert auroc(y, p) > 0.75
    assert abs(p.mean() - y.mean()) < 0.03


def test_an_unseen_day_is_read_from_its_mask_not_from_its_value(fitted):
    model, windows, _ = fitted
    one = windows.take(np.arange(5))
    changed = Windows(one.keys, one.sequence.copy(), one.sequence_names, one.summary, one.context)
    unseen = changed.sequence[:, :, 1::2] == 0
    z = changed.sequence[:, :, 0::2]
    z[unseen] = 0.0
    assert np.allclose(model.predict_proba(one), model.predict_proba(changed))


def test_fit_refuses_too_few_flares_and_unfitted_prediction():
    windows, y = synthetic_windows(n=300)
    with pytest.raises(ValueError, match="too few"):
        FlareRiskModel(progress=False).fit(windows, np.zeros_like(y))
    with pytest.raises(RuntimeError, match="not fitted"):
        FlareRiskModel().predict_proba(windows)


def test_shap_adds_up_to_the_log_odds(fitted):
    model, windows, _ = fitted
    background = background_sample(model, windows, size=32)
    some = windows.take(np.arange(6))
    explanation = risk_shap(model, some, background)
    log_odds = model.log_odds(some.sequence, model.tabular(some))
    assert np.allclose(explanation.base_values + explanation.values.sum(axis=1), log_odds, atol=1e-4)
    assert "steps" in explanation.feature_names and "last_das28" in explanation.feature_names


def test_shap_of_a_window_is_the_same_whenever_and_with_whomever_it_is_scored(fitted):
    model, windows, _ = fitted
    background = background_sample(model, windows, size=32)
    some = windows.take(np.arange(6))
    np.random.seed(5)
    first = risk_shap(model, some, background)
    after = np.random.rand()
    np.random.seed(5)
    assert np.random.rand() == after  # the caller's global generator is left as it was
    assert np.array_equal(risk_shap(model, some, background).values, first.values)
    alone = risk_shap(model, windows.take(np.array([4, 2])), background)
    assert np.allclose(alone.values, first.values[[4, 2]], atol=1e-6)


def test_group_labels_are_clinical_words():
    wearables = load_contract().tables["wearables"]
    assert group_label("resting_hr_bpm") == wearables.field("resting_hr_bpm").title == "Resting heart rate"
    assert group_label("stiffness_min") == wearables.field("stiffness_min").title  # streams: the contract's titles
    assert group_label("last_das28") == "last visit's DAS28"
    assert group_label("days_since_start") == "time on the current therapy"
    assert group_label("days_since_flare") == "time since the last flare"
    assert group_label("on_tnfi") == "TNF inhibitor use" and group_label("on_glucocorticoid") == "glucocorticoid use"
    assert group_label("a_new_input") == "a new input"


def test_every_context_input_has_a_label(registry_dir):
    registry = read_registry(registry_dir)
    keys = registry["wearables"].select("patient_id", "date").head(5)
    names = context_features(keys, registry).columns
    assert [n for n in names if n not in CONTEXT_LABELS and not n.startswith("on_")] == []


def test_reasons_say_in_words_how_much_each_group_moves_the_risk(fitted):
    model, windows, _ = fitted
    background = background_sample(model, windows, size=32)
    some = windows.take(np.arange(8))
    explanation = risk_shap(model, some, background)
    assert np.array_equal(np.sign(risk_points(model, explanation)), np.sign(explanation.values))
    # one group carrying all of window a's log-odds above window b's moves the risk from b's to a's
    a, b = windows.take(np.array([0])), windows.take(np.array([1]))
    log_odds = [model.log_odds(w.sequence, model.tabular(w)) for w in (a, b)]
    made = shap.Explanation(values=np.array([[0.0, log_odds[0][0] - log_odds[1][0]]]), base_values=log_odds[1])
    moved = 100 * (model.predict_proba(a) - model.predict_proba(b))[0]
    assert np.allclose(risk_points(model, made), [[0.0, moved]], atol=1e-6)
    frame = reasons_frame(model, some, background)
    driver = re.compile(r"[A-Z][^_]*: (raises|lowers) the risk by \d+\.\d percentage points")
    for i, (text, values) in enumerate(frame.iter_rows()):
        drivers = [r for r in text.split("; ") if "the risk by" in r]
        assert 0 < len(drivers) <= 3 and all(driver.fullmatch(r) for r in drivers), text
        assert "log-odds" not in text and "_" not in text
        stored = json.loads(values)  # the stored SHAP values: log-odds by group name, as before
        assert list(stored) == explanation.feature_names
        assert np.allclose(list(stored.values()), explanation.values[i], atol=1e-4)


def test_stream_reasons_name_the_moved_streams_against_the_patients_own_baseline():
    reasons = stream_reasons({"steps_dev7": -2.4, "steps_baseline": 7900.0, "steps_mean7": 4100.0,
                              "sleep_min_dev7": 0.4, "sleep_min_baseline": 420.0, "sleep_min_mean7": 410.0,
                              "pain_0_10_dev7": 1.5, "pain_0_10_baseline": 2.0, "pain_0_10_mean7": 4.5})
    assert [r["stream"] for r in reasons] == ["steps", "pain_0_10"]
    assert reasons[0]["text"] == "Steps: 7-day mean 4,100 vs usual 7,900 (-48 %)"
    assert reasons[1]["text"] == "Pain (self report): 7-day mean 4.5 vs usual 2.0 (+125 %)"


def daily_scores(p: list[list[float]]) -> pl.DataFrame:
    return pl.DataFrame([{"patient_id": f"P{i}", "date": DAY0 + dt.timedelta(days=d), "p_flare_28d": v}
                         for i, row in enumerate(p) for d, v in enumerate(row)])


def test_alert_policy_stays_within_budget_and_keeps_quiet_days():
    rng = np.random.default_rng(0)
    scores = daily_scores(rng.beta(1, 12, (40, 120)).tolist())
    policy = AlertPolicy(budget_per_month=0.5, quiet_days=14).fit(scores)
    alerts = policy.apply(scores)
    months = scores.height / (365.25 / 12)
    assert alerts["alert"].sum() <= 0.5 * months
    looser = AlertPolicy(budget_per_month=1.0, quiet_days=14).fit(scores)
    assert looser.threshold_ < policy.threshold_
    for _, g in alerts.filter("alert").group_by("patient_id"):
        gaps = g["date"].sort().diff().dt.total_days().drop_nulls()
        assert (gaps >= 14).all()


def test_alert_performance_counts_caught_flares_and_lead_time():
    alerts = daily_scores([[0.0] * 60, [0.0] * 60]).with_columns(pl.lit(False).alias("alert"))
    alerts = alerts.with_columns(pl.when((pl.col("patient_id") == "P0") & (pl.col("date") == DAY0 + dt.timedelta(days=40)))
                                 .then(True).otherwise(pl.col("alert")).alias("alert"))
    events = pl.DataFrame({"patient_id": ["P0", "P1", "P1"],
                           "date": [DAY0 + dt.timedelta(days=50), DAY0 + dt.timedelta(days=45), DAY0 + dt.timedelta(days=5)]})
    got = alert_performance(alerts, events)
    assert got["flares"] == 2  # P1's flare on day 5 has no 28 scored days before it
    assert got["sensitivity"] == 0.5 and got["median_lead_days"] == 10 and got["ppv"] == 1.0


def test_bundle_round_trip_and_refusals(fitted, tmp_path):
    model, windows, _ = fitted
    policy = AlertPolicy().fit(daily_scores([[0.1, 0.2, 0.3] * 10]))
    background = background_sample(model, windows, size=16)
    save_monitor(model, policy, background, tmp_path / "m", metrics={"auroc": 0.8})
    loaded, loaded_policy, loaded_bg, metrics = load_monitor(tmp_path / "m")
    some = windows.take(np.arange(50))
    assert np.allclose(loaded.predict_proba(some), model.predict_proba(some))
    assert loaded_policy.threshold_ == policy.threshold_ and metrics == {"auroc": 0.8}
    assert np.array_equal(loaded_bg[0], background[0])
    with pytest.raises(BundleError, match="not empty"):
        save_monitor(model, policy, background, tmp_path / "m")
    config = tmp_path / "m" / "config.json"
    config.write_text(config.read_text().replace('"quiet_days": 14', '"quiet_days": 1'))
    with pytest.raises(BundleError, match="config.json was changed"):
        load_monitor(tmp_path / "m")


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory):
    frames = simulate(400, seed=4, scenario=Scenario.default().replace(wearables_fraction=1.0), progress=False)
    out = tmp_path_factory.mktemp("monitor") / "registry"
    write_registry(Registry.from_tables(frames), out)
    return out


def test_scoring_replays_the_quiet_days_only_for_callers_that_keep_no_alerts(fitted, registry_dir):
    model, windows, _ = fitted
    registry = read_registry(registry_dir)
    at = registry["wearables"]["date"].max()
    always = AlertPolicy(quiet_days=14, threshold_=0.0)  # every day reaches the threshold
    background = background_sample(model, windows, size=20)
    replayed = score_patients(model, always, background, registry, at, reasons=False)
    assert replayed.height > 0 and not replayed["alert"].any()  # each was alerted 13 days before, in the replay
    kept = score_patients(model, always, background, registry, at, reasons=False, replay=False)
    assert kept["alert"].all() and kept["reasons"].str.len_chars().min() > 0
    same = kept.join(replayed, on="patient_id")
    assert same.height == kept.height and np.allclose(same["p_flare_28d"], same["p_flare_28d_right"], atol=1e-6)


@pytest.mark.slow
def test_cli_train_then_score(registry_dir, tmp_path):
    runner = CliRunner()
    model_dir = tmp_path / "monitor"
    trained = runner.invoke(main, ["monitor", "train", "--registry", str(registry_dir), "--out", str(model_dir)])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout[:trained.stdout.rindex("}") + 1])
    assert 0.5 < metrics["auroc"] <= 1 and metrics["alerts_per_patient_month"] <= 1.0
    assert "Alert policy" in (model_dir / "MODEL_CARD.md").read_text()
    last = pl.read_parquet(registry_dir / "wearables.parquet")["date"].max()
    out = tmp_path / "scores.parquet"
    scored = runner.invoke(main, ["monitor", "score", "--model", str(model_dir), "--registry", str(registry_dir),
                                  "--at", last.isoformat(), "--out", str(out), "--reasons"])
    assert scored.exit_code == 0, scored.output
    rows = pl.read_parquet(out)
    assert rows.columns == ["patient_id", "date", "p_flare_28d", "alert", "reasons", "shap"]
    assert rows["patient_id"].is_unique().all() and rows["date"].unique().to_list() == [last]
    assert rows["p_flare_28d"].is_between(0, 1).all() and rows["p_flare_28d"].is_sorted(descending=True)
    assert rows["shap"].drop_nulls().len() == rows.height
    refused = runner.invoke(main, ["monitor", "score", "--model", str(tmp_path), "--registry", str(registry_dir),
                                   "--at", last.isoformat()])
    assert refused.exit_code == 1 and "not a model bundle" in refused.output
