"""What the progression and retention models share: the estimator contract, confounding and support.

A subclass names its key covariates and fits its outcome models in
``_fit_outcomes``; this base fits the design, the propensity model on the
same covariates (stabilised, clipped inverse-propensity weights for the
outcome fits; the ``support`` flag of every prediction) and the
out-of-distribution check, and lays the per-option predictions out as one row
per (patient_id, index_date, option).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl

from rxpredict.models.design import feature_matrix, model_columns
from rxpredict.models.overlap import OutOfDistribution, PropensityModel, _check_fitted
from rxpredict.models.params import ParamsMixin
from rxpredict.schemas import load_contract
from rxpredict.survival.design import SurvivalDesign, balancing_weights

#: Treatment-history features of the cohort (rxpredict/features.py) that the propensity model reads.
HISTORY_PREFIXES = ("clinical_prior_", "clinical_failures_", "clinical_n_prior_", "clinical_concomitant_",
                    "clinical_years_since_failure")


class OptionSurvivalModel(ParamsMixin):
    """Base of :class:`ProgressionModel` and :class:`RetentionModel` (not used on its own)."""

    COVARIATES: tuple[str, ...] = ()
    MODIFIERS: tuple[str, ...] = ()
    LOGGED: tuple[str, ...] = ()

    def _fit_design(self, rows: pl.DataFrame, max_weight: float) -> np.ndarray:
        """Design, propensity and OOD on the training ``rows``; returns their balancing weights.

        The propensity model reads the model's covariates plus the treatment history (prior options and
        failures, concomitant drugs), which drives the choice of option more than any outcome covariate;
        not every feature, which would make fitting on 30,000 episodes several times slower.
        """
        if not max_weight >= 1:
            raise ValueError(f"max_weight must be >= 1, got {max_weight}")
        self.options_ = load_contract().option_names
        self.design_ = SurvivalDesign(self.COVARIATES, self.MODIFIERS, self.LOGGED).fit(rows, self.options_)
        history = [c for c in model_columns(rows) if c.startswith(HISTORY_PREFIXES)]
        self.propensity_columns_ = list(dict.fromkeys(self.design_.covariates_ + history))
        therapy = rows["therapy"].to_list()
        self.propensity_ = PropensityModel(options=self.options_).fit(self._propensity_matrix(rows), therapy)
        self.ood_ = OutOfDistribution().fit(self.design_.matrix(rows))
        return self._weights(rows, max_weight)

    def _propensity_matrix(self, rows: pl.DataFrame) -> np.ndarray:
        return feature_matrix(rows, self.propensity_columns_)

    def _weights(self, rows: pl.DataFrame, max_weight: float) -> np.ndarray:
        """Stabilised, clipped inverse-propensity weights of ``rows`` (training episodes with ``therapy``)."""
        return balancing_weights(self.propensity_, self._propensity_matrix(rows), rows["therapy"].to_list(),
                                 max_weight)

    def _expanded(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pd.DataFrame, np.ndarray]:
        """Every row once per option (option-major), its design and stratum, as if it had received that option."""
        _check_fitted(self, "design_")
        for column in ("patient_id", "index_date"):
            if column not in rows.columns:
                raise ValueError(f"rows need the column {column} (pass cohort rows)")
        n = rows.height
        therapy = np.repeat(np.array(self.options_, dtype=object), n)
        stacked = pl.concat([rows] * len(self.options_), how="vertical_relaxed") if n else rows
        return stacked, self.design_.transform(stacked, therapy), self.design_.stratum(therapy)

    def _frame(self, rows: pl.DataFrame, columns: dict[str, np.ndarray]) -> pl.DataFrame:
        """One row per (episode, option), episodes in ``rows`` order; ``columns`` are option-major arrays."""
        n, k = rows.height, len(self.options_)
        episode_major = lambda a: np.asarray(a).reshape(k, n).T.ravel()  # noqa: E731
        return pl.DataFrame({
            "patient_id": np.repeat(rows["patient_id"].to_numpy(), k),
            "index_date": rows["index_date"].gather(np.repeat(np.arange(n), k)),
            "therapy": np.tile(np.array(self.options_), n),
            **{name: episode_major(values) for name, values in columns.items()},
            "support": self.propensity_.support(self._propensity_matrix(rows)).ravel().astype(str),
            "ood": np.repeat(self.ood_.predict(self.design_.matrix(rows)), k),
        })

    def _curves_frame(self, rows: pl.DataFrame, times: np.ndarray, columns: dict[str, np.ndarray]) -> pl.DataFrame:
        """Long frame: per (episode, option, time); ``columns`` are (option-major rows, times) arrays."""
        n, k, m = rows.height, len(self.options_), len(times)
        episode_major = lambda a: np.asarray(a).reshape(k, n, m).transpose(1, 0, 2).ravel()  # noqa: E731
        return pl.DataFrame({
            "patient_id": np.repeat(rows["patient_id"].to_numpy(), k * m),
            "index_date": rows["index_date"].gather(np.repeat(np.arange(n), k * m)),
            "therapy": np.tile(np.repeat(np.array(self.options_), m), n),
            "time_days": np.tile(times, n * k),
            **{name: episode_major(values) for name, values in columns.items()},
        })


def time_grid(horizon_days: int, step_days: int, also: Sequence[float] = ()) -> np.ndarray:
    """0, step, 2 step, ... up to the horizon, plus the times in ``also`` (say 365), sorted."""
    return np.unique(np.r_[np.arange(0, horizon_days + 1, step_days), horizon_days, list(also)]).astype(float)


def crossing_time(times: np.ndarray, survival: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Per row, the time a survival curve first falls to ``level`` (linear between grid times); NaN if never."""
    below = survival <= level
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    out = np.full(survival.shape[0], np.nan)
    hit = first > 0
    i = first[hit]
    s0, s1 = survival[hit, i - 1], survival[hit, i]
    t0, t1 = times[i - 1], times[i]
    out[hit] = t0 + (s0 - level) / np.where(s0 > s1, s0 - s1, 1.0) * (t1 - t0)
    out[first == 0] = times[0]
    return out
