"""Models of rxpredict: propensity and overlap, and the 24-week response model (``models.response``)."""
from rxpredict.models.design import feature_matrix, model_columns
from rxpredict.models.overlap import OutOfDistribution, PropensityModel

__all__ = ["OutOfDistribution", "PropensityModel", "feature_matrix", "model_columns"]
