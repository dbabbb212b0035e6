"""The therapy comparison and its safety flags: rules from data_schemas/, every option kept, what was unseen."""
from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from rxpredict.cohort import build_cohort
from rxpredict.compare import compare_patient, explain_option, predict_comparison
from rxpredict.explain import draw_background
from rxpredict.explain.importance import plot_png
from rxpredict.report import comparison_html, options_table, retention_chart
from rxpredict.safety import safety_flags, safety_rules
from rxpredict.schemas import load_contract
from tests.conftest import TODAY

PATIENT = {"clinical_age": 71.2, "clinical_smoking_current": 0, "clinical_smoking_former": 1, "clinical_rf": 0,
           "clinical_acpa": 0}


def test_rules_cover_the_clinical_reference_and_name_known_options():
    rules = {r.id: r for r in safety_rules()}
    assert {"jaki_age", "jaki_smoking", "latent_tb", "tnfi_heart_demyelination", "rituximab_hbv",
            "rituximab_seronegative", "mtx_pregnancy_liver_kidney"} <= set(rules)
    assert all(set(r.options) <= set(load_contract().option_names) for r in rules.values())


def test_recorded_risks_raise_cautions_with_their_values_and_checks_always_show():
    flags = safety_flags(PATIENT)
    cautions = flags.filter(pl.col("kind") == "caution")
    assert set(cautions["flag"]) == {"jaki_age", "jaki_smoking", "rituximab_seronegative"}
    assert "Age 71:" in cautions.filter(pl.col("flag") == "jaki_age")["message"][0]
    assert flags["kind"].to_list() == sorted(flags["kind"].to_list())  # cautions first
    checks = flags.filter(pl.col("kind") == "check")
    assert set(checks.filter(pl.col("flag") == "latent_tb")["therapy"]) == {"tnfi", "il6i", "abatacept",
                                                                             "rituximab", "jaki"}
    young = safety_flags({**PATIENT, "clinical_age": 40.0, "clinical_smoking_former": 0, "clinical_rf": 1})
    assert young.filter(pl.col("kind") == "caution").is_empty()


@pytest.mark.parametrize("unknown", [None, math.nan])
def test_an_unrecorded_feature_raises_no_caution(unknown):
    flags = safety_flags({**PATIENT, "clinical_age": unknown, "clinical_rf": unknown})
    assert {"jaki_age", "rituximab_seronegative"}.isdisjoint(flags["flag"])


def test_a_patient_comparison_keeps_every_option_best_first(trained_bundle):
    model, survival, registry, patient, at = trained_bundle
    c = compare_patient(model, survival, registry, patient, at)
    assert c.options["therapy"].sort().to_list() == sorted(model.options_)
    assert c.options["p_response"].to_list() == sorted(c.options["p_response"].to_list(), reverse=True)
    assert (c.options["p_response_low"] <= c.options["p_response"]).all()
    assert {"p_rrp", "p_stop_1y", "median_retention_days", "support", "ood"} <= set(c.options.columns)
    assert c.retention_curves is not None and set(c.retention_curves["therapy"]) == set(model.options_)
    assert not c.flags.filter(pl.col("therapy") == "jaki").is_empty()  # at least the checks
    direct = predict_comparison(model, survival, c.row)
    assert direct.equals(c.options)
    assert c.index_date == at and c.row.height == 1
    with pytest.raises(ValueError):
        compare_patient(model, survival, registry, "nobody", at)


@pytest.fixture(scope="module")
def trained_bundle():
    from rxpredict.models.response import ResponseModel
    from rxpredict.registry import Registry
    from rxpredict.simulate import simulate
    from rxpredict.survival import ProgressionModel, RetentionModel
    from rxpredict.survival.persist import SurvivalModels

    registry = Registry.from_tables(simulate(1_000, seed=5, progress=False), today=TODAY)
    cohort = build_cohort(registry).frame
    model = ResponseModel(seed=0, epochs=3, n_members=2, progress=False).fit(cohort)
    survival = SurvivalModels(ProgressionModel().fit(cohort), RetentionModel(progress=False).fit(cohort))
    patient = cohort["patient_id"][0]
    return model, survival, registry, patient, dt.date(2024, 6, 1)


def test_the_table_and_report_show_the_comparisons_numbers(trained_bundle):
    model, survival, registry, patient, at = trained_bundle
    c = compare_patient(model, survival, registry, patient, at)
    table = options_table(c, survival.retention.horizon_days)
    assert table.height == len(model.options_)
    best = c.options.row(0, named=True)
    assert table["P(response)"][0] == (f"{100 * best['p_response']:.0f}% ({100 * best['p_response_low']:.0f}%–"
                                       f"{100 * best['p_response_high']:.0f}%)")
    assert table["rapid progression"][0] == f"{100 * best['p_rrp']:.0f}%"
    model.background_ = draw_background(model, build_cohort(registry).frame)
    focus = explain_option(model, c, best["therapy"])
    assert len(focus.reasons) == 3 and set(focus.by_modality["block"]) >= {"clinical", "genetic", "imaging"}
    png = plot_png(focus.explanation, "waterfall")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    page = comparison_html(c, model_name="test <model>", focus=focus, waterfall_png=png,
                           retention_horizon_days=survival.retention.horizon_days)
    assert page.startswith("<!DOCTYPE html>") and "test &lt;model&gt;" in page and "<script" not in page
    assert all(r.replace("'", "&#x27;") in page for r in focus.reasons) and "data:image/png;base64," in page
    assert table["P(response)"][0] in page and "Screen for latent tuberculosis" in page
    assert retention_chart(c).to_dict()["mark"]["type"] == "line"

