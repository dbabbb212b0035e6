"""SHAP explanations of the response model: per feature, per option or between two options, by modality, in words.

Example
-------
>>> model.background_ = draw_background(model, training_cohort)           # doctest: +SKIP
>>> per_option = explain_all_options(model, rows)                         # doctest: +SKIP
>>> explanation = explain_contrast(model, rows, "il6i", "csdmard_mtx")     # doctest: +SKIP
>>> by_modality(explanation, model)                                        # doctest: +SKIP
>>> top_reasons(explanation, therapy="il6i", versus="csdmard_mtx")        # doctest: +SKIP
"""
from rxpredict.explain.background import BACKGROUND_SIZE, draw_background
from rxpredict.explain.shapley import (ADDITIVITY_TOLERANCE, AdditivityError, explain_all_options,
                                       explain_contrast, explain_options)
from rxpredict.explain.target import OUTPUTS

__all__ = ["ADDITIVITY_TOLERANCE", "BACKGROUND_SIZE", "OUTPUTS", "AdditivityError", "draw_background",
           "explain_all_options", "explain_contrast", "explain_options"]
