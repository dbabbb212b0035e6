"""The covariates a survival model sees: a modest set of key features, standardised, plus therapy options.

Each model names its key covariates (clinically chosen, not tuned to a
simulator); those the cohort lacks are skipped. A feature is standardised
with the mean and SD of its observed values and a missing value becomes the
mean (z = 0), as in the response model, with the block masks as covariates so
that a missing block can shift the risk. The therapy option enters as
indicators against the reference (the most common option in training) and as
option x covariate interactions for a few effect modifiers; an option absent
from training has no column (its predictions are the reference's, flagged
``support == "none"``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl

from rxpredict.models.design import feature_matrix, observed_moments
from rxpredict.models.overlap import PropensityModel

#: z-scores are clipped here: a value far beyond the training data saturates instead of extrapolating.
Z_LIMIT = 5.0


def zscores(X: np.ndarray, mean: np.ndarray | float, scale: np.ndarray | float) -> np.ndarray:
    """(X - mean) / scale with a missing value at the mean (0) and clipped to +-Z_LIMIT."""
    return np.clip(np.nan_to_num((X - mean) / scale, nan=0.0), -Z_LIMIT, Z_LIMIT)


class SurvivalDesign:
    """Standardised covariates, option indicators and option x covariate interactions, fitted on training rows.

    Parameters
    ----------
    covariates : the cohort columns to use (main effects), in order; absent or constant ones are dropped
    modifiers : the covariates (a subset) whose effect may differ by option
    logged : covariates entered as sign(x) log(1 + |x|) before standardising (right-skewed labs and damage
        scores, where a linear effect of the raw value would let a few extreme patients dominate)

    Attributes
    ----------
    covariates_ : list of str, the main effects kept
    modifiers_ : list of str, the effect modifiers kept
    options_ : list of str, every option, in output order
    reference_ : str, the option without an indicator
    indicated_ : list of str, options with an indicator (seen in training, not the reference)
    mean_, scale_ : arrays, the observed moments of ``covariates_``
    columns_ : list of str, the design columns in order
    """

    def __init__(self, covariates: Sequence[str], modifiers: Sequence[str], logged: Sequence[str] = ()) -> None:
        self.covariates = covariates
        self.modifiers = modifiers
        self.logged = logged

    def fit(self, frame: pl.DataFrame, options: Sequence[str]) -> "SurvivalDesign":
        """Learn moments, options present and the reference option from training rows (with ``therapy``)."""
        unknown = sorted(set(frame["therapy"].drop_nulls().unique().to_list()) - set(options))
        if unknown:
            raise ValueError(f"column therapy holds values that are not therapy options: {unknown}")
        self.covariates_ = [c for c in self.covariates if c in frame.columns]
        X = self.matrix(frame)
        observed = ~np.isnan(X)
        varies = [bool(col[seen].size and col[seen].max() > col[seen].min()) for col, seen in zip(X.T, observed.T)]
        self.covariates_ = [c for c, v in zip(self.covariates_, varies) if v]
        if not self.covariates_:
            raise ValueError(f"none of the covariates {list(self.covariates)} varies in these rows")
        self.mean_, self.scale_ = observed_moments(self.matrix(frame))
        self.modifiers_ = [c for c in self.modifiers if c in self.covariates_]
        self.options_ = list(options)
        counts = frame["therapy"].value_counts()
        seen = dict(zip(counts["therapy"].to_list(), counts["count"].to_list()))
        self.reference_ = max(seen, key=seen.get)
        self.indicated_ = [o for o in self.options_ if o in seen and o != self.reference_]
        self.columns_ = (self.covariates_ + [f"option_{o}" for o in self.indicated_]
                         + [f"{o}_x_{c}" for o in self.indicated_ for c in self.modifiers_])
        return self

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The covariates before standardising (log-transformed where asked), NaN for missing; the propensity
        model reads these."""
        X = feature_matrix(frame, self.covariates_)
        logged = np.isin(self.covariates_, list(self.logged))
        X[:, logged] = np.sign(X[:, logged]) * np.log1p(np.abs(X[:, logged]))
        return X

    def standardise(self, frame: pl.DataFrame) -> np.ndarray:
        """The covariates as z-scores (rows, ``covariates_``): missing values at the mean (0), clipped to +-Z_LIMIT."""
        return zscores(self.matrix(frame), self.mean_, self.scale_)

    def transform(self, frame: pl.DataFrame, therapy: Sequence[str] | np.ndarray) -> pd.DataFrame:
        """The design (pandas, for lifelines) of ``frame``'s rows as if each had received ``therapy``."""
        return self.expand(self.standardise(frame), therapy)

    def expand(self, Z: np.ndarray, therapy: Sequence[str] | np.ndarray) -> pd.DataFrame:
        """The design of z-scores ``Z`` (rows, ``covariates_``): option indicators and interactions added."""
        therapy = np.asarray(therapy, dtype=object)
        if therapy.shape[0] != len(Z):
            raise ValueError(f"therapy has {therapy.shape[0]} entries for {len(Z)} rows")
        columns = {c: Z[:, j] for j, c in enumerate(self.covariates_)}
        for o in self.indicated_:
            given = (therapy == o).astype(float)
            columns[f"option_{o}"] = given
            for c in self.modifiers_:
                columns[f"{o}_x_{c}"] = given * columns[c]
        return pd.DataFrame(columns)[self.columns_]

    def stratum(self, therapy: Sequence[str] | np.ndarray) -> np.ndarray:
        """Each row's option as a stratum of a stratified model; an option unseen in training is the reference."""
        therapy = np.asarray(therapy, dtype=object)
        return np.where(np.isin(therapy, self.indicated_), therapy, self.reference_)

    def penalties(self, penalizer: float, interaction_penalizer: float) -> np.ndarray:
        """Per design column: ``interaction_penalizer`` for interactions, ``penalizer`` for the rest."""
        return np.array([interaction_penalizer if "_x_" in c else penalizer for c in self.columns_])


def balancing_weights(propensity: PropensityModel, X: np.ndarray, therapy: Sequence[str],
                      max_weight: float) -> np.ndarray:
    """Stabilised inverse-propensity weights P(option) / P(option | x), clipped to [1/max, max], mean 1.

    They reweight the episodes as if options had been given independently of
    the covariates (confounding by indication), as the response model does.
    """
    options = propensity.options_
    t = np.array([options.index(o) for o in therapy])
    p_given = propensity.predict_proba(X)[np.arange(len(t)), t]
    marginal = np.bincount(t, minlength=len(options))[t] / len(t)
    weights = np.clip(marginal / np.maximum(p_given, 1e-6), 1 / max_weight, max_weight)
    return weights / weights.mean()
