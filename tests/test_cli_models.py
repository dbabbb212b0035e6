"""train, evaluate, compare and survival from the command line, on a small simulated registry."""
from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from rxpredict.bundle import load_bundle, load_survival, save_bundle
from rxpredict.cli import main
from rxpredict.exceptions import BundleError
from rxpredict.simulate import OPTIONS, simulate

SURVIVAL_FIGURES = {"c_index", "integrated_brier_2y", "calibration_error_1y"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    simulate(1_500, seed=8, out=root / "reg", progress=False)
    result = CliRunner().invoke(main, ["train", "--registry", str(root / "reg"), "--out", str(root / "model"),
                                       "--members", "2", "--epochs", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.fixture(scope="module")
def old_bundle(trained):
    """The same response model in a bundle without survival models, as bundles were written before them."""
    root, _ = trained
    model = load_bundle(root / "model")
    return save_bundle(model, root / "old_model", markers=model.markers_)


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _scored_rows(root, pairs: pl.DataFrame) -> pl.DataFrame:
    """The cohort rows the CLI scores for these (patient_id, index_date) pairs."""
    from rxpredict.compare import scoring_rows
    from rxpredict.registry import read_registry

    episodes = pairs.with_columns(pl.col("index_date").str.to_date())
    return scoring_rows(read_registry(root / "reg"), episodes, load_bundle(root / "model").markers_)


def test_train_writes_a_bundle_with_its_card_and_figures(trained):
    root, output = trained
    assert (root / "model" / "MODEL_CARD.md").exists() and "auroc" in output
    assert "fitting the drug-retention model" in output and "fitting the radiographic-progression model" in output
    metrics = json.loads((root / "model" / "metrics.json").read_text())["metrics"]
    assert metrics["labelled_episodes"] > 0
    for outcome in ("retention", "progression"):  # figures on the held-out patients
        assert SURVIVAL_FIGURES <= set(metrics[outcome]) and 0.5 < metrics[outcome]["c_index"] < 1
    manifest = json.loads((root / "model" / "manifest.json").read_text())["files"]
    assert {"survival.json", "survival.npz"} <= set(manifest)
    card = (root / "model" / "MODEL_CARD.md").read_text()
    assert "## Survival models" in card and "  - integrated_brier_2y:" in card and "retention, inefficacy: cox" in card


def test_survival_models_round_trip_through_a_bundle_and_tampering_is_refused(trained, old_bundle, tmp_path):
    root, _ = trained
    models = load_survival(root / "model")
    again = load_survival(save_bundle(load_bundle(root / "model"), tmp_path / "again", survival=models))
    rows = _scored_rows(root, pl.DataFrame({"patient_id": ["P0000003", "P0000004", "P0000010"],
                                            "index_date": ["2024-06-01", "2023-01-10", "2022-03-03"]}))
    for before, after in zip(models, again):
        assert_frame_equal(before.predict_options(rows), after.predict_options(rows))
    with pytest.raises(BundleError, match="holds no survival models"):
        load_survival(old_bundle)
    npz = tmp_path / "again" / "survival.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 1
    npz.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="survival.npz was changed after the bundle was written"):
        load_survival(tmp_path / "again")


def test_evaluate_against_the_oracle(trained):
    root, _ = trained
    result = CliRunner().invoke(main, ["evaluate", "--model", str(root / "model"), "--registry", str(root / "reg"),
                                       "--oracle", str(root / "reg" / "oracle.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {"auroc", "ece", "pehe_vs_mtx", "policy_regret", "interval_coverage", "oracle_auroc"} <= set(figures)
    assert 0 <= figures["interval_coverage"] <= 1 and figures["policy_regret"] >= 0
    assert SURVIVAL_FIGURES | {"rmse_p_stop_1y"} <= set(figures["retention"])
    assert SURVIVAL_FIGURES | {"rmse_p_rrp"} <= set(figures["progression"])
    assert figures["retention"]["rmse_p_stop_1y"] < 0.25 and figures["progression"]["rmse_p_rrp"] < 0.25


def test_evaluate_prints_text_and_an_old_bundle_still_evaluates_its_response_model(trained, old_bundle):
    root, _ = trained
    text = _run("evaluate", "--model", str(root / "model"), "--registry", str(root / "reg"))
    assert text.exit_code == 0, text.output
    assert "\nretention\n  episodes" in text.stdout and "\nprogression\n" in text.stdout
    assert "  integrated_brier_2y" in text.stdout and "  calibration_error_1y" in text.stdout
    old = _run("evaluate", "--model", str(old_bundle), "--registry", str(root / "reg"), "--json")
    assert old.exit_code == 0, old.output
    assert "auroc" in json.loads(old.stdout) and "retention" not in json.loads(old.stdout)
    assert "holds no survival models" in old.stderr


def test_compare_one_patient_and_many(trained, old_bundle, tmp_path):
    root, _ = trained
    runner = CliRunner()
    one = runner.invoke(main, ["compare", "--model", str(root / "model"), "--registry", str(root / "reg"),
                               "--patient", "P0000003", "--at", "2024-06-01"])
    assert one.exit_code == 0, one.output
    assert all(o in one.output for o in OPTIONS) and "best first" in one.output
    assert all(c in one.output for c in ("p_rrp", "p_stop_1y", "median_retention_days"))
    assert "safety flags (shown, never used to drop an option):" in one.output
    assert "jaki (check): Check other cardiovascular and malignancy risk factors" in one.output
    pairs = tmp_path / "pairs.csv"
    pl.DataFrame({"patient_id": ["P0000003", "P0000004"], "index_date": ["2024-06-01", "2023-01-10"]}).write_csv(pairs)
    out = tmp_path / "preds.parquet"
    many = runner.invoke(main, ["compare", "--model", str(root / "model"), "--registry", str(root / "reg"),
                                "--episodes", str(pairs), "--out", str(out)])
    assert many.exit_code == 0, many.output
    preds = pl.read_parquet(out)
    assert preds.height == 2 * len(OPTIONS)
    assert preds.columns == ["patient_id", "index_date", "therapy", "p_response", "p_response_low", "p_response_high",
                             "p_good", "p_remission", "expected_das28_change", "p_rrp", "p_stop_1y",
                             "median_retention_days", "support", "ood"]
    assert preds["p_rrp"].is_between(0, 1).all() and preds["p_stop_1y"].is_between(0, 1).all()
    # joined per option: the retention model's own prediction for (patient, date, option)
    direct = load_survival(root / "model").retention.predict_options(_scored_rows(root, pl.read_csv(pairs)))
    check = preds.join(direct, on=["patient_id", "index_date", "therapy"], suffix="_direct")
    assert check.height == preds.height and (check["p_stop_1y"] == check["p_stop_1y_direct"]).all()
    old = runner.invoke(main, ["compare", "--model", str(old_bundle), "--registry", str(root / "reg"),
                               "--episodes", str(pairs), "--out", str(out)])
    assert old.exit_code == 0 and "holds no survival models" in old.stderr
    assert "p_rrp" not in pl.read_parquet(out).columns
    pl.DataFrame({"patient_id": ["P0000003"], "index_date": ["2024-13-01"]}).write_csv(pairs)
    bad_date = runner.invoke(main, ["compare", "--model", str(root / "model"), "--registry", str(root / "reg"),
                                    "--episodes", str(pairs), "--out", str(out)])
    assert bad_date.exit_code == 2 and "row 1: index_date is not a YYYY-MM-DD date" in bad_date.output
    unknown = runner.invoke(main, ["compare", "--model", str(root / "model"), "--registry", str(root / "reg"),
                                   "--patient", "NOBODY"])
    assert unknown.exit_code == 2 and "not in the registry" in unknown.output
    bad = runner.invoke(main, ["compare", "--model", str(root / "reg"), "--registry", str(root / "reg"),
                               "--patient", "P0000003"])
    assert bad.exit_code == 1 and "not a model bundle" in bad.output


def test_survival_prints_the_options_and_draws_the_curves(trained, old_bundle, tmp_path):
    from matplotlib import image

    root, _ = trained
    args = ["survival", "--model", str(root / "model"), "--registry", str(root / "reg"), "--patient", "P0000003",
            "--at", "2024-06-01"]
    result = _run(*args, "--out", str(tmp_path / "curves.png"))
    assert result.exit_code == 0, result.output
    assert all(o in result.stdout for o in OPTIONS)
    assert all(c in result.stdout for c in ("p_stop_1y", "median_retention_days", "p_rrp", "support_retention"))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.imread(tmp_path / "curves.png").shape[0] > 100
    jpg = _run(*args, "--out", str(tmp_path / "curves.jpg"))
    assert jpg.exit_code == 2 and "curves.jpg: the suffix must be one of .png, .svg" in jpg.output
    old = _run("survival", "--model", str(old_bundle), "--registry", str(root / "reg"), "--patient", "P0000003")
    assert old.exit_code == 1 and "holds no survival models" in old.output


def test_explain_one_option_and_a_contrast(trained, tmp_path):
    root, _ = trained
    args = ["explain", "--model", str(root / "model"), "--registry", str(root / "reg"), "--patient", "P0000003",
            "--at", "2024-06-01"]
    text = _run(*args, "--therapy", "il6i", "--plot", str(tmp_path / "why.png"))
    assert text.exit_code == 0, text.output
    assert "main reasons:" in text.stdout and "IL-6 inhibitor" in text.stdout and "by source of data" in text.stdout
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = _run(*args, "--therapy", "rituximab", "--versus", "csdmard_mtx", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["versus"] == "csdmard_mtx" and len(out["reasons"]) == 3
    assert {m["block"] for m in out["by_modality"]} >= {"clinical", "genetic", "imaging"}
    total = out["base_value"] + sum(f["shap"] for f in out["features"])
    assert abs(total - out["explained_value"]) < 1e-9
    bad = _run(*args, "--therapy", "aspirin")
    assert bad.exit_code == 2 and "aspirin" in bad.output
    same = _run(*args, "--therapy", "il6i", "--versus", "il6i")
    assert same.exit_code == 2 and "same option" in same.output


def test_explain_progression_adds_up_to_the_bundles_p_rrp(trained, old_bundle):
    root, _ = trained
    args = ["explain", "--registry", str(root / "reg"), "--patient", "P0000003", "--at", "2024-06-01",
            "--therapy", "tnfi", "--output", "p_rrp"]
    result = _run(*args, "--model", str(root / "model"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["scale"] == "probability of the progression model" and len(out["reasons"]) == 3
    assert {m["block"] for m in out["by_modality"]} == {"clinical", "genetic", "imaging"}
    rows = _scored_rows(root, pl.DataFrame({"patient_id": ["P0000003"], "index_date": ["2024-06-01"]}))
    predicted = load_survival(root / "model").progression.predict_options(rows).filter(pl.col("therapy") == "tnfi")
    assert abs(out["explained_value"] - predicted["p_rrp"][0]) < 1e-4
    text = _run(*args, "--model", str(root / "model"), "--versus", "csdmard_mtx")
    assert text.exit_code == 0 and "risk of rapid radiographic progression" in text.stdout
    old = _run(*args, "--model", str(old_bundle))
    assert old.exit_code == 1 and "holds no survival models" in old.output
