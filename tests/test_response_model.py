"""The response model on a small simulated registry: the estimator contract, predictions and learning."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rxpredict.cohort import build_cohort
from rxpredict.models.response import PREDICTIONS, ResponseModel
from rxpredict.registry import Registry
from rxpredict.simulate import OPTIONS, simulate
from tests.conftest import TODAY

FAST = {"epochs": 25, "patience": 5, "progress": False}


@pytest.fixture(scope="module")
def fitted():
    frames = simulate(4_000, seed=41, progress=False)
    cohort = build_cohort(Registry.from_tables(frames, today=TODAY)).frame
    test = set(cohort["patient_id"].unique().sort().sample(fraction=0.3, seed=1).to_list())
    train = cohort.filter(~pl.col("patient_id").is_in(list(test)))
    held = cohort.filter(pl.col("patient_id").is_in(list(test)) & pl.col("therapy").is_not_null()
                         & pl.col("baseline_visit_date").is_not_null())
    return ResponseModel(seed=3, **FAST).fit(train), train, held, frames["oracle"]


def test_predictions_cover_every_option_with_valid_values(fitted):
    model, _, held, _ = fitted
    pred = model.predict_options(held)
    assert pred.height == held.height * len(OPTIONS)
    assert pred.columns == ["patient_id", "index_date", "therapy", *PREDICTIONS, "support", "ood"]
    probs = pred.select("p_response", "p_good", "p_remission").to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (pred["p_good"] <= pred["p_response"] + 1e-6).all()  # good response is a kind of response
    assert set(pred["support"].unique()) <= {"ok", "low", "none"} and pred["ood"].dtype == pl.Boolean


def test_the_model_learns_what_the_oracle_knows(fitted):
    model, _, held, oracle = fitted
    joined = model.predict_options(held).join(oracle, on=["patient_id", "index_date", "therapy"], suffix="_true")
    assert np.corrcoef(joined["p_response"], joined["p_response_true"])[0, 1] > 0.4
    change = np.corrcoef(joined["expected_das28_change"], joined["expected_das28_change_true"])[0, 1]
    assert change > 0.4


def test_same_seed_same_model_and_the_estimator_contract(fitted):
    model, train, held, _ = fitted
    short = {**FAST, "epochs": 2}
    first, second = (ResponseModel(seed=5, **short).fit(train) for _ in range(2))
    assert first.predict_options(held).equals(second.predict_options(held))
    assert ResponseModel(seed=3, **FAST).seed == 3 and not hasattr(ResponseModel(), "network_")
    assert model.history_ and model.columns_[-1] == "mask_wearable"


def test_a_patient_scored_on_a_chosen_date_and_errors(fitted):
    model, _, held, _ = fitted
    one = held.head(1).with_columns(pl.lit(None, dtype=pl.String).alias("therapy"))
    assert model.predict_options(one).height == len(OPTIONS)
    with pytest.raises(RuntimeError, match="not fitted"):
        ResponseModel().predict_options(held)
    with pytest.raises(ValueError, match="too few"):
        ResponseModel(**FAST).fit(held.head(10))
