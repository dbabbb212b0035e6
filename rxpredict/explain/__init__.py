"""SHAP explanations of the response and progression models: per feature, per option or between two options, by
modality, in words.

Example
-------
>>> model.background_ = draw_background(model, training_cohort)           # doctest: +SKIP
>>> per_option = explain_all_options(model, rows)                         # doctest: +SKIP
>>> explanation = explain_contrast(model, rows, "il6i", "csdmard_mtx")     # doctest: +SKIP
>>> by_modality(explanation, model)                                        # doctest: +SKIP
>>> top_reasons(explanation, model, therapy="il6i", versus="csdmard_mtx")  # doctest: +SKIP
>>> explain_progression(progression_model, rows, "tnfi")                  # doctest: +SKIP
"""
from rxpredict.explain.background import BACKGROUND_SIZE, draw_background
from rxpredict.explain.progression import (PROGRESSION_OUTPUTS, draw_progression_background, explain_progression,
                                           progression_features)
from rxpredict.explain.shapley import (ADDITIVITY_TOLERANCE, AdditivityError, explain_all_options,
                                       explain_contrast, explain_options)
from rxpredict.explain.target import OUTPUTS

__all__ = ["ADDITIVITY_TOLERANCE", "BACKGROUND_SIZE", "OUTPUTS", "PROGRESSION_OUTPUTS", "AdditivityError",
           "draw_background", "draw_progression_background", "explain_all_options", "explain_contrast",
           "explain_options", "explain_progression", "progression_features"]
