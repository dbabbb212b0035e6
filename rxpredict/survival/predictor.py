"""Survival curves from a fitted lifelines model's numbers alone: the one prediction path, fitted or loaded.

A lifelines fitter is a large object that can only be saved by pickling it.
Prediction needs far less, so :class:`HazardModel` keeps, next to the
fitter, one of these small predictors and predicts from it, before and after
a model bundle is saved and loaded (rxpredict/survival/persist.py):

- :class:`CoxPredictor` (``cox`` and ``cox_stratified``): the coefficients,
  the covariate means lifelines centres on, and the Breslow baseline
  cumulative hazard per stratum at every training duration. As in lifelines,
  H(t | x) = H0_stratum(t) exp((x - centre) . coef), with H0 interpolated
  linearly between training durations (``np.interp``).
- :class:`WeibullAFTPredictor` (``weibull_aft``): the coefficients of log
  lambda and log rho; H(t | x) = (t / lambda(x)) ^ rho(x).

Each predicts row by row in the order given (lifelines' stratified
prediction returns its columns grouped by stratum) and turns itself into
JSON-able settings plus named arrays, and back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, WeibullAFTFitter

#: lifelines' ``safe_exp`` ceiling on an exponent (lifelines/utils/safe_exp.py), so large hazards agree with it.
EXP_MAX = np.log(np.finfo(float).max) - 75


def _safe_exp(x: np.ndarray) -> np.ndarray:
    return np.exp(np.clip(x, -np.inf, EXP_MAX))


def _matrix(X: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``X``'s columns in the fitted order (``Intercept`` as ones); a missing column is an error naming it."""
    missing = [c for c in columns if c != "Intercept" and c not in X.columns]
    if missing:
        raise ValueError(f"the design lacks the column(s) {missing} the survival model was fitted with")
    return np.column_stack([np.ones(len(X)) if c == "Intercept" else X[c].to_numpy(dtype=float)
                            for c in columns]) if columns else np.zeros((len(X), 0))


@dataclass
class CoxPredictor:
    """A (possibly stratified) Cox model as arrays.

    Attributes
    ----------
    columns : design columns of ``coef``, in order
    coef : array (d,), log hazard ratios
    centre : array (d,), the training means lifelines subtracts before ``coef``
    times : array (m,), the distinct training durations, increasing
    cumulative_hazard : array (m, strata), the baseline cumulative hazard at ``times`` per stratum
    strata : the stratum of each column of ``cumulative_hazard``; empty for an unstratified model
    """

    columns: list[str]
    coef: np.ndarray
    centre: np.ndarray
    times: np.ndarray
    cumulative_hazard: np.ndarray
    strata: list[str]

    @classmethod
    def from_fitter(cls, fitter: CoxPHFitter) -> "CoxPredictor":
        """The numbers of a fitted lifelines ``CoxPHFitter`` (stratified by one column or not)."""
        baseline = fitter.baseline_cumulative_hazard_
        strata = [str(s[0]) if isinstance(s, tuple) else str(s) for s in baseline.columns] if fitter.strata else []
        return cls(columns=[str(c) for c in fitter.params_.index], coef=fitter.params_.to_numpy(dtype=float),
                   centre=fitter._norm_mean.to_numpy(dtype=float), times=baseline.index.to_numpy(dtype=float),
                   cumulative_hazard=baseline.to_numpy(dtype=float), strata=strata)

    def survival(self, X: pd.DataFrame, times: np.ndarray, stratum: np.ndarray) -> np.ndarray:
        """Shape (rows, times): P(no event by each time), each row from its stratum's baseline."""
        risk = np.exp((_matrix(X, self.columns) - self.centre) @ self.coef)
        column = np.zeros(len(X), dtype=int)
        if self.strata:
            stratum = np.asarray(stratum, dtype=object)
            unknown = sorted(set(stratum) - set(self.strata))
            if unknown:
                raise ValueError(f"stratum {unknown} was not in the training data (strata: {self.strata})")
            column = np.array([self.strata.index(s) for s in stratum], dtype=int)
        baseline = np.column_stack([np.interp(times, self.times, h) for h in self.cumulative_hazard.T])
        return np.exp(-baseline[:, column].T * risk[:, None])

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able settings and named arrays (see :meth:`from_state`)."""
        return ({"kind": "cox", "columns": self.columns, "strata": self.strata},
                {"coef": self.coef, "centre": self.centre, "times": self.times,
                 "cumulative_hazard": self.cumulative_hazard})

    @classmethod
    def from_state(cls, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> "CoxPredictor":
        """The predictor :meth:`to_state` described."""
        return cls(columns=list(settings["columns"]), strata=list(settings["strata"]),
                   **{k: arrays[k] for k in ("coef", "centre", "times", "cumulative_hazard")})


@dataclass
class WeibullAFTPredictor:
    """A Weibull AFT model whose shape may depend on covariates, as arrays.

    Attributes
    ----------
    lambda_columns, lambda_coef : design columns (with ``Intercept``) and coefficients of log lambda (the scale)
    rho_columns, rho_coef : the same for log rho (the shape)
    """

    lambda_columns: list[str]
    lambda_coef: np.ndarray
    rho_columns: list[str]
    rho_coef: np.ndarray

    @classmethod
    def from_fitter(cls, fitter: WeibullAFTFitter) -> "WeibullAFTPredictor":
        """The numbers of a fitted lifelines ``WeibullAFTFitter``."""
        part = lambda name: fitter.params_.loc[name]  # noqa: E731
        return cls(lambda_columns=[str(c) for c in part("lambda_").index],
                   lambda_coef=part("lambda_").to_numpy(dtype=float),
                   rho_columns=[str(c) for c in part("rho_").index], rho_coef=part("rho_").to_numpy(dtype=float))

    def survival(self, X: pd.DataFrame, times: np.ndarray, stratum: np.ndarray) -> np.ndarray:
        """Shape (rows, times): P(no event by each time); ``stratum`` is unused (one model for all options)."""
        log_lambda = _matrix(X, self.lambda_columns) @ self.lambda_coef
        rho = _safe_exp(_matrix(X, self.rho_columns) @ self.rho_coef)
        log_t = np.log(np.clip(np.asarray(times, dtype=float), 1e-100, np.inf))
        return np.exp(-_safe_exp(rho[:, None] * (log_t[None, :] - log_lambda[:, None])))

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able settings and named arrays (see :meth:`from_state`)."""
        return ({"kind": "weibull_aft", "lambda_columns": self.lambda_columns, "rho_columns": self.rho_columns},
                {"lambda_coef": self.lambda_coef, "rho_coef": self.rho_coef})

    @classmethod
    def from_state(cls, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> "WeibullAFTPredictor":
        """The predictor :meth:`to_state` described."""
        return cls(lambda_columns=list(settings["lambda_columns"]), rho_columns=list(settings["rho_columns"]),
                   lambda_coef=arrays["lambda_coef"], rho_coef=arrays["rho_coef"])


Predictor = CoxPredictor | WeibullAFTPredictor
PREDICTORS: dict[str, type[CoxPredictor] | type[WeibullAFTPredictor]] = {
    "cox": CoxPredictor, "weibull_aft": WeibullAFTPredictor}


def predictor_from(fitter: CoxPHFitter | WeibullAFTFitter) -> Predictor:
    """The array predictor of a fitted lifelines Cox or Weibull AFT fitter."""
    if isinstance(fitter, CoxPHFitter):
        return CoxPredictor.from_fitter(fitter)
    if isinstance(fitter, WeibullAFTFitter):
        return WeibullAFTPredictor.from_fitter(fitter)
    raise TypeError(f"no array predictor for a {type(fitter).__name__}")


def predictor_from_state(settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> Predictor:
    """A predictor from :meth:`to_state`'s output; an unknown kind is a ValueError naming it."""
    kind = settings.get("kind")
    if kind not in PREDICTORS:
        raise ValueError(f"unknown survival predictor kind {kind!r} (known: {', '.join(PREDICTORS)})")
    return PREDICTORS[kind].from_state(settings, arrays)
