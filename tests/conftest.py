"""Shared fixtures: the shipped example registry, read raw (as a CSV reader sees it)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import settings

from rxpredict.registry import read_raw_tables

# `pytest --hypothesis-profile=thorough` runs the property tests ten times longer.
settings.register_profile("default", max_examples=40)
settings.register_profile("thorough", max_examples=400)
settings.load_profile("default")

EXAMPLE = Path(__file__).resolve().parents[1] / "rxpredict" / "data" / "example_registry"
TODAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def _raw_example_once() -> dict[str, pl.DataFrame]:
    raw, problems = read_raw_tables(EXAMPLE)
    assert not problems
    return raw


@pytest.fixture()
def raw_example(_raw_example_once) -> dict[str, pl.DataFrame]:
    """The example registry's tables as text columns, ready to be spoiled by a test (frames are immutable)."""
    return dict(_raw_example_once)
