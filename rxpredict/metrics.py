"""Metrics of predicted response: discrimination, calibration, effects and policy.

Pure functions in the scikit-learn manner, ``metric(y_true, y_score, *, ...)``,
taking lists, numpy arrays or polars Series (frames or nested lists where a
patients x options matrix is expected) and returning floats or small frozen
dataclasses. Inputs are checked, never repaired: a length mismatch, a label
other than 0/1, a probability outside [0, 1], NaN or an empty input raises a
``ValueError`` naming the argument. Drawing is apart from computing:
:class:`CalibrationDisplay` draws what :func:`calibration_curve` returns.

Example
-------
>>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
>>> round(brier([0, 1], [0.2, 0.6]), 3)
0.1
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score, roc_auc_score

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ArrayLike: TypeAlias = Sequence[float] | np.ndarray | pl.Series
MatrixLike: TypeAlias = Sequence[Sequence[float]] | np.ndarray | pl.DataFrame
Strategy: TypeAlias = Literal["uniform", "quantile"]

#: Predicted probabilities are clipped to [_EPS, 1 - _EPS] before the logit.
_EPS = 1e-6


# --- input checks --------------------------------------------------------------

def _array(x: Any, name: str, ndim: int = 1) -> np.ndarray:
    """``x`` as a non-empty float array of ``ndim`` dimensions without NaN or infinity."""
    if isinstance(x, (pl.Series, pl.DataFrame)):
        x = x.to_numpy()
    try:
        out = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    if out.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {out.shape}")
    if out.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def _labels(y: Any, name: str = "y_true") -> np.ndarray:
    out = _array(y, name)
    if not np.isin(out, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold 0/1 labels only, got {np.unique(out)[:5].tolist()}")
    return out


def _probabilities(p: Any, name: str, ndim: int = 1) -> np.ndarray:
    out = _array(p, name, ndim)
    if out.min() < 0.0 or out.max() > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{out.min():g}, {out.max():g}]")
    return out


def _same_shape(**arrays: np.ndarray) -> None:
    (first, a), *rest = arrays.items()
    for name, b in rest:
        if a.shape != b.shape:
            raise ValueError(f"{name} has shape {b.shape} but {first} has shape {a.shape}")


def _both_classes(y: np.ndarray, metric: str) -> None:
    if y.min() == y.max():
        raise ValueError(f"{metric} needs both classes in y_true, got only {int(y[0])}")


# --- discrimination and accuracy -----------------------------------------------

def auroc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random responder outranks a random non-responder."""
    y, s = _labels(y_true), _array(y_score, "y_score")
    _same_shape(y_true=y, y_score=s)
    _both_classes(y, "AUROC")
    return float(roc_auc_score(y, s))


def auprc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve, step-wise, as scikit-learn).

    Needs at least one positive; its chance level is the prevalence, not 0.5.
    """
    y, s = _labels(y_true), _array(y_score, "y_score")
    _same_shape(y_true=y, y_score=s)
    if y.max() == 0.0:
        raise ValueError("average precision needs at least one positive in y_true")
    return float(average_precision_score(y, s))


def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Brier score: mean squared difference between outcome and predicted probability."""
    y, p = _labels(y_true), _probabilities(y_prob, "y_prob")
    _same_shape(y_true=y, y_prob=p)
    return float(np.mean((p - y) ** 2))


# --- calibration ---------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationCurve:
    """Per non-empty bin: mean predicted probability, observed fraction of 1s, patients."""

    mean_predicted: np.ndarray
    fraction_observed: np.ndarray
    count: np.ndarray


def calibration_curve(
    y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10, strategy: Strategy = "uniform"
) -> CalibrationCurve:
    """Reliability-diagram points: predictions binned, observed rate per bin.

    ``strategy="uniform"`` cuts [0, 1] into ``n_bins`` equal widths;
    ``"quantile"`` cuts at quantiles of ``y_prob`` so bins hold about equal
    numbers (tied quantiles merge, giving fewer bins). Bins are [lo, hi) except
    the last, which is closed; empty bins are dropped.
    """
    y, p = _labels(y_true), _probabilities(y_prob, "y_prob")
    _same_shape(y_true=y, y_prob=p)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "uniform":
        edges = quantiles
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, quantiles))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    bins = np.searchsorted(edges[1:-1], p, side="right")
    count = np.bincount(bins, minlength=len(edges) - 1)
    kept = count > 0
    return CalibrationCurve(
        mean_predicted=np.bincount(bins, weights=p, minlength=len(count))[kept] / count[kept],
        fraction_observed=np.bincount(bins, weights=y, minlength=len(count))[kept] / count[kept],
        count=count[kept],
    )


def expected_calibration_error(
    y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """ECE = sum over bins of (n_bin / n) * |fraction observed - mean predicted|.

    The bins are those of :func:`calibration_curve` with the same arguments;
    0 means every bin's observed rate equals its mean prediction.
    """
    curve = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    gap = np.abs(curve.fraction_observed - curve.mean_predicted)
    return float(np.sum(curve.count * gap) / np.sum(curve.count))


def calibration_slope_intercept(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[float, float]:
    """(slope, intercept) of logistic recalibration: logit P(y=1) = intercept + slope * logit(p).

    Fitted by maximum likelihood with ``p`` clipped to [1e-6, 1 - 1e-6].
    Perfect calibration gives (1, 0); a slope below 1 means over-confident
    predictions (too extreme), above 1 under-confident. The fit does not exist
    when the predictions separate the outcomes perfectly; that raises.
    """
    y, p = _labels(y_true), _probabilities(y_prob, "y_prob")
    _same_shape(y_true=y, y_prob=p)
    _both_classes(y, "calibration slope")
    x = logit(np.clip(p, _EPS, 1.0 - _EPS))
    x0, x1 = x[y == 0.0], x[y == 1.0]
    if x0.max() <= x1.min() or x1.max() <= x0.min():
        raise ValueError("y_prob separates the classes of y_true perfectly: the recalibration has no finite fit")
    design = np.column_stack([np.ones_like(x), x])

    # Mean negative log-likelihood, gradient and Hessian for Newton-CG (BFGS stalls on large n).
    def nll(beta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ beta
        return float(np.mean(np.logaddexp(0.0, eta) - y * eta)), design.T @ (expit(eta) - y) / len(y)

    def hessian(beta: np.ndarray) -> np.ndarray:
        mu = expit(design @ beta)
        return (design.T * (mu * (1.0 - mu))) @ design / len(y)

    fit = minimize(nll, x0=np.array([0.0, 1.0]), jac=True, hess=hessian, method="Newton-CG")
    if not fit.success:
        raise ValueError(f"calibration slope fit did not converge: {fit.message}")
    intercept, slope = fit.x
    return float(slope), float(intercept)


# --- heterogeneous effects -----------------------------------------------------

def pehe(true_effect: ArrayLike, estimated_effect: ArrayLike) -> float:
    """Precision in estimating heterogeneous effects: RMSE of individual effects."""
    t, e = _array(true_effect, "true_effect"), _array(estimated_effect, "estimated_effect")
    _same_shape(true_effect=t, estimated_effect=e)
    return float(np.sqrt(np.mean((e - t) ** 2)))


@dataclass(frozen=True)
class ReferencePEHE:
    """PEHE of each option's effect versus the reference, and their unweighted mean."""

    mean: float
    by_option: dict[str, float]


def pehe_vs_reference(
    true_probs: MatrixLike, est_probs: MatrixLike, *, options: Sequence[str], reference: str = "csdmard_mtx"
) -> ReferencePEHE:
    """PEHE of the effects p(option) - p(reference), per non-reference option and averaged.

    ``true_probs`` and ``est_probs`` are patients x options, columns in the
    order of ``options``. The mean is of the per-option PEHEs (each option
    counts once), not a root of the pooled squared errors.
    """
    t, e = _probabilities(true_probs, "true_probs", 2), _probabilities(est_probs, "est_probs", 2)
    _same_shape(true_probs=t, est_probs=e)
    options = list(options)
    if len(options) != t.shape[1]:
        raise ValueError(f"options names {len(options)} options but the probabilities have {t.shape[1]} columns")
    if len(set(options)) != len(options):
        raise ValueError(f"options must be unique, got {options}")
    if reference not in options:
        raise ValueError(f"reference {reference!r} is not among options {options}")
    if len(options) < 2:
        raise ValueError("options must hold the reference and at least one other option")
    ref = options.index(reference)
    by_option = {
        name: pehe(t[:, j] - t[:, ref], e[:, j] - e[:, ref]) for j, name in enumerate(options) if j != ref
    }
    return ReferencePEHE(mean=float(np.mean(list(by_option.values()))), by_option=by_option)


# --- treatment policy ----------------------------------------------------------

def _recommended(true_probs: MatrixLike, est_probs: MatrixLike) -> tuple[np.ndarray, np.ndarray]:
    """The true probabilities and, per row, the true probability of the estimate's first best option."""
    t, e = _probabilities(true_probs, "true_probs", 2), _probabilities(est_probs, "est_probs", 2)
    _same_shape(true_probs=t, est_probs=e)
    return t, t[np.arange(len(t)), np.argmax(e, axis=1)]


def policy_regret_per_patient(true_probs: MatrixLike, est_probs: MatrixLike) -> np.ndarray:
    """Per patient: true probability of the truly best option minus that of the recommended one.

    The recommendation is the option of highest estimated probability (the
    first of tied ones). Never negative; 0 when the estimate picks a best option.
    """
    t, chosen = _recommended(true_probs, est_probs)
    return t.max(axis=1) - chosen


def policy_regret(true_probs: MatrixLike, est_probs: MatrixLike) -> float:
    """Mean of :func:`policy_regret_per_patient`: response lost by following the estimate."""
    return float(np.mean(policy_regret_per_patient(true_probs, est_probs)))


def policy_value(true_probs: MatrixLike, est_probs: MatrixLike) -> float:
    """Mean true probability of response under the option the estimate recommends."""
    return float(np.mean(_recommended(true_probs, est_probs)[1]))


# --- intervals -----------------------------------------------------------------

def _bounds(low: ArrayLike, high: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _array(low, "low"), _array(high, "high")
    _same_shape(low=lo, high=hi)
    if (lo > hi).any():
        raise ValueError(f"low exceeds high in {int((lo > hi).sum())} interval(s)")
    return lo, hi


def interval_coverage(truth: ArrayLike, low: ArrayLike, high: ArrayLike) -> float:
    """Share of ``truth`` values inside their interval [low, high], ends included."""
    lo, hi = _bounds(low, high)
    t = _array(truth, "truth")
    _same_shape(truth=t, low=lo)
    return float(np.mean((t >= lo) & (t <= hi)))


def mean_interval_width(low: ArrayLike, high: ArrayLike) -> float:
    """Mean of high - low: coverage is only worth what the width costs."""
    lo, hi = _bounds(low, high)
    return float(np.mean(hi - lo))


# --- display -------------------------------------------------------------------

class CalibrationDisplay:
    """Reliability diagram of a :class:`CalibrationCurve` (the scikit-learn display habit).

    Build it with :meth:`from_predictions`, draw it with :meth:`plot`; after
    drawing, ``ax_``, ``figure_`` and ``line_`` hold what was drawn.

    Example
    -------
    >>> ax = CalibrationDisplay.from_predictions([0, 1, 1], [0.2, 0.7, 0.9], n_bins=2).plot()
    >>> ax.figure.savefig("calibration.png")  # doctest: +SKIP
    """

    def __init__(self, curve: CalibrationCurve, *, name: str | None = None) -> None:
        self.curve = curve
        self.name = name

    @classmethod
    def from_predictions(
        cls,
        y_true: ArrayLike,
        y_prob: ArrayLike,
        *,
        n_bins: int = 10,
        strategy: Strategy = "uniform",
        name: str | None = None,
    ) -> CalibrationDisplay:
        """The display of :func:`calibration_curve` with these arguments; ``name`` labels the line."""
        return cls(calibration_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy), name=name)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw observed against predicted, with the diagonal of perfect calibration; return the axes.

        Without ``ax`` a new figure is made on the Agg canvas, outside pyplot:
        nothing is shown or kept alive by pyplot's figure registry, and any
        backend the caller chose is left alone. Save it with ``ax.figure.savefig``.
        """
        if ax is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            ax = FigureCanvasAgg(Figure(figsize=(5, 5))).figure.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="Perfectly calibrated")
        (self.line_,) = ax.plot(
            self.curve.mean_predicted, self.curve.fraction_observed, marker="o", label=self.name or "Model"
        )
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Mean predicted probability", ylabel="Observed fraction (y = 1)")
        ax.legend(loc="upper left")
        self.ax_, self.figure_ = ax, ax.figure
        return ax
