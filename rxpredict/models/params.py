"""scikit-learn's ``get_params`` for our estimators, which store their constructor arguments unchanged."""
from __future__ import annotations

import inspect


class ParamsMixin:
    """Gives ``get_params``: the constructor's parameters by name (to save a model, or to clone one)."""

    def get_params(self) -> dict[str, object]:
        """The constructor's parameters (scikit-learn's ``get_params``), e.g. to save a model."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}
