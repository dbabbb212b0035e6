"""Survival models of progression and retention: censoring rules, descriptives, plots, PH check, predictions."""
from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rxpredict.cohort import build_cohort
from rxpredict.registry import Registry
from rxpredict.simulate import OPTIONS, simulate
from rxpredict.survival import (
    KaplanMeierDisplay, PatientCurvesDisplay, ProgressionModel, RetentionModel, evaluate_survival, kaplan_meier,
    logrank, number_at_risk, save_figure,
)
from rxpredict.survival.data import progression_label_data, progression_time_data, retention_data
from rxpredict.survival.fitters import CHOICES, HazardModel, scaled_schoenfeld
from rxpredict.survival.persist import from_arrays, to_arrays
from rxpredict.survival.predictor import predictor_from, predictor_from_state
from rxpredict.survival.progression import PREDICTIONS as PROGRESSION_PREDICTIONS
from rxpredict.survival.retention import PREDICTIONS as RETENTION_PREDICTIONS
from tests.conftest import TODAY

KEY = ["patient_id", "index_date", "therapy"]
D = dt.date(2020, 1, 1)


def _episodes(**columns) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    return pl.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "index_date": [D] * n,
                         "baseline_visit_date": [D] * n, **columns})


# ----- censoring rules on hand-made cohorts ---------------------------------------------------------------

def test_retention_events_and_competing_reasons():
    cohort = _episodes(therapy=["tnfi", "tnfi", "jaki", "il6i", None, "abatacept"],
                       retention_days=[100, 200, 300, 0, 50, 400],
                       retention_event=["inefficacy", "adverse_event", "censored", "inefficacy", None, "censored"])
    anything = retention_data(cohort)  # the row without a therapy is not an episode
    assert anything["patient_id"].to_list() == ["P0", "P1", "P2", "P3", "P5"]
    assert anything["event"].to_list() == [True, True, False, True, False]
    assert anything["duration"].to_list() == [100.0, 200.0, 300.0, 0.5, 400.0]  # a same-day stop is half a day
    inefficacy = retention_data(cohort, "inefficacy")  # an adverse-event stop is censored at its date
    assert inefficacy["event"].to_list() == [True, False, False, True, False]
    adverse = retention_data(cohort, "adverse_event")
    assert adverse["event"].to_list() == [False, True, False, False, False]
    assert adverse["duration"].to_list() == anything["duration"].to_list()


def test_bad_retention_rows_are_named():
    cohort = _episodes(therapy=["tnfi", "tnfi"], retention_days=[10, -3], retention_event=["censored", "inefficacy"])
    with pytest.raises(ValueError, match=r"row 1 \(patient P1, index 2020-01-01\): column retention_days is negative"):
        retention_data(cohort)
    cohort = _episodes(therapy=["tnfi"], retention_days=[10], retention_event=["remission"])
    with pytest.raises(ValueError, match="row 0 .* column retention_event must be one of inefficacy"):
        retention_data(cohort)
    with pytest.raises(ValueError, match="cause must be one of"):
        retention_data(cohort, "remission")
    with pytest.raises(ValueError, match=r"needs the cohort column\(s\) \['retention_event'\]"):
        retention_data(cohort.drop("retention_event"))


def test_progression_needs_a_baseline_radiograph_and_a_later_one():
    cohort = _episodes(
        therapy=["tnfi", "tnfi", "jaki", "il6i"],
        baseline_exam_date=[D - dt.timedelta(days=20), None, D - dt.timedelta(days=5), D - dt.timedelta(days=1)],
        rrp_time_days=[350, None, 700, None], rrp_event=[True, None, False, None],
        rrp_status=["observed", "no_baseline_exam", "next_exam_too_early", "no_next_exam"],
        rrp=[True, None, None, None])
    timed = progression_time_data(cohort)
    assert timed.select("patient_id", "duration", "event").rows() == [("P0", 350.0, True), ("P2", 700.0, False)]
    assert progression_label_data(cohort)["patient_id"].to_list() == ["P0"]  # only an observed status labels


# ----- descriptives and plots ----------------------------------------------------------------------------

def test_kaplan_meier_numbers_at_risk_and_logrank_by_hand():
    cohort = _episodes(therapy=["tnfi"] * 4 + ["jaki"] * 2, retention_days=[1, 2, 3, 4, 2, 5],
                       retention_event=["inefficacy", "censored", "adverse_event", "censored", "inefficacy",
                                        "censored"])
    km = kaplan_meier(cohort, "retention")
    tnfi = km.filter(pl.col("therapy") == "tnfi")
    assert tnfi["time_days"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(tnfi["survival"].to_numpy(), [1, 0.75, 0.75, 0.375, 0.375])
    assert tnfi["at_risk"].to_list() == [4, 4, 3, 2, 1] and tnfi["censored"].to_list() == [0, 0, 1, 0, 1]
    assert (km["lower_95"] <= km["survival"]).all() and (km["survival"] <= km["upper_95"]).all()
    at_risk = number_at_risk(km, [0, 2, 3.5, 10])
    assert_frame_equal(at_risk, pl.DataFrame({"therapy": ["tnfi", "jaki"], "0": [4, 2], "2": [3, 2], "3.5": [1, 1],
                                              "10": [0, 0]}), check_row_order=False)
    test = logrank(cohort, "retention")
    assert 0 <= test["p"] <= 1 and test["degrees_of_freedom"] == 1 and test["episodes"] == 6
    with pytest.raises(ValueError, match="outcome must be one of retention, progression"):
        kaplan_meier(cohort, "response")


# ----- fitted models on a simulated registry ------------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    frames = simulate(3_000, seed=11, progress=False)
    cohort = build_cohort(Registry.from_tables(frames, today=TODAY)).frame
    test = cohort["patient_id"].unique().sort().sample(fraction=0.3, seed=2)
    in_test = cohort["patient_id"].is_in(test.implode())
    held = cohort.filter(in_test & pl.col("therapy").is_not_null() & pl.col("baseline_visit_date").is_not_null())
    return cohort.filter(~in_test), held, frames["oracle"]


@pytest.fixture(scope="module")
def fitted(registry):
    train, _, _ = registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' convergence notes on the small strata
        return RetentionModel(progress=False).fit(train), ProgressionModel().fit(train)


def test_predictions_are_one_row_per_option_with_valid_values(fitted, registry):
    retention, progression = fitted
    _, held, _ = registry
    stops = retention.predict_options(held)
    assert stops.columns == [*KEY, *RETENTION_PREDICTIONS, "support", "ood"]
    assert stops.height == held.height * len(OPTIONS) and stops["therapy"].head(7).to_list() == list(OPTIONS)
    assert stops["p_stop_1y"].is_between(0, 1).all()
    # the reasons' cumulative incidences share out the overall probability of a stop
    np.testing.assert_allclose(stops["p_stop_inefficacy_1y"] + stops["p_stop_adverse_event_1y"], stops["p_stop_1y"],
                               atol=1e-9)
    assert stops["median_retention_days"].drop_nulls().is_between(0, retention.horizon_days).all()
    rrp = progression.predict_options(held)
    assert rrp.columns == [*KEY, *PROGRESSION_PREDICTIONS, "support", "ood"]
    assert rrp["p_rrp"].is_between(0, 1).all() and (rrp["p_rrp"] <= rrp["p_rrp_2y"] + 1e-12).all()
    assert set(stops["support"]) | set(rrp["support"]) <= {"ok", "low", "none"}


def test_individual_curves_are_monotone_and_match_the_summaries(fitted, registry):
    retention, progression = fitted
    one = registry[1].head(1)
    curves = retention.predict_curves(one)
    assert curves.height == len(OPTIONS) * len(retention.times_)
    for (_,), part in curves.group_by("therapy"):
        assert (np.diff(part["retention"].to_numpy()) <= 1e-12).all()
        assert (np.diff(part["cif_inefficacy"].to_numpy()) >= -1e-12).all()
    year = curves.filter(pl.col("time_days") == 365).sort("therapy")
    summary = retention.predict_options(one).sort("therapy")
    np.testing.assert_allclose(1 - year["retention"].to_numpy(), summary["p_stop_1y"].to_numpy())
    free = progression.predict_curves(one)
    assert free["rrp_free"].is_between(0, 1).all() and "time_days" in free.columns


def test_the_models_learn_what_the_oracle_knows(fitted, registry):
    retention, progression = fitted
    _, held, oracle = registry
    stops = retention.predict_options(held).join(oracle, on=KEY, suffix="_true")
    assert np.corrcoef(stops["p_stop_1y"], stops["p_stop_1y_true"])[0, 1] > 0.4
    rrp = progression.predict_options(held).join(oracle, on=KEY, suffix="_true")
    assert np.corrcoef(rrp["p_rrp"], rrp["p_rrp_true"])[0, 1] > 0.4


def test_ph_check_is_recorded_and_the_estimator_contract(fitted):
    retention, progression = fitted
    for choice in [*retention.choices_.values(), *progression.choices_.values()]:
        assert choice["fitter"] in CHOICES and "proportional hazards" in choice["reason"]
    ph = retention.models_["inefficacy"].ph_test_
    assert ph.columns == ["term", "statistic", "p", "compares_options"] and ph["compares_options"].any()
    assert retention.summary()["cause"].to_list() == ["inefficacy", "adverse_event"]
    assert RetentionModel(penalizer=0.1).get_params()["penalizer"] == 0.1
    assert not hasattr(RetentionModel(), "models_")
    with pytest.raises(RuntimeError, match="not fitted"):
        ProgressionModel().predict_options(pl.DataFrame())


def test_an_option_nobody_received_has_no_support(registry):
    train, held, _ = registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RetentionModel(progress=False).fit(train.filter(pl.col("therapy") != "rituximab"))
    pred = model.predict_options(held)
    assert set(pred.filter(pl.col("therapy") == "rituximab")["support"]) == {"none"}
    given = pred.join(held.select(KEY), on=KEY, how="semi").filter(pl.col("therapy") != "rituximab")
    assert (given["support"] != "none").mean() > 0.9


def test_patient_curves_and_km_plots_are_valid_images(fitted, registry, tmp_path):
    from matplotlib import image

    retention, progression = fitted
    train, held, _ = registry
    figures = {"km.png": KaplanMeierDisplay.from_cohort(train, "retention"),
               "km_progression.svg": KaplanMeierDisplay.from_cohort(train, "progression"),
               "patient.png": PatientCurvesDisplay.from_models(held.head(1), retention, progression)}
    for name, display in figures.items():
        display.plot()
        path = save_figure(display.figure_, tmp_path / name)
        data = path.read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert image.imread(path).shape[0] > 100
        else:
            assert b"<svg" in data[:2000]
    with pytest.raises(ValueError, match="suffix must be one of .png, .svg"):
        save_figure(figures["km.png"].figure_, tmp_path / "km.jpg")
    with pytest.raises(ValueError, match="exactly one episode"):
        PatientCurvesDisplay.from_models(held.head(2), retention)


def test_evaluation_reports_both_outcomes(fitted, registry):
    retention, progression = fitted
    _, held, oracle = registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_survival(held, progression, retention, oracle)
    assert 0.5 < report["retention"]["c_index"] < 1 and 0 <= report["retention"]["calibration_error_1y"] < 0.2
    assert 0 < report["retention"]["integrated_brier_2y"] < 0.25 and report["retention"]["rmse_p_stop_1y"] < 0.2
    assert 0.5 < report["progression"]["c_index"] < 1 and report["progression"]["rmse_p_rrp"] < 0.2


def test_saved_as_json_and_arrays_the_models_predict_identically(fitted, registry, tmp_path):
    import json

    _, held, _ = registry
    for model in fitted:
        settings, arrays = to_arrays(model)
        (tmp_path / "model.json").write_text(json.dumps(settings))  # plain JSON: no object survives but numbers
        np.savez(tmp_path / "model.npz", **arrays)
        with np.load(tmp_path / "model.npz", allow_pickle=False) as saved:
            loaded = from_arrays(json.loads((tmp_path / "model.json").read_text()), dict(saved))
        hazards = (loaded.models_.values() if isinstance(loaded, RetentionModel)
                   else [hazard for _, hazard in loaded.time_models_.values()])
        assert not any(hasattr(h, "fitter_") for h in hazards)  # no lifelines object: it predicts from arrays
        fitted = (model.models_.values() if isinstance(model, RetentionModel)
                  else [hazard for _, hazard in model.time_models_.values()])
        assert [h.interaction_scale_ for h in hazards] == [h.interaction_scale_ for h in fitted]
        before, after = model.predict_options(held), loaded.predict_options(held)
        assert_frame_equal(before.drop(pl.selectors.float()), after.drop(pl.selectors.float()))
        for column in before.select(pl.selectors.float()).columns:
            np.testing.assert_allclose(after[column].to_numpy(), before[column].to_numpy(), rtol=0, atol=1e-12)
        assert_frame_equal(model.predict_curves(held.head(3)), loaded.predict_curves(held.head(3)))
        assert_frame_equal(model.summary(), loaded.summary())
    with pytest.raises(TypeError, match="takes a ProgressionModel or RetentionModel"):
        to_arrays(HazardModel(np.ones(1), []))
    with pytest.raises(ValueError, match="unknown survival model kind 'CoxPH'"):
        from_arrays({"kind": "CoxPH"}, {})


def test_retention_reads_the_response_models_efficacy_and_needs_it_when_loaded(registry):
    from rxpredict.models.response import ResponseModel
    from rxpredict.survival.retention import EFFICACY

    train, held, _ = registry
    response = ResponseModel(seed=3, epochs=4, n_members=2, progress=False).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RetentionModel(progress=False).fit(train, efficacy=response)
    assert model.efficacy_model_ is response and all(EFFICACY in h.predictor_.columns for h in model.models_.values())
    stops = model.predict_options(held).join(response.predict_options(held), on=KEY)
    # the likelier a response under an option, the fewer stops for inefficacy on it
    assert np.corrcoef(stops["p_response"], stops["p_stop_inefficacy_1y"])[0, 1] < -0.3
    settings, arrays = to_arrays(model)
    with pytest.raises(ValueError, match="pass the response model of its bundle as efficacy"):
        from_arrays(settings, arrays)
    loaded = from_arrays(settings, arrays, efficacy=response)
    assert_frame_equal(loaded.predict_options(held), model.predict_options(held), check_exact=False, rel_tol=0, abs_tol=1e-12)


# ----- the PH machinery --------------------------------------------------------------------------------

def test_fast_scaled_schoenfeld_residuals_match_lifelines():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    duration, event, weights = rng.integers(1, 40, 300).astype(float), rng.random(300) < 0.6, rng.uniform(0.5, 2, 300)
    data = X.assign(T=duration, E=event.astype(int), w=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cox = CoxPHFitter(penalizer=0.01).fit(data, "T", "E", weights_col="w")
        reference = cox.compute_residuals(data, "scaled_schoenfeld")
    ours = scaled_schoenfeld(cox, X, duration, event, weights)
    np.testing.assert_allclose(np.sort(ours.to_numpy(), axis=0), np.sort(reference.to_numpy(), axis=0), atol=1e-10)


def test_a_failed_ph_test_compares_cox_with_the_remedy_on_held_out_patients():
    rng = np.random.default_rng(1)
    n = 600
    option = rng.random(n) < 0.5
    # option 1 has an early hazard peak and option 0 a late one: the hazards cross, PH fails
    duration = np.where(option, rng.exponential(60, n), 200 + rng.exponential(60, n))
    X = pd.DataFrame({"age": rng.normal(size=n), "option_b": option.astype(float)})
    model = HazardModel(np.full(2, 0.01), ["option_b"], ph_remedy="weibull_aft", check_days=150).fit(
        X, duration, np.ones(n, bool), np.ones(n), np.where(option, "b", "a"), np.arange(n).astype(str))
    assert model.ph_test_.filter(pl.col("term") == "option_b")["p"].item() < 0.01
    assert model.choice_ in {"cox", "weibull_aft"} and "held-out Brier at 150 days" in model.reason_
    assert model.survival(X.head(3), np.array([0.0, 150.0]), np.array(["a", "b", "a"])).shape == (3, 2)
    with pytest.raises(ValueError, match="ph_remedy must be one of stratify, weibull_aft"):
        HazardModel(np.full(2, 0.01), ["option_b"], ph_remedy="spline").fit(
            X, duration, np.ones(n, bool), np.ones(n), np.where(option, "b", "a"), np.arange(n).astype(str))


def _interaction_data(strength: float, n: int = 2000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Exponential times whose log hazard is age + strength x age x option b, with 8 idle interactions."""
    rng = np.random.default_rng(5)
    option = (rng.random(n) < 0.5).astype(float)
    X = pd.DataFrame({"age": rng.normal(size=n), "option_b": option})
    X["b_x_age"] = option * X["age"]
    for j in range(8):
        X[f"noise{j}"] = rng.normal(size=n)
        X[f"b_x_noise{j}"] = option * X[f"noise{j}"]
    duration = rng.exponential(100 * np.exp(-(X["age"] + strength * X["b_x_age"]).to_numpy()))
    return X, np.minimum(duration, 150.0) + 0.5, duration < 150.0


@pytest.mark.parametrize("strength, scale", [(1.0, 1.0), (0.0, 100.0)])
def test_the_interactions_shrinkage_is_chosen_on_held_out_patients(strength, scale):
    X, duration, event = _interaction_data(strength)
    interactions = [c for c in X.columns if "_x_" in c]
    model = HazardModel(np.full(X.shape[1], 1.0), ["option_b", *interactions], interaction_scales=(1.0, 10.0, 100.0),
                        check_days=100).fit(X, duration, event, np.ones(len(X)), np.where(X["option_b"] > 0, "b", "a"),
                                            np.arange(len(X)).astype(str))
    assert model.interaction_scale_ == scale  # a real interaction is kept; idle ones are shrunk away
    assert model.reason_.startswith(f"interactions' penalty x{scale:g} (held-out partial log-likelihood")
    shrunk = model.lifelines_penalties_[[X.columns.get_loc(c) for c in interactions]]
    np.testing.assert_allclose(shrunk, scale / len(X))
    assert model.lifelines_penalties_[X.columns.get_loc("age")] == pytest.approx(1 / len(X))  # main effects as given
    fixed = HazardModel(np.full(X.shape[1], 1.0), ["option_b", *interactions]).fit(
        X, duration, event, np.ones(len(X)), np.where(X["option_b"] > 0, "b", "a"), np.arange(len(X)).astype(str))
    assert fixed.interaction_scale_ == 1.0 and not fixed.reason_.startswith("interactions")
    with pytest.raises(ValueError, match="interaction_scales must be positive factors"):
        HazardModel(np.ones(X.shape[1]), ["option_b", *interactions], interaction_scales=(0.0, 1.0)).fit(
            X, duration, event, np.ones(len(X)), np.where(X["option_b"] > 0, "b", "a"), np.arange(len(X)).astype(str))


@pytest.mark.parametrize("choice", CHOICES)
def test_array_predictors_match_lifelines_row_by_row(choice):
    from lifelines import CoxPHFitter, WeibullAFTFitter

    rng = np.random.default_rng(3)
    n = 300
    option = rng.choice(["c", "a", "b"], n)  # strata not in sorted order: lifelines groups its columns by stratum
    X = pd.DataFrame({"age": rng.normal(size=n), "option_b": (option == "b") * 1.0, "option_c": (option == "c") * 1.0})
    data = X.assign(T=rng.exponential(100, n).round() + 0.5, E=(rng.random(n) < 0.7).astype(int),
                    w=rng.uniform(0.5, 2, n))
    times = np.array([0.0, 10.0, 50.0, 365.0, 5000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if choice == "cox":
            fitter = CoxPHFitter(penalizer=0.01).fit(data, "T", "E", weights_col="w")
        elif choice == "cox_stratified":
            fitter = CoxPHFitter(penalizer=0.01, strata=["s"]).fit(
                data.drop(columns=["option_b", "option_c"]).assign(s=option), "T", "E", weights_col="w")
        else:
            fitter = WeibullAFTFitter(penalizer=0.01).fit(data, "T", "E", weights_col="w",
                                                          ancillary=X[["option_b", "option_c"]])
        expected = fitter.predict_survival_function(X.assign(s=option), times=times)[X.index].to_numpy().T
    predictor = predictor_from(fitter)
    np.testing.assert_allclose(predictor.survival(X, times, option), expected, rtol=0, atol=1e-12)
    again = predictor_from_state(*predictor.to_state())
    np.testing.assert_array_equal(again.survival(X, times, option), predictor.survival(X, times, option))
    if choice == "cox_stratified":
        with pytest.raises(ValueError, match=r"stratum \['d'\] was not in the training data"):
            predictor.survival(X.head(1), times, np.array(["d"]))
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['age'\]"):
        predictor.survival(X.drop(columns="age"), times, option)
