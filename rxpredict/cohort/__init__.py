"""The cohort builder: treatment episodes, features as of the index date per modality, and outcomes."""
from rxpredict.cohort.build import Cohort, build_cohort
from rxpredict.cohort.rules import CohortRules

__all__ = ["Cohort", "CohortRules", "build_cohort"]
