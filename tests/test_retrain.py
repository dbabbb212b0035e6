"""Training a bundle with progress and evaluation plots (rxpredict.retrain), the epoch listener, and ``rxpredict train``
over them."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread

from rxpredict.bundle import load_models, load_survival
from rxpredict.cli import main
from rxpredict.evaluation_plots import PLOTS, bundle_plots
from rxpredict.exceptions import BundleError
from rxpredict.models.training import epoch_listener, train_early_stopping
from rxpredict.registry import read_registry
from rxpredict.retrain import WARNING, train_bundle
from rxpredict.simulate import simulate

FAST = {"members": 2, "epochs": 3}


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    """Registries of 400 patients, large enough for every model, and of 60, too small for the survival models."""
    root = tmp_path_factory.mktemp("retrain")
    simulate(400, seed=5, out=root / "reg", progress=False)
    simulate(400, seed=2, out=root / "few_events", progress=False)  # held out with seed 1: too few to evaluate
    simulate(60, seed=1, out=root / "small", progress=False)
    return root


@pytest.fixture(scope="module")
def trained(registries):
    reports = []
    figures = train_bundle(read_registry(registries / "reg"), registries / "model", seed=1, **FAST,
                           report=lambda stage, fraction: reports.append((stage, fraction)))
    return registries / "model", figures, reports


def test_progress_rises_to_one_through_every_stage_and_the_bundle_loads(trained):
    out, figures, reports = trained
    fractions = [f for _, f in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert 0 < fractions[1] < 1
    stages = list(dict.fromkeys(stage for stage, _ in reports))
    assert stages == ["building the cohort", "training the response model: member 1 of 2",
                      "training the response model: member 2 of 2",
                      "evaluating the response model on the held-out patients",
                      "fitting the drug-retention model (stops for inefficacy and adverse events)",
                      "fitting the radiographic-progression model",
                      "evaluating the survival models on the held-out patients",
                      "drawing the evaluation plots on the held-out patients", "writing the bundle", "done"]
    assert sum(stage.startswith("training the response model") for stage, _ in reports) <= 2 * FAST["epochs"]
    model, survival = load_models(out)
    assert model.n_members == 2 and model.epochs == 3 and model.seed == 1 and survival is not None
    assert json.loads((out / "metrics.json").read_text())["metrics"] == json.loads(json.dumps(figures))
    assert {"auroc", "labelled_episodes", "retention", "progression"} <= set(figures)


def test_the_bundle_holds_its_evaluation_plots_as_pngs_its_manifest_covers(trained, tmp_path):
    out, _, _ = trained
    plots = bundle_plots(out)
    assert list(plots) == list(PLOTS)  # calibration, retention and progression: 400 patients fit every model
    for name, png in plots.items():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and imread(io.BytesIO(png)).shape[2] == 4, name
        assert json.loads((out / "manifest.json").read_text())["files"][name]
    changed = shutil.copytree(out, tmp_path / "changed")
    (changed / "retention.png").write_bytes(plots["calibration.png"])
    with pytest.raises(BundleError, match="retention.png was changed after the bundle was written"):
        bundle_plots(changed)
    with pytest.raises(BundleError, match="retention.png was changed after the bundle was written"):
        load_models(changed)


def test_a_registry_too_small_for_the_survival_models_gives_a_bundle_without_them_and_a_warning(registries,
                                                                                             tmp_path):
    reports = []
    figures = train_bundle(read_registry(registries / "small"), tmp_path / "model", **FAST,
                           report=lambda stage, fraction: reports.append((stage, fraction)))
    warnings = [stage for stage, _ in reports if stage.startswith(WARNING)]
    assert len(warnings) == 1 and "the bundle will hold no survival models: only" in warnings[0]
    assert reports[-1] == ("done", 1.0) and "retention" not in figures
    assert list(bundle_plots(tmp_path / "model")) == ["calibration.png"]
    with pytest.raises(BundleError, match="holds no survival models"):
        load_survival(tmp_path / "model")


def test_held_out_patients_too_few_to_evaluate_the_survival_models_give_a_warning(registries, tmp_path):
    reports = []
    figures = train_bundle(read_registry(registries / "few_events"), tmp_path / "model", seed=1, **FAST,
                           report=lambda stage, fraction: reports.append((stage, fraction)))
    warnings = [stage for stage, _ in reports if stage.startswith(WARNING)]
    assert warnings == [f"{WARNING}the bundle holds survival models without figures: too few held-out episodes to "
                        "evaluate them (No admissable pairs in the dataset.); train on a larger registry or hold out "
                        "more patients"]
    assert "retention" not in figures and load_survival(tmp_path / "model") is not None


def test_a_bundle_folder_in_use_or_a_bad_holdout_is_refused_before_training(registries, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    registry = read_registry(registries / "small")
    with pytest.raises(BundleError, match="taken is not empty; pass overwrite=True"):
        train_bundle(registry, tmp_path / "taken", report=pytest.fail)
    with pytest.raises(ValueError, match="holdout is a share of the patients, between 0 and 1, not 1.5"):
        train_bundle(registry, tmp_path / "new", holdout=1.5, report=pytest.fail)
    result = CliRunner().invoke(main, ["train", "--registry", str(registries / "small"), "--out",
                                       str(tmp_path / "taken")])
    assert result.exit_code == 1 and "error: " in result.output and "is not empty" in result.output
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_the_cli_prints_each_stage_once_and_the_figures(registries, tmp_path):
    result = CliRunner().invoke(main, ["train", "--registry", str(registries / "small"), "--out",
                                       str(tmp_path / "model"), "--members", "2", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.count("training the response model: member 2 of 2\n") == 1
    assert "warning: the bundle will hold no survival models" in result.output
    assert '"auroc"' in result.output and f"wrote {tmp_path / 'model'}" in result.output


def test_the_epoch_listener_hears_every_epoch_inside_its_block_only():
    network = torch.nn.Linear(2, 1)
    x, y = torch.randn(40, 2), torch.randn(40, 1)
    loss = lambda net, batch: torch.nn.functional.mse_loss(net(batch[0]), batch[1])  # noqa: E731
    fit = dict(epochs=4, batch_size=8, learning_rate=0.01, weight_decay=0.0, patience=10, description="net 1/1",
               progress=False)
    heard = []
    with epoch_listener(lambda *args: heard.append(args)):
        history = train_early_stopping(network, loss, [x, y], np.arange(30), np.arange(30, 40),
                                       np.random.default_rng(0), **fit)
    assert heard == [("net 1/1", epoch, 4) for epoch in range(1, 5)] and len(history) == 4
    train_early_stopping(network, loss, [x, y], np.arange(30), np.arange(30, 40), np.random.default_rng(0), **fit)
    assert len(heard) == 4
