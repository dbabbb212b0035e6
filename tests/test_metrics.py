"""Tests of rxpredict.metrics against hand-computed values.

Expected numbers are literals worked out by hand, never by the formulas under
test; the recalibration fit is checked on data simulated from known
probabilities instead, with a tolerance well above its sampling error.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

from rxpredict import metrics as m

APPROX = {"abs": 1e-9}
Y = [0, 0, 1, 1]
S = [0.1, 0.4, 0.35, 0.8]


# --- discrimination and accuracy -----------------------------------------------

@pytest.mark.parametrize("convert", [list, np.array, pl.Series], ids=["list", "numpy", "polars"])
def test_auroc_tiny_example_from_any_input_type(convert):
    # 4 positive/negative pairs; only (0.4 negative, 0.35 positive) is misordered: 3/4.
    assert m.auroc(convert(Y), convert(S)) == pytest.approx(0.75, **APPROX)


def test_auprc_tiny_example():
    # Ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): recall 1/2 at precision 1, then 1 at precision 2/3.
    assert m.auprc(Y, S) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, **APPROX)


def test_brier_four_values():
    # (0.1^2 + 0.1^2 + 0.4^2 + 0.3^2) / 4 = (0.01 + 0.01 + 0.16 + 0.09) / 4
    assert m.brier([0, 1, 1, 0], [0.1, 0.9, 0.6, 0.3]) == pytest.approx(0.0675, **APPROX)


# --- calibration ---------------------------------------------------------------

def test_calibration_curve_uniform_bins_drop_empty_ones():
    curve = m.calibration_curve([0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.95], n_bins=4)
    # Bins [0, .25): 0.1, 0.2 | [.25, .5): 0.3 | [.5, .75): empty | [.75, 1]: 0.9, 0.95
    np.testing.assert_allclose(curve.mean_predicted, [0.15, 0.3, 0.925])
    np.testing.assert_allclose(curve.fraction_observed, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(curve.count, [2, 1, 2])


def test_calibration_curve_edges_belong_to_the_upper_bin_and_one_to_the_last():
    curve = m.calibration_curve([0, 1, 1], [0.0, 0.5, 1.0], n_bins=2)
    np.testing.assert_array_equal(curve.count, [1, 2])
    np.testing.assert_allclose(curve.mean_predicted, [0.0, 0.75])


def test_calibration_curve_quantile_bins_hold_equal_numbers():
    curve = m.calibration_curve([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], n_bins=2, strategy="quantile")
    # Edges at the quantiles 0.1, 0.25, 0.4.
    np.testing.assert_array_equal(curve.count, [2, 2])
    np.testing.assert_allclose(curve.mean_predicted, [0.15, 0.35])
    np.testing.assert_allclose(curve.fraction_observed, [0.5, 0.5])


def test_expected_calibration_error_two_bins():
    # Bin [0, .5): mean 0.15, observed 0.5, gap 0.35; bin [.5, 1]: mean 0.8, observed 1, gap 0.2.
    # Half the patients in each: 0.5 * 0.35 + 0.5 * 0.2.
    ece = m.expected_calibration_error([0, 1, 1, 1], [0.1, 0.2, 0.7, 0.9], n_bins=2)
    assert ece == pytest.approx(0.275, **APPROX)


def test_expected_calibration_error_weights_bins_by_size():
    # Bin [0, .5): 0.2, 0.2, 0.4 mean 0.8/3, observed 1/3, gap 0.2/3 = 1/15; bin [.5, 1]: 0.6, observed 0, gap 0.6.
    # (3 * 1/15 + 1 * 0.6) / 4 = 0.8 / 4
    ece = m.expected_calibration_error([0, 0, 1, 0], [0.2, 0.2, 0.4, 0.6], n_bins=2)
    assert ece == pytest.approx(0.2, **APPROX)


def _simulated(slope_of_truth: float, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from p_true and predictions with logit(p_pred) = logit(p_true) / slope_of_truth."""
    rng = np.random.default_rng(20260101)
    z = rng.normal(0.0, 1.5, n)
    y = rng.binomial(1, expit(z))
    return y, expit(z / slope_of_truth)


def test_calibration_slope_intercept_of_calibrated_predictions():
    slope, intercept = m.calibration_slope_intercept(*_simulated(1.0))
    assert slope == pytest.approx(1.0, abs=0.05)
    assert intercept == pytest.approx(0.0, abs=0.05)


def test_calibration_slope_of_over_confident_predictions_is_one_half():
    slope, intercept = m.calibration_slope_intercept(*_simulated(0.5))  # logit(p_pred) = 2 logit(p_true)
    assert slope == pytest.approx(0.5, abs=0.05)
    assert intercept == pytest.approx(0.0, abs=0.05)


def test_calibration_slope_refuses_perfect_separation():
    with pytest.raises(ValueError, match="separates"):
        m.calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])


def test_calibration_arguments_are_checked():
    with pytest.raises(ValueError, match="strategy"):
        m.calibration_curve(Y, S, strategy="kmeans")
    with pytest.raises(ValueError, match="n_bins"):
        m.expected_calibration_error(Y, S, n_bins=0)


# --- heterogeneous effects -----------------------------------------------------

def test_pehe_hand_example():
    # Errors 0.5, 0, 1, 0: sqrt((0.25 + 1) / 4) = sqrt(0.3125)
    assert m.pehe([1.0, 0.0, -1.0, 2.0], [0.5, 0.0, 0.0, 2.0]) == pytest.approx(0.5590169944, abs=1e-9)


TRUE_3 = [[0.3, 0.5, 0.4], [0.6, 0.6, 0.7]]
EST_3 = [[0.3, 0.6, 0.4], [0.5, 0.6, 0.5]]
OPTIONS_3 = ["csdmard_mtx", "tnfi", "jaki"]


def test_pehe_vs_reference_three_options():
    # True effects vs MTX: tnfi 0.2, 0.0; jaki 0.1, 0.1. Estimated: tnfi 0.3, 0.1; jaki 0.1, 0.0.
    # tnfi errors 0.1, 0.1 -> 0.1; jaki errors 0, 0.1 -> sqrt(0.005) = 0.0707106781.
    result = m.pehe_vs_reference(TRUE_3, EST_3, options=OPTIONS_3)
    assert result.by_option == pytest.approx({"tnfi": 0.1, "jaki": 0.0707106781}, abs=1e-9)
    assert result.mean == pytest.approx(0.0853553391, abs=1e-9)


def test_pehe_vs_reference_finds_the_reference_by_name_not_position():
    order = [1, 0, 2]  # tnfi first
    result = m.pehe_vs_reference(
        np.array(TRUE_3)[:, order], pl.DataFrame(np.array(EST_3)[:, order]), options=[OPTIONS_3[i] for i in order]
    )
    assert result.by_option == pytest.approx({"tnfi": 0.1, "jaki": 0.0707106781}, abs=1e-9)


@pytest.mark.parametrize(
    ("options", "reference", "match"),
    [
        (["csdmard_mtx", "tnfi"], "csdmard_mtx", "3 columns"),
        (["csdmard_mtx", "tnfi", "tnfi"], "csdmard_mtx", "unique"),
        (OPTIONS_3, "rituximab", "reference"),
    ],
)
def test_pehe_vs_reference_checks_options(options, reference, match):
    with pytest.raises(ValueError, match=match):
        m.pehe_vs_reference(TRUE_3, EST_3, options=options, reference=reference)


# --- treatment policy ----------------------------------------------------------

TRUE_P = [[0.2, 0.5, 0.4], [0.7, 0.1, 0.3]]


def test_policy_regret_zero_when_the_estimate_ranks_like_the_truth():
    est = [[0.1, 0.3, 0.2], [0.9, 0.2, 0.5]]
    assert m.policy_regret(TRUE_P, est) == 0.0
    assert m.policy_value(TRUE_P, est) == pytest.approx(0.6, **APPROX)  # (0.5 + 0.7) / 2


def test_policy_regret_hand_example():
    est = [[0.6, 0.5, 0.1], [0.2, 0.1, 0.3]]  # recommends option 0, then option 2
    np.testing.assert_allclose(m.policy_regret_per_patient(TRUE_P, est), [0.3, 0.4])  # 0.5 - 0.2, 0.7 - 0.3
    assert m.policy_regret(TRUE_P, est) == pytest.approx(0.35, **APPROX)
    assert m.policy_value(TRUE_P, est) == pytest.approx(0.25, **APPROX)  # (0.2 + 0.3) / 2


def test_policy_regret_ties_in_the_estimate_take_the_first_option():
    assert m.policy_regret([[0.2, 0.5, 0.4]], [[0.5, 0.5, 0.1]]) == pytest.approx(0.3, **APPROX)


# --- intervals -----------------------------------------------------------------

def test_interval_coverage_includes_both_ends():
    # 1 in [0, 2] yes; 2 in [2, 2] yes; 3 in [3.5, 4] no; 4 in [1, 3] no.
    assert m.interval_coverage([1, 2, 3, 4], [0, 2, 3.5, 1], [2, 2, 4, 3]) == 0.5


def test_mean_interval_width():
    assert m.mean_interval_width([0, 2, 3.5, 1], [2, 2, 4, 3]) == pytest.approx(1.125, **APPROX)  # (2+0+0.5+2)/4


def test_intervals_with_low_above_high_raise():
    with pytest.raises(ValueError, match="low exceeds high"):
        m.mean_interval_width([0, 3], [1, 2])


# --- every ValueError path -----------------------------------------------------

@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: m.auroc([0, 1, 1], [0.1, 0.2]), "y_score has shape"),
        (lambda: m.brier([0, 1], [0.1, 0.2, 0.3]), "y_prob has shape"),
        (lambda: m.pehe([0.1], [0.1, 0.2]), "estimated_effect has shape"),
        (lambda: m.interval_coverage([1, 2, 3], [0, 0], [4, 4]), "truth has shape"),
        (lambda: m.policy_regret(TRUE_P, [[0.1, 0.2, 0.3]]), "est_probs has shape"),
        (lambda: m.auroc([0, 1, 2], [0.1, 0.2, 0.3]), "y_true must hold 0/1"),
        (lambda: m.brier([0, 0.5], [0.1, 0.2]), "y_true must hold 0/1"),
        (lambda: m.brier([0, 1], [0.1, 1.2]), r"y_prob must lie in \[0, 1\]"),
        (lambda: m.calibration_curve([0, 1], [-0.1, 0.5]), r"y_prob must lie in \[0, 1\]"),
        (lambda: m.policy_value([[0.1, 1.2]], [[0.1, 0.2]]), r"true_probs must lie in \[0, 1\]"),
        (lambda: m.auroc([0, 1], [0.1, float("nan")]), "y_score contains NaN"),
        (lambda: m.brier(pl.Series([0, None, 1]), [0.1, 0.2, 0.3]), "y_true contains NaN"),
        (lambda: m.pehe([np.nan], [0.0]), "true_effect contains NaN"),
        (lambda: m.auroc([1, 1, 1], [0.1, 0.2, 0.3]), "both classes"),
        (lambda: m.calibration_slope_intercept([0, 0], [0.1, 0.2]), "both classes"),
        (lambda: m.auprc([0, 0], [0.1, 0.2]), "at least one positive"),
        (lambda: m.auroc([], []), "y_true is empty"),
        (lambda: m.brier(pl.Series([], dtype=pl.Int64), []), "y_true is empty"),
        (lambda: m.mean_interval_width([], []), "low is empty"),
        (lambda: m.policy_regret([0.1, 0.2], [0.1, 0.2]), "true_probs must be 2-dimensional"),
        (lambda: m.auroc(["a", "b"], [0.1, 0.2]), "y_true must be numeric"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- display -------------------------------------------------------------------

def test_calibration_display_plots_and_saves_a_png(tmp_path):
    from matplotlib.axes import Axes

    display = m.CalibrationDisplay.from_predictions([0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.95], n_bins=4, name="net")
    ax = display.plot()
    assert isinstance(ax, Axes)
    np.testing.assert_array_equal(display.curve.count, [2, 1, 2])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Perfectly calibrated", "net"]
    path = tmp_path / "calibration.png"
    display.figure_.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pytest.importorskip("PIL.Image")
    with image.open(path) as png:
        assert png.format == "PNG"
        png.verify()


def test_calibration_display_draws_on_a_given_axes():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert m.CalibrationDisplay.from_predictions(Y, S, n_bins=2).plot(ax=ax) is ax
