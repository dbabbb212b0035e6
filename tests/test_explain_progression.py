"""SHAP values of the progression model's p_rrp: additivity, shap's own DeepLIFT, missing radiographs, wording."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import shap
import torch
from shap.explainers._deep.deep_pytorch import nonlinear_1d, op_handler

from rxpredict.cohort import build_cohort
from rxpredict.exceptions import BundleError
from rxpredict.explain.importance import global_importance
from rxpredict.explain.modality import by_modality
from rxpredict.explain.progression import (_risk, draw_progression_background, explain_progression,
                                           progression_features)
from rxpredict.explain.reasons import top_reasons
from rxpredict.registry import Registry
from rxpredict.simulate import OPTIONS, simulate
from rxpredict.survival import ProgressionModel
from rxpredict.survival.persist import from_arrays, to_arrays
from tests.conftest import TODAY


@pytest.fixture(scope="module")
def fitted():
    frames = simulate(3_000, seed=41, progress=False)
    cohort = build_cohort(Registry.from_tables(frames, today=TODAY)).frame
    model = ProgressionModel().fit(cohort)
    model.background_ = draw_progression_background(model, cohort)
    rows = cohort.filter(pl.col("therapy").is_not_null()).sample(300, seed=2)
    imaged = model.has_imaging(rows)
    assert 0 < imaged.sum() < rows.height  # both submodels are explained
    return model, cohort, rows, imaged


def _p_rrp(model, rows, option, output="p_rrp"):
    frame = model.predict_options(rows)
    return frame[output].to_numpy().reshape(rows.height, len(model.options_))[:, model.options_.index(option)]


def test_values_add_up_to_p_rrp_for_every_option_output_and_contrast(fitted):
    model, _, rows, _ = fitted
    layout = progression_features(model)
    for option in OPTIONS:
        e = explain_progression(model, rows, option)
        assert e.feature_names == layout.columns_ and e.values.shape == (rows.height, len(layout.columns_))
        assert np.abs(e.base_values + e.values.sum(axis=1) - _p_rrp(model, rows, option)).max() < 1e-6
    e = explain_progression(model, rows, "tnfi", output="p_rrp_2y")
    assert np.abs(e.base_values + e.values.sum(axis=1) - _p_rrp(model, rows, "tnfi", "p_rrp_2y")).max() < 1e-6
    c = explain_progression(model, rows, "tnfi", "csdmard_mtx")
    truth = _p_rrp(model, rows, "tnfi") - _p_rrp(model, rows, "csdmard_mtx")
    assert np.abs(c.base_values + c.values.sum(axis=1) - truth).max() < 1e-6


class _Link(torch.nn.Module):
    """p = 1 - exp(-exp(eta)), an element-wise non-linearity for shap's DeepLIFT."""

    def forward(self, eta: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-torch.exp(eta))


def test_values_are_shaps_own_deeplift(fitted):
    """The same function as a torch module (linear log hazard, then the link) through shap's DeepExplainer."""
    model, _, rows, imaged = fitted
    op_handler[_Link.__name__] = nonlinear_1d
    covariates = model.design_.covariates_
    d = len(covariates)
    _, at_units = _risk(model, "with_imaging", np.vstack([np.zeros(d), np.eye(d)]), "il6i", model.first_exam_days_)
    linear = torch.nn.Linear(d, 1).double()
    with torch.no_grad():
        linear.weight[:] = torch.from_numpy(at_units[1:] - at_units[0])[None, :]
        linear.bias[:] = float(at_units[0])
    net = torch.nn.Sequential(linear, _Link())
    Z = model.design_.standardise(rows.filter(pl.Series(imaged)))[:20]
    explainer = shap.DeepExplainer(net, torch.from_numpy(model.background_))
    theirs = np.asarray(explainer.shap_values(torch.from_numpy(Z), check_additivity=False)).reshape(len(Z), d)
    ours = explain_progression(model, rows.filter(pl.Series(imaged)).head(20), "il6i")
    layout = progression_features(model)
    mine = ours.values[:, [layout.columns_.index(c) for c in covariates]]
    assert np.abs(mine - theirs).max() < 1e-8


def test_a_missing_radiograph_is_one_reason_and_imaging_reads_as_missing(fitted):
    model, _, rows, imaged = fitted
    layout = progression_features(model)
    e = explain_progression(model, rows, "jaki")
    imaging = [layout.columns_.index(c) for c in layout.blocks_["imaging"]]
    assert imaging and np.all(e.values[~imaged][:, imaging] == 0)
    mask = layout.columns_.index("mask_imaging")
    assert np.all(e.data[:, mask] == imaged) and np.all(e.values[imaged, mask] == 0)
    assert np.ptp(e.values[~imaged, mask]) == 0  # one shift: the two submodels' background means
    blocks = by_modality(e, layout)
    assert set(blocks["block"]) == {"clinical", "genetic", "imaging"}
    missing = blocks.filter((pl.col("block") == "imaging") & pl.col("missing"))
    assert missing.height == (~imaged).sum() and missing["shap"].null_count() == missing.height
    total = blocks.group_by("row").agg(pl.sum("shap") + pl.sum("absent_effect")).sort("row")
    assert np.allclose(total["shap"].to_numpy(), e.values.sum(axis=1))


def test_acpa_drives_progression_and_reasons_read_plainly(fitted):
    """The simulator's largest driver of radiographic progression is ACPA (rxpredict/simulate/effects.py)."""
    model, _, rows, _ = fitted
    layout = progression_features(model)
    e = explain_progression(model, rows, "tnfi")
    assert "clinical_acpa" in global_importance(e).head(3)["feature"].to_list()
    reasons = top_reasons(e, layout, therapy="tnfi", output="p_rrp")
    assert len(reasons) == 3 and all("risk of rapid radiographic progression under TNF" in r.sentence
                                     for r in reasons)
    c = explain_progression(model, rows.head(1), "tnfi", "csdmard_mtx")
    (first,) = top_reasons(c, layout, therapy="tnfi", versus="csdmard_mtx", output="p_rrp", n=1)
    better = "Methotrexate" if first.effect > 0 else "TNF"  # a higher risk under TNF favours methotrexate
    assert f"favours {better}" in first.sentence


def test_background_is_kept_by_the_bundle_arrays_and_required(fitted):
    model, _, rows, _ = fitted
    loaded = from_arrays(*to_arrays(model))
    assert np.array_equal(loaded.background_, model.background_)
    assert np.array_equal(explain_progression(loaded, rows, "abatacept").values,
                          explain_progression(model, rows, "abatacept").values)
    del loaded.background_
    with pytest.raises(BundleError, match="no background sample"):
        explain_progression(loaded, rows, "abatacept")
    with pytest.raises(ValueError, match="aspirin"):
        explain_progression(model, rows, "aspirin")
    with pytest.raises(ValueError, match="same option"):
        explain_progression(model, rows, "tnfi", "tnfi")
    with pytest.raises(ValueError, match="choose one of p_rrp"):
        explain_progression(model, rows, "tnfi", output="p_response")
