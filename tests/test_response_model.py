"""The response model on a small simulated registry: the estimator contract, predictions and learning."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl
import pytest

from rxpredict.cohort import build_cohort
from rxpredict.models.response import PREDICTIONS, ResponseModel
from rxpredict.registry import Registry
from rxpredict.simulate import OPTIONS, simulate
from tests.conftest import TODAY

FAST = {"epochs": 25, "patience": 5, "n_members": 3, "progress": False}


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
    probs = pred.select(pl.col("^p_.*$")).to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (pred["p_good"] <= pred["p_response"] + 1e-6).all()  # good response is a kind of response
    for name in ("p_response", "p_good", "p_remission"):
        assert (pred[f"{name}_low"] <= pred[name] + 1e-9).all() and (pred[name] <= pred[f"{name}_high"] + 1e-9).all()
    assert (pred["p_response_high"] - pred["p_response_low"]).mean() > 0.01  # the members disagree somewhat
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
    assert len(model.history_) == model.n_members == len(model.networks_) and model.columns_[-1] == "mask_wearable"


def test_a_patient_scored_on_a_chosen_date_and_errors(fitted):
    model, _, held, _ = fitted
    one = held.head(1).with_columns(pl.lit(None, dtype=pl.String).alias("therapy"))
    assert model.predict_options(one).height == len(OPTIONS)
    with pytest.raises(RuntimeError, match="not fitted"):
        ResponseModel().predict_options(held)
    with pytest.raises(ValueError, match="too few"):
        ResponseModel(**FAST).fit(held.head(10))


def test_bundle_round_trip_gives_identical_predictions(fitted, tmp_path):
    from rxpredict.bundle import load_bundle, save_bundle

    model, train, held, _ = fitted
    path = save_bundle(model, tmp_path / "model", cohort=train, metrics={"auroc": 0.7}, evaluation=held)
    assert sorted(p.name for p in path.iterdir()) == [
        "MODEL_CARD.md", "arrays.npz", "config.json", "manifest.json", "metrics.json", "weights.pt"]
    loaded = load_bundle(path)
    assert loaded.predict_options(held).equals(model.predict_options(held))
    card = (path / "MODEL_CARD.md").read_text()
    assert "## Intended use" in card and "| seropositive |" in card and "auroc: 0.7" in card
    config = json.loads((path / "config.json").read_text())
    assert config["schema_version"] == "1.0.0" and config["versions"]["torch"]
    assert config["training"]["labelled"] == train.filter(pl.col("response").is_not_null()
                                                          & pl.col("therapy").is_not_null()).height


def test_tampered_or_foreign_bundles_are_refused(fitted, tmp_path):
    from rxpredict.bundle import load_bundle, save_bundle
    from rxpredict.exceptions import BundleError

    model, *_ = fitted
    path = save_bundle(model, tmp_path / "model")
    with pytest.raises(BundleError, match="not empty"):
        save_bundle(model, path)
    weights = path / "weights.pt"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(BundleError, match="weights.pt was changed"):
        load_bundle(path)
    weights.write_bytes(original)
    config = json.loads((path / "config.json").read_text())

    def rewrite(**changes) -> None:  # a consistent bundle with another config
        (path / "config.json").write_text(json.dumps(config | changes))
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["files"]["config.json"] = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()
        (path / "manifest.json").write_text(json.dumps(manifest))

    rewrite(schema_version="0.9.0")
    with pytest.raises(BundleError, match="data contract v0.9.0"):
        load_bundle(path)
    rewrite(response_format=1)  # a bundle of the earlier network (four outputs per option)
    with pytest.raises(BundleError, match="format 1, written by an older rxpredict.*train it again"):
        load_bundle(path)
    (path / "arrays.npz").unlink()
    with pytest.raises(BundleError, match="arrays.npz is missing"):
        load_bundle(path)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_missing_modalities_are_predicted_from_what_exists(fitted):
    model, _, held, _ = fitted
    genetic = [c for c in held.columns if c.startswith("genetic_")]
    imaging = [c for c in held.columns if c.startswith("imaging_")]
    assert genetic and imaging
    without = held.with_columns(pl.lit(None).cast(held.schema[c]).alias(c) for c in genetic + imaging).with_columns(
        pl.lit(0).cast(held.schema["mask_genetic"]).alias("mask_genetic"),
        pl.lit(0).cast(held.schema["mask_imaging"]).alias("mask_imaging"))
    dropped = held.drop(genetic + imaging + ["mask_genetic", "mask_imaging"])  # a registry with no such tables
    full, missing, absent = (model.predict_options(f) for f in (held, without, dropped))
    assert missing.equals(absent)  # missing columns are read as a missing block, not as zeros
    assert np.isfinite(missing["p_response"].to_numpy()).all()
    assert not np.allclose(full["p_response"].to_numpy(), missing["p_response"].to_numpy())


def test_an_option_no_similar_patient_received_has_no_support(fitted):
    _, train, held, _ = fitted
    model = ResponseModel(seed=3, **{**FAST, "n_members": 1}).fit(train.filter(pl.col("therapy") != "rituximab"))
    pred = model.predict_options(held)
    assert set(pred.filter(pl.col("therapy") == "rituximab")["support"]) == {"none"}
    given = pred.join(held.select("patient_id", "index_date", "therapy"), on=["patient_id", "index_date", "therapy"],
                      how="semi").filter(pl.col("therapy") != "rituximab")
    assert (given["support"] != "none").mean() > 0.9  # what patients like these did receive is supported


def test_tabnet_clinical_encoder_fits_saves_and_loads(fitted, tmp_path):
    from rxpredict.bundle import load_bundle, save_bundle

    _, train, held, _ = fitted
    model = ResponseModel(seed=3, encoder="tabnet", **{**FAST, "epochs": 2, "n_members": 2}).fit(train)
    pred = model.predict_options(held)
    assert pred["p_response"].is_between(0, 1).all()
    assert load_bundle(save_bundle(model, tmp_path / "tabnet")).predict_options(held).equals(pred)
    with pytest.raises(ValueError, match="encoder must be one of mlp, tabnet"):
        ResponseModel(encoder="xgboost", **FAST).fit(train)
