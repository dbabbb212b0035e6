"""Radiograph scorer bundles: the networks' tensors (read with ``weights_only=True``), JSON config, a model card.

A bundle is written all at once through :func:`rxpredict.bundle.write_bundle`
(staging folder, checksummed manifest) and read back only after every file
matches its checksum and the data contract's version matches.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import torch

from rxpredict.bundle import library_versions, verified_config, write_bundle
from rxpredict.exceptions import BundleError
from rxpredict.imaging.scorer import REGIONS, RadiographScorer, areas, region_areas
from rxpredict.schemas import load_contract

KIND = "radiograph_scorer"
SCORER_FORMAT = 2


def save_scorer(scorer: RadiographScorer, directory: str | Path, *, metrics: dict[str, Any] | None = None,
                overwrite: bool = False) -> Path:
    """Write a fitted scorer, with its training summary and held-out ``metrics``, to ``directory``."""
    if not hasattr(scorer, "crop_scorer_"):
        raise BundleError("fit the scorer before saving it")
    tensors = {f"locator.{r}.{n}": t for r in REGIONS for n, t in scorer.locators_[r].state_dict().items()}
    tensors |= {f"scorer.{n}": t for n, t in scorer.crop_scorer_.state_dict().items()}
    config = {
        "kind": KIND, "scorer_format": SCORER_FORMAT, "params": scorer.get_params(), "areas": areas(),
        "regions": {r: region_areas(r) for r in REGIONS}, "training": scorer.training_,
        "validation_patients": scorer.validation_patients_,
        "schema_version": load_contract().version, "versions": library_versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    files = {
        "weights.pt": lambda path: torch.save(tensors, path),
        "config.json": lambda path: path.write_text(json.dumps(config, indent=2) + "\n"),
        "metrics.json": lambda path: path.write_text(json.dumps({"metrics": metrics or {}}, indent=2) + "\n"),
        "MODEL_CARD.md": lambda path: path.write_text(_card(config, metrics or {})),
    }
    return write_bundle(directory, files, overwrite=overwrite)


def load_scorer(directory: str | Path) -> RadiographScorer:
    """The fitted scorer of a verified bundle (BundleError naming what is wrong otherwise)."""
    directory = Path(directory)
    config = verified_config(directory)
    if config.get("kind") != KIND:
        raise BundleError(f"{directory}: a {config.get('kind') or 'response model'} bundle, not a radiograph scorer")
    if config.get("scorer_format") != SCORER_FORMAT or config["areas"] != areas():
        raise BundleError(f"{directory}: a radiograph scorer of another format or joint-area list; train it again")
    params = config["params"] | {"progress": False}
    scorer = RadiographScorer(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    tensors = torch.load(directory / "weights.pt", weights_only=True)

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}

    scorer.locators_ = {}
    for region in REGIONS:
        scorer.locators_[region] = scorer.new_locator(region)
        scorer.locators_[region].load_state_dict(part(f"locator.{region}."))
        scorer.locators_[region].eval()
    scorer.crop_scorer_ = scorer.new_crop_scorer()
    scorer.crop_scorer_.load_state_dict(part("scorer."))
    scorer.crop_scorer_.eval()
    scorer.training_, scorer.validation_patients_, scorer.history_ = config["training"], config["validation_patients"], {}
    return scorer


def scorer_metrics(directory: str | Path) -> dict[str, Any]:
    """The held-out figures stored with a bundle."""
    return json.loads((Path(directory) / "metrics.json").read_text())["metrics"]


def _card(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    training = config["training"]
    lines = [
        "# Radiograph damage scorer", "",
        f"Created {config['created']} with rxpredict {config['versions'].get('rxpredict')}, "
        f"data contract v{config['schema_version']}.", "",
        "Locates the Sharp/van der Heijde joint areas of hand and foot films with a heat-map network, then scores "
        "each area's erosion and joint-space narrowing with an ordinal crop network; totals are sums.", "",
        "## Training", "",
        f"- {training['patients']} patients ({training['validation_patients']} held out), {training['films']} films",
        f"- films with landmark files: {training['films_with_landmark_files']}",
        f"- {training['seconds']} s", "",
        "## Held-out figures", "",
        *(f"- {name}: {value}" for name, value in metrics.items()), "",
        "## Limits", "",
        "Figures hold for films like the training films only. A scorer trained on synthetic films "
        "(`rxpredict imaging synth`) has never seen a real radiograph: retrain on scored real films "
        "before any clinical use, and have a reader confirm every score.", "",
    ]
    return "\n".join(lines)
