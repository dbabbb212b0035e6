"""train, evaluate and compare from the command line, on a small simulated registry."""
from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from rxpredict.cli import main
from rxpredict.simulate import OPTIONS, simulate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    simulate(1_500, seed=8, out=root / "reg", progress=False)
    result = CliRunner().invoke(main, ["train", "--registry", str(root / "reg"), "--out", str(root / "model"),
                                       "--members", "2", "--epochs", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return root, result.output


def test_train_writes_a_bundle_with_its_card_and_figures(trained):
    root, output = trained
    assert (root / "model" / "MODEL_CARD.md").exists() and "auroc" in output
    assert json.loads((root / "model" / "metrics.json").read_text())["metrics"]["labelled_episodes"] > 0


def test_evaluate_against_the_oracle(trained):
    root, _ = trained
    result = CliRunner().invoke(main, ["evaluate", "--model", str(root / "model"), "--registry", str(root / "reg"),
                                       "--oracle", str(root / "reg" / "oracle.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert {"auroc", "ece", "pehe_vs_mtx", "policy_regret", "interval_coverage", "oracle_auroc"} <= set(figures)
    assert 0 <= figures["interval_coverage"] <= 1 and figures["policy_regret"] >= 0


def test_compare_one_patient_and_many(trained, tmp_path):
    root, _ = trained
    runner = CliRunner()
    one = runner.invoke(main, ["compare", "--model", str(root / "model"), "--registry", str(root / "reg"),
                               "--patient", "P0000003", "--at", "2024-06-01"])
    assert one.exit_code == 0, one.output
    assert all(o in one.output for o in OPTIONS) and "best first" in one.output
    pairs = tmp_path / "pairs.csv"
    pl.DataFrame({"patient_id": ["P0000003", "P0000004"], "index_date": ["2024-06-01", "2023-01-10"]}).write_csv(pairs)
    out = tmp_path / "preds.parquet"
    many = runner.invoke(main, ["compare", "--model", str(root / "model"), "--registry", str(root / "reg"),
                                "--episodes", str(pairs), "--out", str(out)])
    assert many.exit_code == 0, many.output
    preds = pl.read_parquet(out)
    assert preds.height == 2 * len(OPTIONS)
    assert preds.columns == ["patient_id", "index_date", "therapy", "p_response", "p_response_low", "p_response_high",
                             "p_good", "p_remission", "expected_das28_change", "support", "ood"]
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
