"""Flare-risk bundles: the fitted network, its alert policy and SHAP background, written and read safely.

The same bundle layout and checks as the response model's (rxpredict/bundle.py):
``weights.pt`` (``torch.load(weights_only=True)``), ``arrays.npz``
(``allow_pickle=False``), ``config.json``, ``metrics.json``,
``MODEL_CARD.md`` and a manifest of checksums; a changed file or another
data-contract version is refused with a BundleError that says which.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from rxpredict.bundle import library_versions, load_members, save_members, verified_config, write_bundle
from rxpredict.exceptions import BundleError
from rxpredict.models.encoding import PiecewiseLinearEncoder, QuantileBins
from rxpredict.monitoring.alerts import AlertPolicy
from rxpredict.monitoring.model import FlareRiskModel
from rxpredict.schemas import load_contract

KIND = "FlareRiskModel"
#: Raised whenever what the bundle's files mean changes (3: an ensemble on piecewise-linear encoded inputs;
#: 4: with a wide table per input and quantile bin, whose edges are ``wide_edges``).
MONITOR_FORMAT = 4


def _card(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    lines = ["# Model card: flare-risk monitor", "",
             f"Created {config['created']} by rxpredict {config['versions'].get('rxpredict')}, "
             f"data contract v{config['schema_version']}.", "",
             "## Intended use",
             "Between clinic visits, ranks patients who share wearable and self-reported data by their "
             "probability of a flare (DAS28 flare or a glucocorticoid escalation) in the next 28 days, and "
             "raises alerts within a budget so that a clinician can call the patient earlier. It does not "
             "diagnose a flare and does not replace the visit.", "",
             "## Data",
             f"{config['training'].get('patient_days', 0):,} labelled patient-days of "
             f"{config['training'].get('patients', 0):,} patients; flare rate "
             f"{config['training'].get('flare_rate', float('nan')):.3f}; training data hash "
             f"`{config['training'].get('hash', '')}`.", "",
             "## Alert policy",
             f"Alert at P(flare in 28 days) >= {config['policy']['threshold']:.3f}, at most one alert per "
             f"{config['policy']['quiet_days']} days per patient; fitted for a budget of "
             f"{config['policy']['budget_per_month']} alerts per patient-month.", "",
             "## Metrics (held-out patients)"]
    lines += [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in metrics.items()]
    lines += ["", "## Limitations",
              "- Registry flares are seen only at visits and in treatment records: a flare the clinic never saw is "
              "a missed label, and days near the end of follow-up are left out.",
              "- A device change shifts a stream's level until the personal baseline (56 days, ending a week "
              "earlier) has caught up.",
              "- Validated on simulated registries; measure it on a real registry before use.", ""]
    return "\n".join(lines)


def save_monitor(model: FlareRiskModel, policy: AlertPolicy, background: tuple[np.ndarray, np.ndarray],
                 directory: str | Path, *, metrics: dict[str, Any] | None = None,
                 training: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write the fitted model, its fitted alert policy and the SHAP background (sequence, tabular) to ``directory``."""
    if policy.threshold_ is None or not hasattr(model, "networks_"):
        raise BundleError("fit the model and its alert policy before saving them")
    config = {
        "kind": KIND, "monitor_format": MONITOR_FORMAT, "params": model.get_params(), "tabular_names": model.tabular_names_,
        "n_channels": model.n_channels_, "calibration": list(model.calibration_),
        "policy": {"threshold": policy.threshold_, "budget_per_month": policy.budget_per_month,
                   "quiet_days": policy.quiet_days},
        "schema_version": load_contract().version, "versions": library_versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "training": training or {},
    }
    arrays = {"edges": model.encoder_.edges_, "wide_edges": model.bins_.edges_, "background_sequence": background[0],
              "background_tabular": background[1]}
    files = {
        "weights.pt": lambda path: save_members(model.networks_, path),
        "arrays.npz": lambda path: np.savez(path, **arrays),
        "config.json": lambda path: path.write_text(json.dumps(config, indent=2) + "\n"),
        "metrics.json": lambda path: path.write_text(json.dumps({"metrics": metrics or {}}, indent=2) + "\n"),
        "MODEL_CARD.md": lambda path: path.write_text(_card(config, metrics or {})),
    }
    return write_bundle(directory, files, overwrite=overwrite)


def load_monitor(directory: str | Path) -> tuple[FlareRiskModel, AlertPolicy, tuple[np.ndarray, np.ndarray], dict]:
    """The model, its alert policy, the SHAP background and the metrics of a verified flare-risk bundle."""
    directory = Path(directory)
    config = verified_config(directory)
    if config.get("kind") != KIND:
        raise BundleError(f"{directory}: a {config.get('kind')} bundle, not a flare-risk model")
    if config.get("monitor_format") != MONITOR_FORMAT:
        raise BundleError(f"{directory}: a flare-risk bundle of format {config.get('monitor_format')}, this rxpredict "
                          f"reads format {MONITOR_FORMAT}; train it again")
    model = FlareRiskModel(**config["params"])
    model.tabular_names_, model.n_channels_ = config["tabular_names"], config["n_channels"]
    model.calibration_ = tuple(config["calibration"])
    with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
        model.encoder_ = PiecewiseLinearEncoder(model.n_bins).set_edges(arrays["edges"])
        model.bins_ = QuantileBins(model.wide_bins)
        model.bins_.edges_ = arrays["wide_edges"]
        background = (arrays["background_sequence"], arrays["background_tabular"])
    model.networks_ = load_members(directory / "weights.pt", model.new_network, model.n_members)
    model.history_ = []
    policy = AlertPolicy(budget_per_month=config["policy"]["budget_per_month"],
                         quiet_days=config["policy"]["quiet_days"], threshold_=config["policy"]["threshold"])
    metrics = json.loads((directory / "metrics.json").read_text())["metrics"]
    return model, policy, background, metrics

