"""Who gets which therapy, and whether the data can speak for a patient: propensity and out-of-distribution.

Registry data is observational: the option a patient received depends on the
patient (confounding by indication). :class:`PropensityModel` estimates the
probability of each option given the features at the index date; models use
it to adjust for confounding, and every prediction carries a ``support`` flag
from it (``ok``; ``low``: few comparable patients received that option;
``none``: practically none did, or the option never occurs in training).
:class:`OutOfDistribution` flags patients unlike anyone in the training data.

Both follow scikit-learn's estimator contract: parameters in ``__init__``,
learned state in attributes ending in ``_``, ``fit`` returns ``self``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rxpredict.models.design import observed_moments
from rxpredict.schemas import load_contract

SUPPORT_LEVELS = ("ok", "low", "none")


def _check_fitted(model: object, attribute: str) -> None:
    if not hasattr(model, attribute):
        raise RuntimeError(f"this {type(model).__name__} is not fitted yet: call fit() first")


def _as_matrix(X: object, n_features: int | None = None) -> np.ndarray:
    """Features as a float matrix (NaN for missing); a polars or pandas frame is converted."""
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (patients x features), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features; the model was fitted with {n_features}")
    return X


class PropensityModel:
    """Probability of each therapy option at a start, given the features then.

    Parameters
    ----------
    options : sequence of str, optional
        The options, in output column order; the data contract's by default.
    C : float, default 1.0
        Inverse L2 regularisation of the multinomial logistic model.
    low_support : float, default 0.05
        Below this estimated probability an option's support is ``low``.
    no_support : float, default 0.01
        Below this, ``none``.
    max_iter : int, default 2000

    Attributes
    ----------
    classes_ : list of str
        Options seen in training (an option never seen has probability 0).
    n_features_in_ : int
    medians_, center_, scale_, coef_, intercept_ : arrays
        The fitted imputation, scaling and multinomial logistic model (from
        scikit-learn), kept as arrays so a saved model needs no pickle.

    Example
    -------
    >>> model = PropensityModel().fit(X, therapy)            # doctest: +SKIP
    >>> model.support(X_new)[:, model.options_.index("jaki")]  # doctest: +SKIP
    """

    def __init__(self, options: Sequence[str] | None = None, C: float = 1.0, low_support: float = 0.05,
                 no_support: float = 0.01, max_iter: int = 2000) -> None:
        self.options = options
        self.C = C
        self.low_support = low_support
        self.no_support = no_support
        self.max_iter = max_iter

    def fit(self, X: object, therapy: Sequence[str]) -> "PropensityModel":
        X = _as_matrix(X)
        therapy = np.asarray(therapy, dtype=object)
        if therapy.shape[0] != X.shape[0]:
            raise ValueError(f"therapy has {therapy.shape[0]} entries for {X.shape[0]} rows of X")
        options = list(self.options) if self.options is not None else load_contract().option_names
        unknown = sorted(set(therapy) - set(options))
        if unknown:
            raise ValueError(f"therapy holds values that are not options: {unknown}")
        if not 0 <= self.no_support <= self.low_support <= 1:
            raise ValueError("need 0 <= no_support <= low_support <= 1")
        if len(set(therapy)) < 2:
            raise ValueError("need at least two different options in training to model the choice between them")
        self.options_ = options
        self.n_features_in_ = X.shape[1]
        imputer, scaler, logistic = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
            LogisticRegression(C=self.C, max_iter=self.max_iter),
        ).fit(X, therapy).steps
        # Kept as plain arrays, so that a saved model loads without unpickling anything.
        self.classes_ = [str(c) for c in logistic[1].classes_]
        self.medians_ = imputer[1].statistics_.astype(float)
        self.center_, self.scale_ = scaler[1].mean_.astype(float), scaler[1].scale_.astype(float)
        self.coef_, self.intercept_ = logistic[1].coef_.astype(float), logistic[1].intercept_.astype(float)
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """Shape (n, len(options_)): P(option | features); 0 for options never seen in training."""
        _check_fitted(self, "coef_")
        X = _as_matrix(X, self.n_features_in_)
        z = (np.where(np.isnan(X), self.medians_, X) - self.center_) / self.scale_
        logits = z @ self.coef_.T + self.intercept_
        if len(self.classes_) == 2:  # scikit-learn's binary case: one logit for the second class
            logits = np.column_stack([np.zeros(len(z)), logits[:, 0]])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((p.shape[0], len(self.options_)))
        for j, c in enumerate(self.classes_):
            out[:, self.options_.index(c)] = p[:, j]
        return out

    def support(self, X: object) -> np.ndarray:
        """Shape (n, len(options_)) of ``ok`` / ``low`` / ``none`` from the estimated propensity."""
        p = self.predict_proba(X)
        ok, low, none = SUPPORT_LEVELS
        return np.where(p < self.no_support, none, np.where(p < self.low_support, low, ok)).astype(object)


class OutOfDistribution:
    """Flags patients whose features lie outside what the model was trained on.

    Each feature is standardised on the patients who have it, and a missing
    value counts as typical (z = 0): whole modalities are missing for most
    patients, and imputing them would make the few who have them look
    extreme. A patient is out of distribution when either
    - the squared Mahalanobis distance of the z-scores (covariance shrunk
      towards the identity, so it stays invertible) exceeds the ``quantile``
      of the training patients' own distances, or
    - a feature lies beyond the whole training range by more than ``margin``
      of that range (a CRP above any seen): the model would extrapolate, and
      :meth:`out_of_range` says which feature.

    Parameters
    ----------
    quantile : float, default 0.995
    shrinkage : float, default 0.1
    margin : float, default 0.05

    Attributes
    ----------
    mean_, scale_ : arrays, per feature (over observed values)
    low_, high_ : arrays, the training range per feature
    precision_ : array, inverse shrunk covariance of the z-scores
    threshold_ : float
        Distance above which a patient is out of distribution.
    """

    def __init__(self, quantile: float = 0.995, shrinkage: float = 0.1, margin: float = 0.05) -> None:
        self.quantile = quantile
        self.shrinkage = shrinkage
        self.margin = margin

    def fit(self, X: object) -> "OutOfDistribution":
        if not 0 < self.quantile < 1 or not 0 <= self.shrinkage <= 1:
            raise ValueError("quantile must be in (0, 1) and shrinkage in [0, 1]")
        X = _as_matrix(X)
        self.n_features_in_ = X.shape[1]
        observed = ~np.isnan(X)
        self.mean_, self.scale_ = observed_moments(X)
        self.low_ = np.where(observed.any(axis=0), np.nanmin(np.where(observed, X, np.inf), axis=0), np.nan)
        self.high_ = np.where(observed.any(axis=0), np.nanmax(np.where(observed, X, -np.inf), axis=0), np.nan)
        Z = self._z(X)
        cov = (1 - self.shrinkage) * (Z.T @ Z / Z.shape[0]) + self.shrinkage * np.eye(Z.shape[1])
        self.precision_ = np.linalg.pinv(cov)
        self.threshold_ = float(np.quantile(self._distance(Z), self.quantile))
        return self

    def _z(self, X: np.ndarray) -> np.ndarray:
        return np.nan_to_num((X - self.mean_) / self.scale_, nan=0.0)

    def _distance(self, Z: np.ndarray) -> np.ndarray:
        return np.einsum("ij,jk,ik->i", Z, self.precision_, Z)

    def score(self, X: object) -> np.ndarray:
        """Squared Mahalanobis distance of each patient to the training data."""
        _check_fitted(self, "precision_")
        return self._distance(self._z(_as_matrix(X, self.n_features_in_)))

    def out_of_range(self, X: object) -> np.ndarray:
        """Shape (n, features): True where a value lies beyond the training range by more than ``margin``."""
        _check_fitted(self, "precision_")
        X = _as_matrix(X, self.n_features_in_)
        slack = self.margin * (self.high_ - self.low_)
        with np.errstate(invalid="ignore"):
            return (X < self.low_ - slack) | (X > self.high_ + slack)

    def predict(self, X: object) -> np.ndarray:
        """True where a patient is out of distribution (too far from the training data, or beyond its range)."""
        return (self.score(X) > self.threshold_) | self.out_of_range(X).any(axis=1)
