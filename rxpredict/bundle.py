"""Model bundles: a directory that holds a fitted response model safely and says what it is.

A bundle is written all at once (to a staging directory, then moved in) and
holds:

| file | what |
| --- | --- |
| ``weights.pt`` | every ensemble member's tensors (``torch.load(weights_only=True)``: no code is run on loading) |
| ``arrays.npz`` | scaling, calibration, propensity and out-of-distribution arrays (``allow_pickle=False``) |
| ``config.json`` | parameters, options, feature columns by block, the data-contract version, library versions, a hash of the training cohort |
| ``metrics.json`` | the evaluation figures given at saving |
| ``MODEL_CARD.md`` | intended use, data, metrics by subgroup, limitations |
| ``manifest.json`` | SHA-256 of every other file |

:func:`load_bundle` checks the manifest, the format and the data-contract
version before it reads anything, and refuses with a :class:`BundleError`
that says which file or version is at fault.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rxpredict.exceptions import BundleError
from rxpredict.models.overlap import OutOfDistribution, PropensityModel, _check_fitted
from rxpredict.models.response import ResponseModel
from rxpredict.schemas import load_contract

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
PROPENSITY_ARRAYS = ("medians_", "center_", "scale_", "coef_", "intercept_")
OOD_ARRAYS = ("mean_", "scale_", "low_", "high_", "precision_")
LIBRARIES = ("rxpredict", "torch", "polars", "numpy", "lifelines", "shap")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
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


def _model_card(config: dict[str, Any], metrics_: dict[str, Any], subgroups: pl.DataFrame | None) -> str:
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
    lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in metrics_.items()] or [
        "- none recorded at saving"]
    if subgroups is not None:
        lines += ["", "By subgroup (P(response) at the option given, on the evaluation data):", "",
                  "| group | episodes | observed | predicted | AUROC | Brier |", "| --- | --- | --- | --- | --- | --- |"]
        fmt = lambda x: "" if x is None else f"{x:.3f}"  # noqa: E731
        for r in subgroups.iter_rows(named=True):
            lines.append(f"| {r['group']} | {r['episodes']} | {fmt(r['observed_response'])} | "
                         f"{fmt(r['mean_predicted'])} | {fmt(r['auroc'])} | {fmt(r['brier'])} |")
    lines += ["", "## Limitations",
              "- Observational registry data: options were chosen by indication; the model adjusts with "
              "propensity weights, which cannot remove confounding by what the registry does not record.",
              "- Predictions for an option with `support` low or none, or for an out-of-distribution patient, "
              "extrapolate and should be read as such.",
              "- Validated on simulated registries; performance on a real registry must be measured there before use.",
              ""]
    return "\n".join(lines)


def save_bundle(model: ResponseModel, directory: str | Path, *, cohort: pl.DataFrame | None = None,
                markers: list[str] | None = None, metrics: dict[str, Any] | None = None,
                evaluation: pl.DataFrame | None = None, overwrite: bool = False) -> Path:
    """Write a fitted model to ``directory`` (all or nothing).

    ``cohort`` (the training cohort) is fingerprinted and summarised in the
    card; ``markers`` (the cohort's genetic markers) let scoring build the same
    columns; ``evaluation`` (held-out episodes) gives the card its subgroup table.
    """
    _check_fitted(model, "networks_")
    target = Path(directory)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise BundleError(f"{target} is not empty; pass overwrite=True to replace it")
    labelled = None if cohort is None else cohort.filter(pl.col("therapy").is_not_null()
                                                         & pl.col("response").is_not_null())
    config = {
        "format": BUNDLE_FORMAT, "kind": "ResponseModel", "params": model.get_params(),
        "options": model.options_, "blocks": model.blocks_, "change_scale": model.change_scale_,
        "markers": list(markers or []),
        "propensity": {"options": model.propensity_.options_, "classes": model.propensity_.classes_,
                       "params": {k: getattr(model.propensity_, k) for k in ("C", "low_support", "no_support",
                                                                              "max_iter")}},
        "ood": {"threshold": model.ood_.threshold_,
                "params": {k: getattr(model.ood_, k) for k in ("quantile", "shrinkage", "margin")}},
        "schema_version": load_contract().version, "versions": _versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "training": {} if labelled is None else {
            "cohort_hash": cohort_hash(cohort), "labelled": labelled.height,
            "patients": labelled["patient_id"].n_unique(),
            "options_given": dict(labelled.group_by("therapy").len().sort("therapy").iter_rows()),
        },
    }
    arrays = {"mean": model.mean_, "scale": model.scale_, "calibration": model.calibration_}
    arrays |= {f"propensity_{a}": getattr(model.propensity_, a) for a in PROPENSITY_ARRAYS}
    arrays |= {f"ood_{a}": getattr(model.ood_, a) for a in OOD_ARRAYS}
    subgroups = None if evaluation is None else subgroup_metrics(model, evaluation)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rxpredict-bundle-", dir=parent))
    try:
        torch.save({f"member{k}.{name}": tensor for k, net in enumerate(model.networks_)
                    for name, tensor in net.state_dict().items()}, staging / "weights.pt")
        np.savez(staging / "arrays.npz", **arrays)
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        (staging / "metrics.json").write_text(json.dumps({
            "metrics": metrics or {}, "subgroups": None if subgroups is None else subgroups.to_dicts()},
            indent=2) + "\n")
        (staging / "MODEL_CARD.md").write_text(_model_card(config, metrics or {}, subgroups))
        manifest = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
        (staging / MANIFEST).write_text(json.dumps({"format": BUNDLE_FORMAT, "files": manifest}, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _verified(directory: Path) -> dict[str, Any]:
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
    config = _verified(directory)
    if config.get("kind") != "ResponseModel":
        raise BundleError(f"{directory}: a {config.get('kind')} bundle, not a response model")
    arrays = np.load(directory / "arrays.npz", allow_pickle=False)
    model = ResponseModel(**config["params"])
    model.options_ = config["options"]
    model._set_blocks({b: list(c) for b, c in config["blocks"].items()})
    model.mean_, model.scale_, model.calibration_ = arrays["mean"], arrays["scale"], arrays["calibration"]
    model.change_scale_ = config["change_scale"]
    prop = PropensityModel(options=config["propensity"]["options"], **config["propensity"]["params"])
    prop.options_, prop.classes_ = config["propensity"]["options"], config["propensity"]["classes"]
    for a in PROPENSITY_ARRAYS:
        setattr(prop, a, arrays[f"propensity_{a}"])
    prop.n_features_in_ = len(model.columns_)
    model.propensity_ = prop
    ood = OutOfDistribution(**config["ood"]["params"])
    for a in OOD_ARRAYS:
        setattr(ood, a, arrays[f"ood_{a}"])
    ood.threshold_, ood.n_features_in_ = config["ood"]["threshold"], len(model.columns_)
    model.ood_ = ood
    tensors = torch.load(directory / "weights.pt", weights_only=True)
    model.networks_ = []
    for k in range(model.n_members):
        network = model._new_network()
        prefix = f"member{k}."
        network.load_state_dict({n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)})
        model.networks_.append(network.eval())
    model.history_ = []
    model.markers_ = config["markers"]
    model.contract_version_ = config["schema_version"]
    return model
