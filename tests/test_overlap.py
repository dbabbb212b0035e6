"""Propensity and out-of-distribution models, checked against the simulator's true prescribing probabilities."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from rxpredict.cohort import build_cohort
from rxpredict.models import OutOfDistribution, PropensityModel, feature_matrix, model_columns
from rxpredict.registry import Registry
from rxpredict.simulate import OPTIONS, simulate
from tests.conftest import TODAY


@pytest.fixture(scope="module")
def data():
    frames = simulate(6_000, seed=31, progress=False)
    cohort = build_cohort(Registry.from_tables(frames, today=TODAY)).frame
    episodes = cohort.filter(pl.col("baseline_visit_date").is_not_null()).join(
        frames["oracle"].filter("given").select("patient_id", "index_date", "therapy"),
        on=["patient_id", "index_date", "therapy"], how="semi")
    true_p = frames["oracle"].pivot(on="therapy", index=["patient_id", "index_date"], values="p_prescribed")
    episodes = episodes.join(true_p, on=["patient_id", "index_date"], how="left", suffix="_true")
    columns = model_columns(cohort)
    return episodes, columns


def test_propensity_recovers_the_true_prescribing_probabilities(data):
    episodes, columns = data
    X = feature_matrix(episodes, columns)
    half = episodes.height // 2
    model = PropensityModel().fit(X[:half], episodes["therapy"][:half].to_list())
    p = model.predict_proba(X[half:])
    assert p.shape == (X.shape[0] - half, len(OPTIONS)) and np.allclose(p.sum(axis=1), 1)
    given = episodes["therapy"][half:].to_numpy()
    aucs = [roc_auc_score(given == o, p[:, j]) for j, o in enumerate(OPTIONS) if 0 < (given == o).sum() < given.size]
    assert np.mean(aucs) > 0.7
    true = episodes[half:].select(OPTIONS).to_numpy()
    assert np.corrcoef(true.ravel(), p.ravel())[0, 1] > 0.8


def test_support_flags_and_an_option_never_seen(data):
    episodes, columns = data
    X = feature_matrix(episodes, columns)
    keep = (episodes["therapy"] != "jaki").to_numpy()
    model = PropensityModel(low_support=0.05, no_support=0.01).fit(X[keep], episodes["therapy"].filter(keep).to_list())
    flags = model.support(X)
    jak = OPTIONS.index("jaki")
    assert set(flags[:, jak]) == {"none"} and model.predict_proba(X)[:, jak].max() == 0
    p = model.predict_proba(X)
    assert ((flags == "ok") == (p >= 0.05)).all() and ((flags == "none") == (p < 0.01)).all()


def test_propensity_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        PropensityModel().predict_proba(np.zeros((2, 3)))
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = ["tnfi", "il6i"] * 20
    model = PropensityModel().fit(X, y)
    with pytest.raises(ValueError, match="3"):
        model.predict_proba(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="not options"):
        PropensityModel().fit(X, ["tnfi", "aspirin"] * 20)
    with pytest.raises(ValueError, match="two different options"):
        PropensityModel().fit(X, ["tnfi"] * 40)
    with pytest.raises(ValueError, match="entries"):
        PropensityModel().fit(X, y[:10])


def test_out_of_distribution_flags_unusual_patients(data):
    episodes, columns = data
    X = feature_matrix(episodes, columns)
    guard = OutOfDistribution(quantile=0.99).fit(X)
    assert guard.predict(X).mean() == pytest.approx(0.01, abs=0.005)
    odd = X[:1].copy()
    odd[0, columns.index("clinical_crp_mg_l")] = 400.0
    odd[0, columns.index("clinical_age")] = 101.0
    odd[0, columns.index("clinical_tjc28")] = 28.0
    assert guard.predict(odd)[0] and not guard.predict(np.nanmedian(X, axis=0, keepdims=True))[0]
    beyond = guard.out_of_range(odd)[0]
    assert beyond[columns.index("clinical_crp_mg_l")] and not beyond[columns.index("clinical_sjc28")]
    assert not guard.out_of_range(X).any()  # no training patient lies beyond the training range
    with pytest.raises(RuntimeError, match="not fitted"):
        OutOfDistribution().score(X)


def test_feature_matrix_keeps_the_training_columns(data):
    episodes, columns = data
    X = feature_matrix(episodes.drop(columns[0]), columns)
    assert X.shape == (episodes.height, len(columns)) and np.isnan(X[:, 0]).all()
    assert columns[-4:] == ["mask_clinical", "mask_genetic", "mask_imaging", "mask_wearable"]


@pytest.mark.parametrize("labels", [["tnfi", "il6i", "jaki"], ["tnfi", "il6i"]])
def test_array_prediction_equals_scikit_learns(labels):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = [labels[i % len(labels)] if rng.random() < 0.5 else labels[int(x > 0)] for i, x in enumerate(X[:, 0])]
    ours = PropensityModel(options=labels).fit(X, y)
    theirs = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                           LogisticRegression()).fit(X, y)
    expected = theirs.predict_proba(X)[:, [list(theirs.classes_).index(o) for o in labels]]
    assert np.allclose(ours.predict_proba(X), expected, atol=1e-10)
