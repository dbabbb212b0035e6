"""Tests of rxpredict.imaging.metrics against hand-computed values.

Score frames are built in the RA2-DREAM layout from zeros with a few scores
set and the totals summed; expected numbers are worked out by hand in the
comments, never by the formulas under test.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from rxpredict.imaging import metrics as m
from rxpredict.imaging.layout import ra2_dream_mapping

APPROX = {"abs": 1e-9}
PATIENTS = ("P1", "P2", "P3")
N_COLUMNS, N_EROSION = 86, 44  # score columns in the layout, erosion ones among them


def scores(values: dict[str, dict[str, float]] | None = None, patients=PATIENTS, offset: float = 0.0) -> pl.DataFrame:
    """A score frame: every score ``offset`` except ``values[patient][column]``, totals the sums of their kinds."""
    mapping = ra2_dream_mapping()
    values = values or {}
    rows = []
    for patient in patients:
        row = {c.column: values.get(patient, {}).get(c.column, 0.0) + offset for c in mapping.columns}
        totals = {t: sum(row[c.column] for c in mapping.columns if c.score in kinds)
                  for t, kinds in mapping.totals.items()}
        rows.append({mapping.id_column: patient, **totals, **row})
    return pl.DataFrame(rows).select(mapping.csv_columns)


# Truth varies in one column only: LH_mcp_E__2 = 0, 2, 4 (mean 2, population SD sqrt(8/3)).
TRUTH = scores({"P2": {"LH_mcp_E__2": 2}, "P3": {"LH_mcp_E__2": 4}})
# Predicted 1, 2, 3 there: errors 1, 0, -1, RMSE sqrt(2/3), so RMSE / SD = sqrt(2/8) = 0.5 exactly.
HALF_SD = scores({"P1": {"LH_mcp_E__2": 1}, "P2": {"LH_mcp_E__2": 2}, "P3": {"LH_mcp_E__2": 3}})


# --- score errors -------------------------------------------------------------------------------------------------


def test_joint_errors_long_table():
    errors = m.joint_errors(TRUTH, HALF_SD)
    assert errors.height == 3 * N_COLUMNS
    assert errors.columns == ["patient", "column", "joint", "kind", "area", "maximum", "truth", "predicted"]
    row = errors.filter((pl.col("patient") == "P3") & (pl.col("column") == "LH_mcp_E__2")).row(0, named=True)
    assert row == {"patient": "P3", "column": "LH_mcp_E__2", "joint": "left_hand_mcp2", "kind": "erosion",
                   "area": "hand_mcp2", "maximum": 5, "truth": 4.0, "predicted": 3.0}
    assert errors.filter(pl.col("column") == "RF_mtp_J__1")["area"].to_list() == ["foot_mtp1"] * 3


def test_perfect_prediction_scores_zero_error_and_full_agreement():
    out = m.summary(TRUTH, TRUTH)
    assert out["rmse_joint"] == 0 and out["rmse_total"] == 0 and out["weighted_rmse_total"] == 0
    assert out["icc_total"] == pytest.approx(1.0, **APPROX)
    assert out["sdd_total"] == 0 and out["patient_rmse_median"] == 0
    assert out["sc1_weighted_abs_error"] == out["sc2_jsn_weighted_rmse"] == out["sc3_erosion_weighted_rmse"] == 0
    assert out["rmse_over_sd_worst"] == 0 and out["share_columns_rmse_le_half_sd"] == 1


def test_constant_offset_gives_that_rmse():
    # +0.5 on each of the 86 scores: every joint RMSE 0.5, each total off by 43 points.
    predicted = scores({"P2": {"LH_mcp_E__2": 2}, "P3": {"LH_mcp_E__2": 4}}, offset=0.5)
    assert m.per_joint(TRUTH, predicted)["rmse"].to_list() == pytest.approx([0.5] * N_COLUMNS)
    assert m.per_patient(TRUTH, predicted)["rmse"].to_list() == pytest.approx([0.5] * 3)
    assert m.total_rmse(TRUTH, predicted) == pytest.approx(43.0, **APPROX)
    assert m.total_rmse(TRUTH, predicted, "Overall_erosion") == pytest.approx(22.0, **APPROX)
    assert m.weighted_total_rmse(TRUTH, predicted) == pytest.approx(43.0, **APPROX)
    assert m.summary(TRUTH, predicted)["rmse_joint"] == pytest.approx(0.5, **APPROX)
    assert m.summary(TRUTH, predicted)["mean_error_total"] == pytest.approx(43.0, **APPROX)


def test_per_joint_ratio_by_column():
    table = m.per_joint(TRUTH, HALF_SD)
    row = table.filter(pl.col("column") == "LH_mcp_E__2").row(0, named=True)
    assert row["n"] == 3 and row["maximum"] == 5
    assert row["rmse"] == pytest.approx(math.sqrt(2 / 3), **APPROX)
    assert row["sd"] == pytest.approx(math.sqrt(8 / 3), **APPROX)
    assert row["rmse_over_sd"] == pytest.approx(0.5, **APPROX)
    assert row["mean_truth"] == pytest.approx(2.0) and row["mean_predicted"] == pytest.approx(2.0)
    # Every other column: truth constant 0, so no ratio.
    assert table["rmse_over_sd"].null_count() == N_COLUMNS - 1


def test_per_joint_by_area_pools_both_sides():
    # hand_mcp2 erosion: left truth 0, 2, 4 and right 0, 0, 0 -> mean 1, population variance 14/6;
    # errors 1, 0, 1 (squared) and 0, 0, 0 -> MSE 2/6; RMSE / SD = sqrt(2/14).
    table = m.per_joint(TRUTH, HALF_SD, by="area")
    assert table.height == 43
    row = table.filter((pl.col("area") == "hand_mcp2") & (pl.col("kind") == "erosion")).row(0, named=True)
    assert row["n"] == 6
    assert row["rmse"] == pytest.approx(math.sqrt(1 / 3), **APPROX)
    assert row["rmse_over_sd"] == pytest.approx(math.sqrt(1 / 7), **APPROX)
    with pytest.raises(ValueError, match="by must be"):
        m.per_joint(TRUTH, HALF_SD, by="side")


def test_per_patient_rmse_and_totals():
    # P1 errs by 1 in one of 86 scores: RMSE sqrt(1/86); its predicted total is 1, true 0.
    table = m.per_patient(TRUTH, HALF_SD)
    assert table["patient"].to_list() == list(PATIENTS)
    assert table["rmse"].to_list() == pytest.approx([math.sqrt(1 / 86), 0.0, math.sqrt(1 / 86)], **APPROX)
    assert table["Overall_Tol_truth"].to_list() == [0.0, 2.0, 4.0]
    assert table["Overall_Tol_predicted"].to_list() == [1.0, 2.0, 3.0]
    assert table["Overall_narrowing_predicted"].to_list() == [0.0, 0.0, 0.0]


def test_summary_sd_criterion():
    out = m.summary(TRUTH, HALF_SD)
    assert out["columns_with_sd"] == 1
    assert out["rmse_over_sd_worst"] == pytest.approx(0.5, **APPROX)
    assert out["share_columns_rmse_le_half_sd"] == 1.0
    assert out["rmse_joint"] == pytest.approx(math.sqrt(2 / (3 * 86)), **APPROX)
    assert "landmark_error_mean_px" not in out


def test_mismatched_patients_are_named():
    with pytest.raises(ValueError, match=r"only in truth \['P3'\], only in predicted \['P9'\]"):
        m.joint_errors(TRUTH, scores(patients=("P1", "P2", "P9")))


def test_missing_column_and_repeated_patient_are_named():
    with pytest.raises(ValueError, match="predicted lacks column.*LH_mcp_E__2"):
        m.per_joint(TRUTH, HALF_SD.drop("LH_mcp_E__2"))
    with pytest.raises(ValueError, match="truth repeats patient.*P1"):
        m.per_patient(pl.concat([TRUTH, TRUTH.head(1)]), HALF_SD)
    with pytest.raises(ValueError, match="total must be one of"):
        m.total_rmse(TRUTH, HALF_SD, total="Overall_SvH")


# --- RA2-DREAM challenge weighting --------------------------------------------------------------------------------


def test_challenge_weight_bins():
    totals = [0, 1, 2, 3, 4, 7, 8, 20, 21, 55, 56, 148, 149, 400]
    expected = [1, 2, 2.143547, 2.143547, 3.863745, 3.863745, 8, 8, 16, 16, 32, 32, 64, 64]
    assert m.challenge_weights(totals).tolist() == pytest.approx(expected, **APPROX)


def test_weighted_total_rmse_and_challenge_scores():
    # True Overall_Tol 0, 1, 10 weigh 1, 2, 8. Predicted totals 1, 1, 12: errors 1, 0, 2, all in erosion.
    truth = scores({"P2": {"LH_mcp_J__2": 1}, "P3": {"LF_mtp_E__1": 8, "LF_mtp_E__2": 2}})
    predicted = scores({"P1": {"LH_mcp_E__3": 1}, "P2": {"LH_mcp_J__2": 1},
                        "P3": {"LF_mtp_E__1": 10, "LF_mtp_E__2": 2}})
    assert m.total_rmse(truth, predicted) == pytest.approx(math.sqrt(5 / 3), **APPROX)
    # sqrt((1 * 1 + 2 * 0 + 8 * 4) / 11) = sqrt(3)
    assert m.weighted_total_rmse(truth, predicted) == pytest.approx(math.sqrt(3), **APPROX)
    out = m.challenge_scores(truth, predicted)
    # SC1: (1 * |log2 2 - log2 1| + 8 * |log2 13 - log2 11|) / 11
    assert out["sc1_weighted_abs_error"] == pytest.approx((1 + 8 * math.log2(13 / 11)) / 11, **APPROX)
    assert out["sc2_jsn_weighted_rmse"] == 0
    # SC3: patient RMSEs over 44 erosion columns: P1 1/sqrt(44), P3 log2(11/9)/sqrt(44), weighted 1 and 8.
    sc3 = (1 / math.sqrt(N_EROSION) + 8 * math.log2(11 / 9) / math.sqrt(N_EROSION)) / 11
    assert out["sc3_erosion_weighted_rmse"] == pytest.approx(sc3, **APPROX)


# --- agreement ----------------------------------------------------------------------------------------------------


def test_icc_shrout_fleiss_worked_example():
    # Shrout & Fleiss (1979), table 2: 6 targets x 4 judges, ICC(2,1) = 0.29.
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert m.icc(ratings) == pytest.approx(0.29, abs=0.005)


def test_icc_perfect_offset_and_undefined():
    assert m.icc([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0, **APPROX)
    # b = a + 1: BMS 2, JMS 1.5, EMS 0 -> 2 / (2 + 0 + 2 * 1.5 / 3) = 2/3 (absolute agreement penalises offset).
    assert m.icc([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 3, **APPROX)
    assert math.isnan(m.icc([2, 2, 2], [2, 2, 2]))
    assert math.isnan(m.icc([1], [1]))
    with pytest.raises(ValueError, match="n x k"):
        m.icc(np.zeros((2, 2, 2)))


def test_sdd_hand_example():
    # d = 0, 1, -1, 2: mean 0.5, squared deviations sum 5, sample SD sqrt(5/3); 1.96 sqrt(5/3) / sqrt(2).
    assert m.sdd([1, 2, 3, 4], [1, 1, 4, 2]) == pytest.approx(1.96 * math.sqrt(5 / 6), **APPROX)
    assert m.sdd([1, 2], [1, 2]) == 0
    assert math.isnan(m.sdd([1], [2]))


def test_agreement_by_area():
    table = m.agreement_by_area(TRUTH, TRUTH)
    assert table.height == 43 + 3
    row = table.filter((pl.col("area") == "hand_mcp2") & (pl.col("kind") == "erosion")).row(0, named=True)
    assert row["n"] == 6 and row["icc"] == pytest.approx(1.0, **APPROX) and row["sdd"] == 0
    assert math.isnan(table.filter(pl.col("area") == "foot_mtp1")["icc"][0])  # all zero: undefined
    total = table.filter(pl.col("area") == "Overall_Tol").row(0, named=True)
    assert total["kind"] == "erosion+jsn" and total["n"] == 3 and total["icc"] == pytest.approx(1.0, **APPROX)
    # Against HALF_SD the total: truth 0, 2, 4, predicted 1, 2, 3; d = -1, 0, 1, SD 1 -> SDD 1.96 / sqrt(2).
    half = m.agreement_by_area(TRUTH, HALF_SD).filter(pl.col("area") == "Overall_Tol")
    assert half["sdd"][0] == pytest.approx(1.96 / math.sqrt(2), **APPROX)


# --- landmarks ----------------------------------------------------------------------------------------------------

# Left hand: mcp2-mcp3 5 px, mcp3-mcp4 6 px, mcp4-mcp5 7 px apart -> spacing 6.
LEFT_HAND = {"left_hand_mcp2": (0.0, 0.0), "left_hand_mcp3": (3.0, 4.0), "left_hand_mcp4": (3.0, 10.0),
             "left_hand_mcp5": (3.0, 17.0), "left_hand_pip2": (50.0, 50.0)}


def test_joint_spacing():
    assert m.joint_spacing(LEFT_HAND, "LH") == pytest.approx(6.0, **APPROX)
    without_mcp4 = {k: v for k, v in LEFT_HAND.items() if k != "left_hand_mcp4"}
    assert m.joint_spacing(without_mcp4, "LH") == pytest.approx(5.0, **APPROX)
    assert math.isnan(m.joint_spacing(LEFT_HAND, "RH"))  # no right-hand centres
    foot = {f"right_foot_mtp{i}": (10.0 * i, 0.0) for i in range(1, 6)}
    assert m.joint_spacing(foot, "RF") == pytest.approx(10.0, **APPROX)


def test_landmark_errors_and_summary():
    true = {("P1", "LH"): LEFT_HAND, ("P2", "LH"): LEFT_HAND}
    predicted = {("P1", "LH"): {"left_hand_mcp2": (3.0, 4.0), "left_hand_pip2": (50.0, 56.0),
                                "left_hand_mcp9": (0.0, 0.0)}}
    table = m.landmark_errors(true, predicted)
    assert table.rows() == [("P1-LH", "left_hand_mcp2", 5.0, 6.0, pytest.approx(5 / 6)),
                            ("P1-LH", "left_hand_pip2", 6.0, 6.0, 1.0)]
    out = m.summary(TRUTH, TRUTH, true, predicted)
    assert out["landmarks"] == 2
    assert out["landmark_error_mean_px"] == pytest.approx(5.5) and out["landmark_error_median_px"] == pytest.approx(5.5)
    assert out["landmark_error_p95_px"] == pytest.approx(5.95)  # linear between 5 and 6
    assert out["landmark_error_over_spacing_mean"] == pytest.approx(11 / 12)
    with pytest.raises(ValueError, match="both"):
        m.summary(TRUTH, TRUTH, true, None)


def test_landmark_errors_reject_mixed_films():
    with pytest.raises(ValueError, match="'film'.*one hand or foot"):
        m.landmark_errors({"film": {"left_hand_mcp2": (0, 0), "right_foot_mtp1": (1, 1)}},
                          {"film": {"left_hand_mcp2": (0, 0)}})
