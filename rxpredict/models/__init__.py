"""Models of rxpredict: propensity and overlap now; the response and survival models build on them."""
from rxpredict.models.design import feature_matrix, model_columns
from rxpredict.models.overlap import OutOfDistribution, PropensityModel

__all__ = ["OutOfDistribution", "PropensityModel", "feature_matrix", "model_columns"]
