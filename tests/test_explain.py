"""SHAP explanations on a small simulated registry: additivity, what the simulator makes (ir)relevant, outputs."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import shap
import torch

from rxpredict.cohort import build_cohort
from rxpredict.exceptions import BundleError
from rxpredict.explain import draw_background, explain_all_options, explain_contrast, explain_options
from rxpredict.explain import shapley
from rxpredict.explain.importance import global_importance, save_plot
from rxpredict.explain.modality import by_modality
from rxpredict.explain.reasons import top_reasons
from rxpredict.explain.target import ExplainedOutput, network_inputs, option_outputs
from rxpredict.models.response import ResponseModel
from rxpredict.registry import Registry
from rxpredict.simulate import OPTIONS, simulate
from tests.conftest import TODAY

# Small and quick; 3,000 patients is the modest size at which seropositivity reliably stands out for rituximab.
FAST = {"epochs": 15, "patience": 5, "n_members": 2, "progress": False}
#: Genetic markers that rxpredict/simulate/effects.py never uses.
IRRELEVANT = ["genetic_rs10488631", "genetic_rs7574865"]


@pytest.fixture(scope="module")
def fitted():
    frames = simulate(3_000, seed=41, progress=False)
    cohort = build_cohort(Registry.from_tables(frames, today=TODAY)).frame
    model = ResponseModel(seed=3, **FAST).fit(cohort)
    model.background_ = draw_background(model, cohort)
    rows = cohort.filter(pl.col("therapy").is_not_null()).sample(200, seed=2)
    return model, cohort, rows


def test_values_add_up_to_the_output_for_every_option_and_contrast(fitted):
    model, _, rows = fitted
    few = rows.head(5)
    for output in ("p_response", "p_good", "p_remission", "das28_change"):
        outputs = option_outputs(model, few, output)
        for option in OPTIONS:
            e = explain_options(model, few, option, output=output)
            assert e.values.shape == (few.height, len(model.columns_)) and e.feature_names == model.columns_
            total = e.base_values + e.values.sum(axis=1)
            assert np.abs(total - outputs[:, model.options_.index(option)]).max() < 1e-4
    e = explain_contrast(model, few, "il6i", "csdmard_mtx")
    outputs = option_outputs(model, few, "p_response")
    truth = outputs[:, model.options_.index("il6i")] - outputs[:, model.options_.index("csdmard_mtx")]
    assert np.abs(e.base_values + e.values.sum(axis=1) - truth).max() < 1e-4
    assert np.isnan(e.data).any()  # raw values, missing as NaN


@pytest.mark.filterwarnings("ignore:unrecognized nn.Module")
def test_all_options_at_once_equal_one_at_a_time_and_shaps_own_loop(fitted, monkeypatch):
    model, _, rows = fitted
    few = rows.head(3)
    # two (patient, option) pairs per pass: passes end mid-patient, as they do at scale
    monkeypatch.setattr(shapley, "PASS_ROWS", 4 * len(model.background_))
    every = explain_all_options(model, few, output="p_remission")
    assert list(every) == model.options_
    for option, e in every.items():
        one = explain_options(model, few, option, output="p_remission")
        assert np.allclose(e.values, one.values, rtol=0, atol=1e-12) and np.allclose(e.base_values, one.base_values)
        assert e.values.shape == (few.height, len(model.columns_)) and np.array_equal(e.data, one.data, equal_nan=True)
    explainer = shap.DeepExplainer(ExplainedOutput(model, "p_remission", [(model.options_.index("il6i"), None)]),
                                   torch.from_numpy(model.background_))
    inputs, raw = network_inputs(model, few)
    reference = explainer.shap_values(torch.from_numpy(inputs), check_additivity=False)
    reference = shapley._fold_baseline(model, np.asarray(reference).reshape(few.height, -1), raw)
    assert np.allclose(reference, every["il6i"].values, rtol=0, atol=1e-10)


def test_irrelevant_markers_get_little_and_seropositivity_drives_rituximab(fitted):
    model, cohort, _ = fitted
    rows = cohort.filter(pl.col("therapy").is_not_null()).sample(400, seed=2)  # fewer rows rank seropositivity lower
    importance = global_importance(explain_contrast(model, rows, "rituximab", "csdmard_mtx"))
    top = importance["mean_abs_shap"][0]
    assert importance.filter(pl.col("feature").is_in(IRRELEVANT))["mean_abs_shap"].max() < 0.1 * top
    assert importance.filter(pl.col("feature").is_in(["clinical_rf", "clinical_acpa"]))["rank"].min() <= 5


def test_by_modality_adds_up_and_shows_missing_blocks_as_missing(fitted):
    model, _, rows = fitted
    e = explain_options(model, rows.head(30), "tnfi")
    blocks = by_modality(e, model)
    assert blocks.height == 30 * len(model.blocks_)
    totals = blocks.group_by("row").agg(pl.col("shap").sum() + pl.col("absent_effect").sum()).sort("row")
    assert np.allclose(totals["shap"], e.values.sum(axis=1), atol=1e-9)
    missing = blocks.filter(pl.col("missing") & (pl.col("block") != "clinical"))
    assert missing.height > 0 and missing["shap"].null_count() == missing.height
    assert missing["absent_effect"].null_count() == 0


def test_reasons_read_plainly(fitted):
    model, _, rows = fitted
    e = explain_options(model, rows.head(1), "il6i")
    reasons = top_reasons(e, model, therapy="il6i")
    assert len(reasons) == 3 and abs(reasons[0].effect) >= abs(reasons[2].effect)
    assert all("chance of response to IL-6 inhibitor by" in r.sentence for r in reasons)
    versus = top_reasons(explain_contrast(model, rows.head(1), "il6i", "tnfi"), model, therapy="il6i", versus="tnfi")
    assert all(" over " in r.sentence for r in versus)


def test_plots_are_png(fitted, tmp_path):
    model, _, rows = fitted
    e = explain_options(model, rows.head(60), "abatacept")
    for kind, explanation in (("beeswarm", e), ("bar", e), ("bar", e[0])):
        path = save_plot(explanation, tmp_path / f"{kind}{np.ndim(explanation.values)}.png", kind)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_name_what_is_wrong(fitted):
    model, _, rows = fitted
    with pytest.raises(ValueError, match="p_rrp.*choose one of p_response, p_good"):
        explain_options(model, rows.head(1), "tnfi", output="p_rrp")
    with pytest.raises(ValueError, match="p_rrp"):
        explain_all_options(model, rows.head(1), output="p_rrp")
    with pytest.raises(ValueError, match="not an option"):
        explain_options(model, rows.head(1), "aspirin")
    with pytest.raises(ValueError, match="same option"):
        explain_contrast(model, rows.head(1), "tnfi", "tnfi")


def test_bundle_round_trip_explains_identically_and_old_bundles_ask_for_a_background(fitted, tmp_path):
    from rxpredict.bundle import load_bundle, save_bundle

    model, cohort, rows = fitted
    loaded = load_bundle(save_bundle(model, tmp_path / "model"))
    first, again = (explain_contrast(m, rows.head(5), "jaki", "tnfi") for m in (model, loaded))
    assert np.array_equal(first.values, again.values) and np.array_equal(first.base_values, again.base_values)
    background = model.background_
    try:
        del model.background_
        old = load_bundle(save_bundle(model, tmp_path / "old"))
    finally:
        model.background_ = background
    assert not hasattr(old, "background_")
    with pytest.raises(BundleError, match="no background sample"):
        explain_options(old, rows.head(1), "tnfi")
    assert explain_options(old, rows.head(1), "tnfi", background=draw_background(old, cohort)).values.shape[0] == 1
