"""Explaining a model with the TabNet clinical encoder: the permutation fallback's SHAP values, and TabNet's attention."""
from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
from PIL import Image

from rxpredict.cohort import build_cohort
from rxpredict.explain import (AdditivityError, draw_background, explain_all_options, explain_contrast,
                               explain_options, shapley)
from rxpredict.explain.attention import _attention, save_attention_plot, tabnet_attention
from rxpredict.explain.target import ExplainedOutput, option_outputs
from rxpredict.models.response import ResponseModel
from rxpredict.registry import Registry
from rxpredict.simulate import simulate
from tests.conftest import TODAY

# Tiny and quick: the explainers' exactness does not depend on how well the model learnt.
FAST = {"epochs": 2, "patience": 5, "progress": False}


@pytest.fixture(scope="module")
def cohort():
    return build_cohort(Registry.from_tables(simulate(1_500, seed=41, progress=False), today=TODAY)).frame


@pytest.fixture(scope="module")
def tabnet(cohort):
    model = ResponseModel(seed=3, encoder="tabnet", n_members=2, **FAST).fit(cohort)
    model.background_ = draw_background(model, cohort, n=30)
    return model


@pytest.fixture(scope="module")
def rows(cohort):
    return cohort.filter(pl.col("therapy").is_not_null()).sample(60, seed=2)


def test_fallback_adds_up_for_every_option_and_a_contrast(tabnet, rows):
    few = rows.head(3)
    every = explain_all_options(tabnet, few)
    outputs = option_outputs(tabnet, few, "p_response")
    assert list(every) == tabnet.options_
    for option, e in every.items():
        assert e.values.shape == (few.height, len(tabnet.columns_)) and e.feature_names == tabnet.columns_
        assert np.abs(e.base_values + e.values.sum(axis=1) - outputs[:, tabnet.options_.index(option)]).max() < 1e-4
    assert np.abs(np.diff(every["tnfi"].base_values)).max() < 1e-9  # the background's mean output, for every row
    e = explain_contrast(tabnet, few, "il6i", "csdmard_mtx", output="das28_change")
    outputs = option_outputs(tabnet, few, "das28_change")
    truth = outputs[:, tabnet.options_.index("il6i")] - outputs[:, tabnet.options_.index("csdmard_mtx")]
    assert np.abs(e.base_values + e.values.sum(axis=1) - truth).max() < 1e-4
    assert np.isnan(e.data).any() and np.abs(e.values).max() > 0


def test_fallback_is_reproducible_whichever_rows_it_explains(tabnet, rows):
    few = rows.head(3)
    state = np.random.get_state()[1].copy()
    first = explain_options(tabnet, few, "jaki", output="p_remission")
    assert np.array_equal(np.random.get_state()[1], state)  # the caller's random state is left alone
    again = explain_options(tabnet, few, "jaki", output="p_remission")
    alone = explain_options(tabnet, few[1:2], "jaki", output="p_remission")
    assert np.array_equal(first.values, again.values)
    assert np.allclose(first.values[1], alone.values[0], rtol=0, atol=1e-12)
    together = explain_all_options(tabnet, few, output="p_remission")["jaki"]
    assert np.allclose(first.values, together.values, rtol=0, atol=1e-12)


def test_fallback_values_that_miss_the_output_are_refused(tabnet, rows, monkeypatch):
    def other_model(model):
        changed = copy.copy(model)
        changed.change_scale_ = 2 * model.change_scale_
        return changed

    monkeypatch.setattr(shapley, "whole_batches", other_model)
    with pytest.raises(AdditivityError, match="miss the model's das28_change"):
        explain_options(tabnet, rows.head(1), "tnfi", output="das28_change")


def test_mlp_models_are_still_explained_by_deeplift(cohort, rows, monkeypatch):
    mlp = ResponseModel(seed=3, n_members=1, **FAST).fit(cohort)
    mlp.background_ = draw_background(mlp, cohort, n=30)

    def refuse(*args):
        raise AssertionError("the permutation fallback was used for an MLP model")

    monkeypatch.setattr(shapley, "_permutation_values", refuse)
    e = explain_options(mlp, rows.head(2), "tnfi")
    assert np.abs(e.base_values + e.values.sum(axis=1) - option_outputs(mlp, rows.head(2), "p_response")[
        :, mlp.options_.index("tnfi")]).max() < 1e-4
    with pytest.raises(ValueError, match="attention masks exist only for a model with encoder='tabnet'"):
        tabnet_attention(mlp, rows)


def test_tabnet_models_are_refused_by_deeplift_with_a_reason(tabnet):
    with pytest.raises(ValueError, match="DeepLIFT cannot split.*sparsemax"):
        ExplainedOutput(tabnet, "p_response", [(0, None)])


def test_attention_shares_sum_to_one(tabnet, rows):
    columns, importance, masks = _attention(tabnet, rows)
    assert columns == [*tabnet.blocks_["clinical"], "mask_clinical"]
    spoken = ~np.isnan(importance[..., 0])
    assert spoken.any() and np.allclose(importance[spoken].sum(axis=1), 1)
    assert np.allclose(masks[0][:, spoken[0]].sum(axis=-1), 1, atol=1e-5)  # sparsemax: each step's mask
    no_visit = rows["baseline_visit_date"].is_null().to_numpy()
    assert no_visit.any() and np.isnan(importance[:, no_visit]).all()  # a zeroed embedding has no attention
    attention = tabnet_attention(tabnet, rows)
    assert attention.columns == ["rank", "feature", "title", "importance", "step_1", "step_2", "step_3"]
    assert attention.height == len(columns) and attention["rank"].to_list() == list(range(1, len(columns) + 1))
    assert (attention["importance"] >= 0).all() and abs(attention["importance"].sum() - 1) < 1e-9
    assert attention["importance"].is_sorted(descending=True) and attention["title"].null_count() == 0
    assert np.allclose(attention.select("^step_.*$").sum().to_numpy(), 1, atol=1e-5)


def test_attention_plot_is_a_png(tabnet, rows, tmp_path):
    path = save_attention_plot(tabnet, rows, tmp_path / "attention.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG" and image.size[1] > image.size[0]
    with pytest.raises(ValueError, match="PNG"):
        save_attention_plot(tabnet, rows, tmp_path / "attention.svg")
