"""Model bundles: a directory that holds a fitted response model (and survival models) safely and says what it is.

A bundle is written all at once (to a staging directory, then moved in) and
holds:

| file | what |
| --- | --- |
| ``weights.pt`` | every ensemble member's tensors (``torch.load(weights_only=True)``: no code is run on loading) |
| ``arrays.npz`` | scaling, calibration, propensity and out-of-distribution arrays, and the explanation background (``allow_pickle=False``) |
| ``config.json`` | parameters, options, feature columns by block, the data-contract version, library versions, a hash of the training cohort, whether survival models are included |
| ``survival.json``, ``survival.npz`` | the progression and retention models as settings and arrays (rxpredict/survival/persist.py; ``allow_pickle=False``); absent from bundles written without them |
| ``metrics.json`` | the evaluation figures given at saving |
| ``MODEL_CARD.md`` | intended use, data, metrics by subgroup, limitations |
| ``calibration.png``, ``retention.png``, ``progression.png`` | evaluation plots on the held-out patients (rxpredict/evaluation_plots.py), where the trainer drew them |
| ``manifest.json`` | SHA-256 of every other file |

:func:`load_bundle` checks the manifest, the format and the data-contract
version before it reads anything, and refuses with a :class:`BundleError`
that says which file or version is at fault. :func:`load_survival` reads the
survival models of the same bundle, and says so plainly when it has none.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl
import torch

from rxpredict.exceptions import BundleError
from rxpredict.explain.background import draw_background
from rxpredict.explain.progression import draw_progression_background
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.response import ResponseModel
from rxpredict.schemas import load_contract
from rxpredict.survival.persist import (
    SurvivalModels, models_from_arrays, models_to_arrays, overlap_from_state, overlap_state,
)

BUNDLE_FORMAT = 1
#: The response network's layout; 2: one expected change and a spread per option (models/outcome.py).
RESPONSE_FORMAT = 2
MANIFEST = "manifest.json"
LIBRARIES = ("rxpredict", "torch", "polars", "numpy", "lifelines", "shap")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def cohort_hash(cohort: pl.DataFrame) -> str:
    """A fingerprint of the training cohort: its episodes and labels, in a fixed order."""
    keys = [c for c in ("patient_id", "index_date", "therapy", "response", "good_response", "remission",
                        "das28_change") if c in cohort.columns]
    table = cohort.select(keys).sort(keys[:3], nulls_last=True)
    return hashlib.sha256(table.write_csv().encode()).hexdigest()


def subgroup_metrics(model: ResponseModel, cohort: pl.DataFrame) -> pl.DataFrame:
    """P(response) at the option given versus what happened, overall and by sex, age band and serology."""
    from rxpredict import metrics

    labelled = cohort.filter(pl.col("therapy").is_not_null() & pl.col("response").is_not_null())
    pred = model.predict_options(labelled).join(labelled.select(
        "patient_id", "index_date", "therapy", "response", "clinical_female", "clinical_age", "clinical_rf",
        "clinical_acpa"), on=["patient_id", "index_date", "therapy"], how="inner")
    groups = {
        "all": pl.lit(True),
        "women": pl.col("clinical_female") == 1, "men": pl.col("clinical_female") == 0,
        "age < 50": pl.col("clinical_age") < 50,
        "age 50-64": pl.col("clinical_age").is_between(50, 64),
        "age >= 65": pl.col("clinical_age") >= 65,
        "seropositive": (pl.col("clinical_rf") == 1) | (pl.col("clinical_acpa") == 1),
        "seronegative": (pl.col("clinical_rf") == 0) & (pl.col("clinical_acpa") == 0),
    }
    rows = []
    for name, keep in groups.items():
        part = pred.filter(keep.fill_null(False))
        y, p = part["response"].cast(pl.Int64).to_numpy(), part["p_response"].to_numpy()
        both = 0 < y.sum() < len(y)
        rows.append({"group": name, "episodes": len(y), "observed_response": float(y.mean()) if len(y) else None,
                     "mean_predicted": float(p.mean()) if len(y) else None,
                     "auroc": metrics.auroc(y, p) if both else None, "brier": metrics.brier(y, p) if len(y) else None})
    return pl.DataFrame(rows)


def _metric_lines(metrics_: dict[str, Any], indent: str = "") -> list[str]:
    """Markdown bullets of figures; a group of figures (a dict, e.g. one outcome's) as nested bullets."""
    lines = []
    for k, v in metrics_.items():
        if isinstance(v, dict):
            lines += [f"{indent}- {k}:", *_metric_lines(v, indent + "  ")]
        else:
            lines.append(f"{indent}- {k}: {v:.4g}" if isinstance(v, float) else f"{indent}- {k}: {v}")
    return lines


def _survival_card(survival: SurvivalModels) -> list[str]:
    """The card's section on the survival models: what each predicts, and which fitter was chosen and why."""
    lines = ["", "## Survival models",
             "Radiographic progression (`p_rrp`: rapid radiographic progression by the first follow-up "
             "radiograph, `p_rrp_2y`, `median_days_to_rrp`) and drug retention (`p_stop_1y` overall and per stop "
             "reason, `median_retention_days`) per option, from penalised Cox models with inverse-propensity "
             f"weights (docs/survival.md); fitted on {survival.retention.n_episodes_} episodes with a baseline "
             f"visit (retention) and {survival.progression.n_episodes_} with radiographs (progression). "
             "Their figures on the held-out patients are under Metrics (`retention`, `progression`).", ""]
    for outcome, model in survival._asdict().items():
        lines += [f"- {outcome}, {name}: {choice['fitter']} ({choice['reason']})"
                  for name, choice in model.choices_.items()]
    return lines


def _model_card(config: dict[str, Any], metrics_: dict[str, Any], subgroups: pl.DataFrame | None,
                survival: SurvivalModels | None = None) -> str:
    training = config["training"]
    lines = [
        "# Model card: rxpredict 24-week response model", "",
        f"Written {config['created']} with rxpredict {config['versions'].get('rxpredict')}, data contract "
        f"v{config['schema_version']}.", "",
        "## Intended use",
        "Decision support for rheumatologists comparing therapy options for one rheumatoid-arthritis patient: "
        "the probability of EULAR good or moderate response, of good response and of DAS28 remission at 24 "
        "weeks, and the expected DAS28 change, under each option. Never a verdict: every prediction comes with "
        "its support flag (how many comparable patients received that option) and an out-of-distribution flag.", "",
        "## Data",
        f"Trained on {training.get('labelled', '?')} labelled treatment episodes of {training.get('patients', '?')} "
        f"patients (cohort hash `{training.get('cohort_hash', '?')[:16]}`); options given: "
        + ", ".join(f"{k} {v}" for k, v in training.get("options_given", {}).items()) + ".",
        f"Features: {', '.join(f'{b} ({len(c)})' for b, c in config['blocks'].items())}, each with its mask.", "",
        "## Metrics",
    ]
    lines += _metric_lines(metrics_) or ["- none recorded at saving"]
    if subgroups is not None:
        lines += ["", "By subgroup (P(response) at the option given, on the evaluation data):", "",
                  "| group | episodes | observed | predicted | AUROC | Brier |", "| --- | --- | --- | --- | --- | --- |"]
        fmt = lambda x: "" if x is None else f"{x:.3f}"  # noqa: E731
        for r in subgroups.iter_rows(named=True):
            lines.append(f"| {r['group']} | {r['episodes']} | {fmt(r['observed_response'])} | "
                         f"{fmt(r['mean_predicted'])} | {fmt(r['auroc'])} | {fmt(r['brier'])} |")
    if survival is not None:
        lines += _survival_card(survival)
    lines += ["", "## Limitations",
              "- Observational registry data: options were chosen by indication; the model adjusts with "
              "propensity weights, which cannot remove confounding by what the registry does not record.",
              "- Predictions for an option with `support` low or none, or for an out-of-distribution patient, "
              "extrapolate and should be read as such.",
              "- The three probabilities are tails of a normal distribution of the DAS28 improvement around the "
              "predicted change, with one spread per option; where real improvements are skewed or heavy-tailed, "
              "the out-of-bag calibration corrects the average probability, not the shape.",
              "- The 90 % intervals show how much the ensemble varies, not how far it extrapolates: on simulated "
              "registries they held the true probability about 9 times in 10, about 8 in 10 under strong confounding.",
              "- Validated on simulated registries; performance on a real registry must be measured there before use.",
              ""]
    return "\n".join(lines)


def save_bundle(model: ResponseModel, directory: str | Path, *, cohort: pl.DataFrame | None = None,
                markers: list[str] | None = None, metrics: dict[str, Any] | None = None,
                evaluation: pl.DataFrame | None = None, survival: SurvivalModels | None = None,
                plots: Mapping[str, bytes] | None = None, overwrite: bool = False) -> Path:
    """Write a fitted model to ``directory`` (all or nothing).

    ``cohort`` (the training cohort) is fingerprinted and summarised in the
    card; ``markers`` (the cohort's genetic markers) let scoring build the same
    columns; ``evaluation`` (held-out episodes) gives the card its subgroup table;
    ``survival`` (fitted progression and retention models) is written beside the response model; ``plots``
    (file name -> PNG bytes) are written with the rest, so the manifest covers them.
    The explanation backgrounds are ``model.background_`` (and the progression model's), else drawn from
    ``cohort`` (seed 0).
    """
    _check_fitted(model, "networks_")
    survival_state = None if survival is None else models_to_arrays(survival)
    if survival_state is not None and "progression.background" not in survival_state[1] and cohort is not None:
        survival_state[1]["progression.background"] = draw_progression_background(survival.progression, cohort)
    labelled = None if cohort is None else cohort.filter(pl.col("therapy").is_not_null()
                                                         & pl.col("response").is_not_null())
    config = {
        "format": BUNDLE_FORMAT, "kind": "ResponseModel", "response_format": RESPONSE_FORMAT,
        "params": model.get_params(), "options": model.options_, "blocks": model.blocks_,
        "change_scale": model.change_scale_, "baseline_fill": model.baseline_fill_,
        "markers": list(markers or []),
        "survival": survival is not None, "schema_version": load_contract().version, "versions": library_versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "training": {} if labelled is None else {
            "cohort_hash": cohort_hash(cohort), "labelled": labelled.height,
            "patients": labelled["patient_id"].n_unique(),
            "options_given": dict(labelled.group_by("therapy").len().sort("therapy").iter_rows()),
        },
    }
    overlap_settings, overlap_arrays = overlap_state(model.propensity_, model.ood_)
    config |= overlap_settings
    arrays = {"mean": model.mean_, "scale": model.scale_, "calibration": model.calibration_} | overlap_arrays
    background = getattr(model, "background_", None)
    if background is None and cohort is not None:
        background = draw_background(model, cohort)
    if background is not None:  # standardised inputs of a seeded draw of training episodes (rxpredict.explain)
        arrays["background"] = background
    subgroups = None if evaluation is None else subgroup_metrics(model, evaluation)
    files = {
        "weights.pt": lambda path: save_members(model.networks_, path),
        "arrays.npz": lambda path: np.savez(path, **arrays),
        "config.json": lambda path: path.write_text(json.dumps(config, indent=2, default=str) + "\n"),
        "metrics.json": lambda path: path.write_text(json.dumps({
            "metrics": metrics or {}, "subgroups": None if subgroups is None else subgroups.to_dicts()},
            indent=2) + "\n"),
        "MODEL_CARD.md": lambda path: path.write_text(_model_card(config, metrics or {}, subgroups, survival)),
    }
    files |= {name: lambda path, png=png: path.write_bytes(png) for name, png in (plots or {}).items()}
    if survival_state is not None:
        files["survival.json"] = lambda path: path.write_text(json.dumps(survival_state[0], indent=1) + "\n")
        files["survival.npz"] = lambda path: np.savez(path, **survival_state[1])
    return write_bundle(directory, files, overwrite=overwrite)


def save_members(networks: list[torch.nn.Module], path: Path) -> None:
    """Every ensemble member's tensors in one file, named ``member<k>.<tensor>``."""
    torch.save({f"member{k}.{name}": tensor for k, net in enumerate(networks)
                for name, tensor in net.state_dict().items()}, path)


def load_members(path: Path, new_network: Callable[[], torch.nn.Module], n_members: int) -> list[torch.nn.Module]:
    """The ensemble of :func:`save_members`, read with ``weights_only=True`` into fresh networks, in eval mode."""
    tensors = torch.load(path, weights_only=True)
    members = []
    for k in range(n_members):
        network = new_network()
        prefix = f"member{k}."
        network.load_state_dict({n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)})
        members.append(network.eval())
    return members


def write_bundle(directory: str | Path, files: Mapping[str, Callable[[Path], None]], *,
                 overwrite: bool = False) -> Path:
    """Write a bundle all at once: each file by its writer into a staging directory, a manifest, then move in."""
    target = Path(directory)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise BundleError(f"{target} is not empty; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rxpredict-bundle-", dir=target.parent))
    try:
        for name, write in files.items():
            write(staging / name)
        manifest = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
        (staging / MANIFEST).write_text(json.dumps({"format": BUNDLE_FORMAT, "files": manifest}, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def verified_config(directory: Path) -> dict[str, Any]:
    """The config of a bundle whose files all match its manifest (else BundleError naming the file)."""
    if not (directory / MANIFEST).is_file():
        raise BundleError(f"{directory} is not a model bundle (no {MANIFEST})")
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{directory}: bundle format {manifest.get('format')}, this rxpredict reads {BUNDLE_FORMAT}")
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{directory}: {name} is missing")
        if _sha256(path) != digest:
            raise BundleError(f"{directory}: {name} was changed after the bundle was written (checksum mismatch)")
    config = json.loads((directory / "config.json").read_text())
    contract = load_contract().version
    if config["schema_version"] != contract:
        raise BundleError(f"{directory}: trained on data contract v{config['schema_version']}, "
                          f"this installation has v{contract}; retrain the model")
    return config


def load_bundle(directory: str | Path) -> ResponseModel:
    """The model of a verified bundle, ready to ``predict_options``."""
    directory = Path(directory)
    config = verified_config(directory)
    if config.get("kind") != "ResponseModel":
        raise BundleError(f"{directory}: a {config.get('kind')} bundle, not a response model")
    if config.get("response_format", 1) != RESPONSE_FORMAT:
        raise BundleError(f"{directory}: a response model of format {config.get('response_format', 1)}, written by "
                          f"an older rxpredict; this one reads format {RESPONSE_FORMAT}: train it again")
    arrays = np.load(directory / "arrays.npz", allow_pickle=False)
    model = ResponseModel(**config["params"])
    model.options_ = config["options"]
    model._set_blocks({b: list(c) for b, c in config["blocks"].items()})
    model.mean_, model.scale_, model.calibration_ = arrays["mean"], arrays["scale"], arrays["calibration"]
    model.change_scale_, model.baseline_fill_ = config["change_scale"], config["baseline_fill"]
    if "background" in arrays.files:  # absent from bundles written before explanations, or without a cohort
        model.background_ = arrays["background"]
    model.propensity_, model.ood_ = overlap_from_state(config, arrays)
    model.networks_ = load_members(directory / "weights.pt", model._new_network, model.n_members)
    model.history_ = []
    model.markers_ = config["markers"]
    model.contract_version_ = config["schema_version"]
    return model


def load_survival(directory: str | Path, response: ResponseModel | None = None) -> SurvivalModels:
    """The progression and retention models of a verified bundle, ready to ``predict_options``.

    The retention model reads the bundle's response model (its P(response)
    per option is a covariate): pass it as ``response`` where it is loaded
    already, else it is loaded here. A bundle written without survival models
    (before they were bundled, or when the registry was too small to fit
    them) is refused with a BundleError that says so.
    """
    directory = Path(directory)
    config = verified_config(directory)
    if not config.get("survival"):
        raise BundleError(f"{directory} holds no survival models (it was written without them): progression and "
                          "retention predictions need a bundle from `rxpredict train` on a registry large enough "
                          "to fit them")
    settings = json.loads((directory / "survival.json").read_text())
    if response is None and settings.get("retention", {}).get("efficacy_moments_") is not None:
        response = load_bundle(directory)
    with np.load(directory / "survival.npz", allow_pickle=False) as arrays:
        return models_from_arrays(settings, {name: arrays[name] for name in arrays.files}, efficacy=response)


def load_models(directory: str | Path) -> tuple[ResponseModel, SurvivalModels | None]:
    """The response model of a bundle and its survival models, None where it was written without them."""
    model = load_bundle(directory)
    return model, (load_survival(directory, model) if verified_config(Path(directory)).get("survival") else None)
