"""The command line: exit codes, text and JSON reports, help for every command."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from rxpredict.cli import main


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_commands_and_each_has_help(runner):
    out = runner.invoke(main, ["--help"])
    assert out.exit_code == 0
    for command in main.commands:
        assert command in out.output
        sub = runner.invoke(main, [command, "--help"])
        assert sub.exit_code == 0 and "Usage:" in sub.output


def test_validate_exit_codes(runner, example_dir, tmp_path):
    assert runner.invoke(main, ["validate", str(example_dir)]).exit_code == 0
    bad = tmp_path / "bad"
    shutil.copytree(example_dir, bad)
    (bad / "visits.csv").write_text((bad / "visits.csv").read_text().replace(",1.375,", ",1.3,"))
    result = runner.invoke(main, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "[visits]" in result.output and "multiple_of haq_di" in result.output and "row 1: '1.3'" in result.output
    missing = runner.invoke(main, ["validate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_validate_json(runner, example_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(example_dir, bad)
    (bad / "patients.csv").write_text((bad / "patients.csv").read_text().replace("EX002,F", "EX002,X"))
    result = runner.invoke(main, ["validate", str(bad), "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["ok"] is False and doc["n_errors"] == 1
    assert doc["violations"][0] | {"message": None} == {
        "severity": "error", "table": "patients", "row": 2, "column": "sex", "value": "X", "rule": "enum",
        "message": None}


def test_scores_prints_derived_scores(runner, example_dir):
    result = runner.invoke(main, ["scores", str(example_dir), "--patient", "EX003"])
    assert result.exit_code == 0, result.output
    assert "das28_esr" in result.output and "EX003" in result.output and "EX001" not in result.output
    assert "ESR below 1 mm/h was taken as 1" in result.output  # EX003's first visit has ESR 0


def test_dictionary_check(runner, tmp_path):
    stale = tmp_path / "dd.md"
    stale.write_text("old")
    assert runner.invoke(main, ["dictionary", "--out", str(stale), "--check"]).exit_code == 1
    assert runner.invoke(main, ["dictionary", "--out", str(stale)]).exit_code == 0
    assert runner.invoke(main, ["dictionary", "--out", str(stale), "--check"]).exit_code == 0
