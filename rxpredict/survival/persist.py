"""Fitted survival models as JSON-able settings plus named numpy arrays, and back: model bundles without pickle.

:func:`to_arrays` turns a fitted :class:`ProgressionModel` or
:class:`RetentionModel` into ``(settings, arrays)``; :func:`from_arrays`
rebuilds a model that predicts identically. What is kept is what prediction
needs, and the record of how the model was chosen:

| part | settings (JSON) | arrays |
| --- | --- | --- |
| the estimator | kind, ``get_params()``, options, propensity columns, episodes, ``choices_`` (and ``first_exam_days_``) | ``times`` (the time grid); progression: ``background`` (the explanation background, where drawn) |
| ``design`` (and per imaging pattern ``design.<pattern>``) | covariates, modifiers, logged, those kept, options with an indicator, the reference, the column order | ``mean``, ``scale`` |
| ``overlap`` | propensity options, classes and parameters; OOD threshold and parameters | the propensity and OOD arrays |
| ``hazard.<cause or pattern>`` | ``HazardModel`` parameters, choice, reason, events, PH test; the predictor's kind, columns and strata | ``penalties``; coefficients, centring and baseline cumulative hazard per stratum (Cox) or log-lambda and log-rho coefficients (Weibull AFT) |

Array names are the dotted path of their part (``hazard.inefficacy.predictor.coef``).
A loaded model has no lifelines ``fitter_``: it predicts from the array
predictor (rxpredict/survival/predictor.py), as a fitted one does.
:func:`overlap_state` and :func:`overlap_from_state` are shared with the
response model's bundle (rxpredict/bundle.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from rxpredict.models.overlap import OutOfDistribution, PropensityModel, _check_fitted
from rxpredict.survival.design import SurvivalDesign
from rxpredict.survival.fitters import HazardModel
from rxpredict.survival.predictor import predictor_from_state
from rxpredict.survival.progression import ProgressionModel
from rxpredict.survival.retention import RetentionModel

if TYPE_CHECKING:
    from rxpredict.models.response import ResponseModel

State = tuple[dict[str, Any], dict[str, np.ndarray]]
PROPENSITY_ARRAYS = ("medians_", "center_", "scale_", "coef_", "intercept_")
PROPENSITY_PARAMS = ("C", "low_support", "no_support", "max_iter")
OOD_ARRAYS = ("mean_", "scale_", "low_", "high_", "precision_")
OOD_PARAMS = ("quantile", "shrinkage", "margin")
DESIGN_LISTS = ("covariates_", "modifiers_", "options_", "indicated_", "columns_")
HAZARD_PARAMS = ("option_terms", "ph_alpha", "ph_remedy", "check_days", "interaction_scales", "robust")
KINDS = {"ProgressionModel": ProgressionModel, "RetentionModel": RetentionModel}


class SurvivalModels(NamedTuple):
    """The two survival models a bundle holds."""

    progression: ProgressionModel
    retention: RetentionModel


def _nest(settings: dict[str, Any], arrays: dict[str, np.ndarray], name: str, part: State) -> None:
    """Put ``part`` into ``settings[name]`` and ``arrays`` (its names prefixed ``name.``)."""
    settings[name] = part[0]
    arrays.update({f"{name}.{key}": value for key, value in part[1].items()})


def _unnest(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray], name: str) -> State:
    """The part :func:`_nest` put under ``name``; a missing part is a ValueError naming it."""
    if name not in settings:
        raise ValueError(f"the saved survival model lacks its part {name!r}")
    prefix = f"{name}."
    return settings[name], {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}


def overlap_state(propensity: PropensityModel, ood: OutOfDistribution) -> State:
    """A fitted propensity model and OOD check as settings (``propensity``, ``ood``) and arrays."""
    settings = {"propensity": {"options": propensity.options_, "classes": propensity.classes_,
                               "params": {k: getattr(propensity, k) for k in PROPENSITY_PARAMS}},
                "ood": {"threshold": ood.threshold_, "params": {k: getattr(ood, k) for k in OOD_PARAMS}}}
    arrays = ({f"propensity_{a}": getattr(propensity, a) for a in PROPENSITY_ARRAYS}
              | {f"ood_{a}": getattr(ood, a) for a in OOD_ARRAYS})
    return settings, arrays


def overlap_from_state(settings: Mapping[str, Any],
                       arrays: Mapping[str, np.ndarray]) -> tuple[PropensityModel, OutOfDistribution]:
    """The propensity model and OOD check of :func:`overlap_state`'s output."""
    propensity = PropensityModel(options=settings["propensity"]["options"], **settings["propensity"]["params"])
    propensity.options_, propensity.classes_ = settings["propensity"]["options"], settings["propensity"]["classes"]
    for a in PROPENSITY_ARRAYS:
        setattr(propensity, a, arrays[f"propensity_{a}"])
    propensity.n_features_in_ = len(propensity.medians_)
    ood = OutOfDistribution(**settings["ood"]["params"])
    for a in OOD_ARRAYS:
        setattr(ood, a, arrays[f"ood_{a}"])
    ood.threshold_, ood.n_features_in_ = settings["ood"]["threshold"], len(ood.mean_)
    return propensity, ood


def _design_state(design: SurvivalDesign) -> State:
    settings = {"covariates": list(design.covariates), "modifiers": list(design.modifiers),
                "logged": list(design.logged), "reference_": design.reference_,
                **{name: list(getattr(design, name)) for name in DESIGN_LISTS}}
    return settings, {"mean": design.mean_, "scale": design.scale_}


def _design_from_state(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> SurvivalDesign:
    design = SurvivalDesign(settings["covariates"], settings["modifiers"], settings["logged"])
    for name in DESIGN_LISTS:
        setattr(design, name, list(settings[name]))
    design.reference_, design.mean_, design.scale_ = settings["reference_"], arrays["mean"], arrays["scale"]
    return design


def _hazard_state(model: HazardModel) -> State:
    settings = {"params": {k: getattr(model, k) for k in HAZARD_PARAMS}, "choice_": model.choice_,
                "reason_": model.reason_, "n_events_": model.n_events_, "interaction_scale_": model.interaction_scale_,
                "ph_test_": model.ph_test_.to_dict(as_series=False)}
    arrays = {"penalties": np.asarray(model.penalties, dtype=float)}
    _nest(settings, arrays, "predictor", model.predictor_.to_state())
    return settings, arrays


def _hazard_from_state(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> HazardModel:
    model = HazardModel(arrays["penalties"], **settings["params"])
    model.choice_, model.reason_, model.n_events_ = settings["choice_"], settings["reason_"], settings["n_events_"]
    model.interaction_scale_ = settings["interaction_scale_"]
    model.ph_test_ = pl.DataFrame(settings["ph_test_"])
    model.predictor_ = predictor_from_state(*_unnest(settings, arrays, "predictor"))
    return model


def _hazards(model: ProgressionModel | RetentionModel) -> dict[str, HazardModel]:
    """The model's hazard models by cause (retention) or imaging pattern (progression)."""
    if isinstance(model, RetentionModel):
        return dict(model.models_)
    return {pattern: hazard for pattern, (_, hazard) in model.time_models_.items()}


def to_arrays(model: ProgressionModel | RetentionModel) -> State:
    """A fitted survival model as JSON-able settings and named arrays (see the module's table)."""
    if not isinstance(model, tuple(KINDS.values())):
        raise TypeError(f"to_arrays takes a ProgressionModel or RetentionModel, got a {type(model).__name__}")
    _check_fitted(model, "times_")
    settings: dict[str, Any] = {
        "kind": type(model).__name__, "params": model.get_params(), "options_": list(model.options_),
        "propensity_columns_": list(model.propensity_columns_), "n_episodes_": model.n_episodes_,
        "choices_": model.choices_, "hazards": list(_hazards(model)),
    }
    arrays = {"times": model.times_}
    _nest(settings, arrays, "design", _design_state(model.design_))
    _nest(settings, arrays, "overlap", overlap_state(model.propensity_, model.ood_))
    for name, hazard in _hazards(model).items():
        _nest(settings, arrays, f"hazard.{name}", _hazard_state(hazard))
    if isinstance(model, RetentionModel):  # the efficacy model itself is the bundle's response model
        settings["efficacy_moments_"] = model.efficacy_moments_
    if isinstance(model, ProgressionModel):
        settings["first_exam_days_"] = model.first_exam_days_
        if getattr(model, "background_", None) is not None:  # z-scores of training episodes (rxpredict.explain)
            arrays["background"] = model.background_
        for pattern, (design, _) in model.time_models_.items():
            _nest(settings, arrays, f"design.{pattern}", _design_state(design))
    return settings, arrays


def from_arrays(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                efficacy: ResponseModel | None = None) -> ProgressionModel | RetentionModel:
    """The fitted model that :func:`to_arrays` described; it predicts as the original did. A retention model
    fitted with an efficacy model needs that model (the bundle's response model) as ``efficacy``."""
    kind = settings.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown survival model kind {kind!r} (known: {', '.join(KINDS)})")
    model = KINDS[kind](**settings["params"])
    model.options_, model.propensity_columns_ = list(settings["options_"]), list(settings["propensity_columns_"])
    model.n_episodes_, model.choices_, model.times_ = settings["n_episodes_"], settings["choices_"], arrays["times"]
    model.design_ = _design_from_state(*_unnest(settings, arrays, "design"))
    model.propensity_, model.ood_ = overlap_from_state(*_unnest(settings, arrays, "overlap"))
    hazards = {name: _hazard_from_state(*_unnest(settings, arrays, f"hazard.{name}")) for name in settings["hazards"]}
    if isinstance(model, RetentionModel):
        model.models_ = hazards
        moments = settings.get("efficacy_moments_")  # absent from models written before the efficacy covariate
        if moments is not None and efficacy is None:
            raise ValueError("this retention model reads the response model's P(response): pass the response model "
                             "of its bundle as efficacy (rxpredict.bundle.load_survival does)")
        model.efficacy_moments_ = None if moments is None else tuple(moments)
        model.efficacy_model_ = None if moments is None else efficacy
    else:
        model.first_exam_days_ = settings["first_exam_days_"]
        if "background" in arrays:
            model.background_ = arrays["background"]
        model.time_models_ = {pattern: (_design_from_state(*_unnest(settings, arrays, f"design.{pattern}")), hazard)
                              for pattern, hazard in hazards.items()}
    return model


def models_to_arrays(models: SurvivalModels) -> State:
    """Both models of a bundle, under ``progression`` and ``retention``."""
    settings: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, model in models._asdict().items():
        _nest(settings, arrays, name, to_arrays(model))
    return settings, arrays


def models_from_arrays(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                       efficacy: ResponseModel | None = None) -> SurvivalModels:
    """The two models :func:`models_to_arrays` wrote; ``efficacy`` as for :func:`from_arrays`."""
    return SurvivalModels(**{name: from_arrays(*_unnest(settings, arrays, name), efficacy=efficacy)
                             for name in SurvivalModels._fields})
