"""Where the app finds the installed radiograph scorer, and loading it.

The scorer is a bundle made by ``rxpredict imaging train --data DIR --out
MODEL_DIR`` (``make run`` installs a demo one), found in
``$RXPREDICT_IMAGING_MODEL``, else ``models/imaging`` in ``$RXPREDICT_HOME``
(the database's folder, default ``~/.rxpredict``), beside the flare-risk
monitor's. A loaded scorer is kept until the bundle's files change.

Example
-------
>>> from rxpredict.imaging.installed import installed_scorer
>>> scorer = installed_scorer()                      # doctest: +SKIP
>>> scorer.score_film(image, "LH").total("erosion")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rxpredict.store.engine import default_database_path

if TYPE_CHECKING:
    from rxpredict.imaging.scorer import RadiographScorer

IMAGING_MODEL_ENV = "RXPREDICT_IMAGING_MODEL"


def imaging_model_dir() -> Path:
    """Where the app finds the radiograph scorer: ``$RXPREDICT_IMAGING_MODEL``, else ``models/imaging`` in
    ``$RXPREDICT_HOME`` (the database's folder, default ``~/.rxpredict``)."""
    chosen = os.environ.get(IMAGING_MODEL_ENV)
    return Path(chosen) if chosen else default_database_path().parent / "models" / "imaging"


def installed_scorer() -> RadiographScorer | None:
    """The scorer bundle in :func:`imaging_model_dir`; None when there is none (no folder, or an empty one).

    A folder holding a broken bundle raises :class:`~rxpredict.exceptions.BundleError` saying why.
    """
    directory = imaging_model_dir()
    files = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    if not files:
        return None
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _load(str(directory.resolve()), stamp)


@lru_cache(maxsize=2)
def _load(directory: str, stamp: tuple) -> RadiographScorer:
    """The scorer of ``directory``, loaded once per ``stamp`` (its files' names, times and sizes)."""
    # torch is imported only where a scorer is loaded
    from rxpredict.imaging.persist import load_scorer

    return load_scorer(directory)
