"""Validation of registry tables against data_schemas/: every violation, with row, column and rule."""
from rxpredict.validation.report import ValidationReport
from rxpredict.validation.validator import ValidationResult, validate_tables

__all__ = ["ValidationReport", "ValidationResult", "validate_tables"]
