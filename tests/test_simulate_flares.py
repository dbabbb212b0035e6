"""Flares, wearable realism and the flare oracle, checked on what the simulator writes.

The flare label is computed here from the registry tables by a small reference
implementation of its definition (clinical-reference.md, "Flare"), independent
of the simulator and of rxpredict.monitoring.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.metrics import roc_auc_score

from rxpredict.clinical import das28_crp, das28_esr
from rxpredict.simulate import Scenario, simulate
from rxpredict.simulate.wearables import simulate_wearables
from rxpredict.validation import validate_tables
from tests.conftest import TODAY

REGISTRY_TABLES = ("patients", "visits", "treatments", "imaging", "genetics", "wearables")
GLUCOCORTICOIDS = ["prednisone", "prednisolone"]
HORIZON = dt.timedelta(days=28)
WEARERS = Scenario.default().replace(wearables_fraction=1.0)


@pytest.fixture(scope="module")
def sim() -> dict[str, pl.DataFrame]:
    """3,000 patients, every one with wearables (about 2 s)."""
    return simulate(3_000, seed=7, scenario=WEARERS, progress=False)


def _visit_das28(visits: pl.DataFrame) -> pl.DataFrame:
    """Each visit's DAS28 and the previous visit's, on CRP where both visits have it, else on ESR."""
    def prev(column: str) -> pl.Expr:
        return pl.col(column).shift(1).over("patient_id")

    on_crp = pl.col("crp_mg_l").is_not_null() & prev("crp_mg_l").is_not_null()
    return (
        visits.sort("patient_id", "visit_date")
        .with_columns(das28_crp().alias("crp"), das28_esr().alias("esr"))
        .with_columns(das=pl.when(on_crp).then("crp").otherwise("esr"),
                      before=pl.when(on_crp).then(prev("crp")).otherwise(prev("esr")))
        .with_columns(flare=((pl.col("das") - pl.col("before")) > 1.2)
                      | ((pl.col("before") >= 3.2) & ((pl.col("das") - pl.col("before")) > 0.6)))
    )


def _escalations(treatments: pl.DataFrame) -> pl.DataFrame:
    """Glucocorticoid starts with no DMARD start within 14 days: patient_id, date."""
    gc = treatments.filter(pl.col("drug").is_in(GLUCOCORTICOIDS)).select("patient_id", date="start_date").unique()
    dmard = treatments.filter(~pl.col("drug").is_in(GLUCOCORTICOIDS)).select("patient_id", dmard="start_date")
    near = (gc.join(dmard, on="patient_id")
            .filter((pl.col("dmard") - pl.col("date")).dt.total_days().abs() <= 14).select("patient_id", "date"))
    return gc.join(near, on=["patient_id", "date"], how="anti")


def _flare_label(sim: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """patient_id, date, label for every wearable day followed for 28 more days (the reference label)."""
    events = pl.concat([
        _visit_das28(sim["visits"]).filter("flare").select("patient_id", date="visit_date"),
        _escalations(sim["treatments"]),
    ]).unique().sort("patient_id", "date").rename({"date": "event"})
    days = sim["wearables"].select("patient_id", "date").with_columns(
        end=pl.col("date").max().over("patient_id"), after=pl.col("date") + dt.timedelta(days=1))
    return (
        days.filter(pl.col("date") + HORIZON <= pl.col("end")).sort("patient_id", "after")
        .join_asof(events, left_on="after", right_on="event", by="patient_id", strategy="forward",
                   check_sortedness=False)
        .select("patient_id", "date",
                label=pl.col("event").is_not_null() & (pl.col("event") <= pl.col("date") + HORIZON))
    )


def test_same_seed_same_frames():
    a = simulate(300, seed=3, scenario=WEARERS, progress=False)
    b = simulate(300, seed=3, scenario=WEARERS, progress=False)
    c = simulate(300, seed=4, scenario=WEARERS, progress=False)
    for name in a:
        assert_frame_equal(a[name], b[name])
    assert not a["flares"].equals(c["flares"]) and not a["flare_oracle"].equals(c["flare_oracle"])


def test_every_table_still_follows_the_contract(sim):
    report = validate_tables({t: sim[t] for t in REGISTRY_TABLES}, today=TODAY).report
    assert report.ok and report.n_warnings == 0, report.to_text()


def test_flare_visits_exist_and_most_meet_the_clinical_definition(sim):
    fl = sim["flares"]
    assert fl.height > 1000
    lead = (fl["flare_visit_date"] - fl["onset_date"]).dt.total_days()
    assert lead.min() >= 5 and lead.max() <= 21
    assert fl["das28_increase"].is_between(1.0, 2.2).all()
    assert 0.55 < fl["escalated"].mean() < 0.65
    at_visits = _visit_das28(sim["visits"]).join(
        fl.select("patient_id", visit_date="flare_visit_date").unique(), on=["patient_id", "visit_date"])
    assert at_visits.height == fl.select("patient_id", "flare_visit_date").n_unique()  # every flare has its visit
    share = at_visits["flare"].drop_nulls().mean()
    assert share > 0.7, share


def test_escalations_are_glucocorticoid_courses_never_near_a_dmard_start(sim):
    escalated = sim["flares"].filter("escalated").select("patient_id", date="flare_visit_date").unique()
    gc = sim["treatments"].filter(pl.col("drug").is_in(GLUCOCORTICOIDS))
    courses = escalated.join(gc, left_on=["patient_id", "date"], right_on=["patient_id", "start_date"])
    assert courses.height == escalated.height
    assert (courses["stop_reason"].is_null() | (courses["stop_reason"] == "other")).all()
    days = (courses["stop_date"] - courses["date"]).dt.total_days().drop_nulls()
    assert days.min() >= 28 and days.max() <= 56
    # The registry rule tells escalations from bridging: exactly the escalated flare visits.
    assert_frame_equal(_escalations(sim["treatments"]).sort("patient_id", "date"), escalated.sort("patient_id", "date"))


def test_wearables_show_the_flare_lead_up(sim):
    """Steps fall and pain rises over the week before a flare visit, against days 29-56 before it."""
    w = sim["wearables"]
    days = (
        sim["flares"].select("patient_id", "flare_visit_date").join(w, on="patient_id")
        .with_columns(before=(pl.col("flare_visit_date") - pl.col("date")).dt.total_days())
        .with_columns(window=pl.when(pl.col("before").is_between(1, 7)).then(pl.lit("near"))
                      .when(pl.col("before").is_between(29, 56)).then(pl.lit("far")))
        .drop_nulls("window")
    )
    means = (days.group_by("patient_id", "flare_visit_date", "window").agg(pl.col("steps", "pain_0_10").mean())
             .pivot(on="window", index=["patient_id", "flare_visit_date"], values=["steps", "pain_0_10"]).drop_nulls())
    assert means.height > 300
    assert means["steps_near"].mean() < 0.92 * means["steps_far"].mean()
    assert means["pain_0_10_near"].mean() > means["pain_0_10_far"].mean() + 0.5


def _share_in_runs(w: pl.DataFrame, column: str, at_least: int) -> float:
    """Share of the days missing ``column`` that lie in a run of at least ``at_least`` such days."""
    runs = (
        w.sort("patient_id", "date").with_columns(miss=pl.col(column).is_null())
        .with_columns(run=(pl.col("miss") != pl.col("miss").shift(1).over("patient_id")).fill_null(True)
                      .cum_sum().over("patient_id"))
        .filter("miss").group_by("patient_id", "run").len()
    )
    return runs.filter(pl.col("len") >= at_least)["len"].sum() / runs["len"].sum()


def test_nonwear_and_missing_reports_come_in_runs_and_partial_wear_days_exist(sim):
    w = sim["wearables"]
    assert abs(w["steps"].null_count() / w.height - WEARERS.wearables_nonwear) < 0.01
    # Scattered days alone (8 %, 20 %) would put about 1 % and 10 % of them in runs of 3 or more.
    assert _share_in_runs(w, "steps", 3) > 0.4
    assert _share_in_runs(w, "pain_0_10", 3) > 0.35
    assert w.filter(pl.col("steps").is_null())["sleep_min"].null_count() == w["steps"].null_count()
    partial = w.filter(pl.col("steps").is_not_null() & pl.col("sleep_min").is_null())
    worn = w.height - w["steps"].null_count()
    assert abs(partial.height / worn - WEARERS.wearables_partial_wear) < 0.01
    assert partial["resting_hr_bpm"].null_count() == partial.height
    full = w.filter(pl.col("sleep_min").is_not_null())
    assert partial["steps"].median() < 0.2 * full["steps"].median()


def test_device_changes_shift_levels():
    """Across a device change, steps and resting heart rate move by far more than across any other day."""
    n, n_days = 3_000, 180
    days = np.broadcast_to(20_000 + np.arange(n_days), (n, n_days))
    w = simulate_wearables(np.random.default_rng(0), np.arange(n), days, np.full((n, n_days), 3.0),
                           Scenario.default().replace(wearables_device_change=0.5, wearables_nonwear=0.0,
                                                      wearables_partial_wear=0.0))
    after = w["device_changed"].reshape(n, n_days)
    changed = after.any(axis=1)
    assert abs(changed.mean() - 0.5) < 0.05
    split = np.where(changed, after.argmax(axis=1), n_days // 2)
    middle = (split >= 30) & (split <= n_days - 30)
    later = np.arange(n_days)[None, :] >= split[:, None]

    def jump(x: np.ndarray) -> np.ndarray:
        x = x.reshape(n, n_days)
        return np.abs(np.nanmean(np.where(later, x, np.nan), 1) - np.nanmean(np.where(later, np.nan, x), 1))

    for x in (np.log(w["steps"]), w["resting_hr_bpm"]):
        j = jump(x)
        assert j[changed & middle].mean() > 1.8 * j[~changed & middle].mean()


def test_flare_oracle_rows_and_range(sim):
    o, w = sim["flare_oracle"], sim["wearables"]
    assert_frame_equal(o.select("patient_id", "date"), w.select("patient_id", "date"))
    assert o["p_flare_28d"].drop_nulls().is_between(0, 1).all()
    unlabelled = o["date"] + HORIZON > o.select(pl.col("date").max().over("patient_id")).to_series()
    assert (o["p_flare_28d"].is_null() == unlabelled).all()


def test_flare_oracle_is_calibrated_and_discriminates(sim):
    """Mean oracle vs observed label per oracle decile (equal counts) within 0.03; AUROC above 0.85."""
    d = _flare_label(sim).join(sim["flare_oracle"], on=["patient_id", "date"], how="left")
    assert d["p_flare_28d"].null_count() == 0 and d.height > 300_000
    y, p = d["label"].to_numpy(), d["p_flare_28d"].to_numpy()
    assert abs(y.mean() - p.mean()) < 0.01
    order = np.argsort(p, kind="stable")
    for part in np.array_split(order, 10):
        assert abs(y[part].mean() - p[part].mean()) < 0.03, (p[part].mean(), y[part].mean())
    assert roc_auc_score(y, p) > 0.85


def test_refractory_period_must_cover_the_label_horizon():
    with pytest.raises(ValueError, match="flare_refractory_days"):
        simulate(50, seed=1, scenario=Scenario.default().replace(flare_refractory_days=20), progress=False)
