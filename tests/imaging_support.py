"""What the imaging tests share: a few tiny synthetic films and a scorer trained on them in seconds."""
from __future__ import annotations

from pathlib import Path

from rxpredict.imaging.layout import read_folder
from rxpredict.imaging.scorer import RadiographScorer
from rxpredict.imaging.synth import synthesize

#: A scorer small and short enough to train on four tiny patients in a few seconds; it learns little.
TINY = dict(canvas_size=(128, 160), locator_size=(64, 80), crop_pixels=16, width=4, locator_width=4,
            locator_epochs=2, scorer_epochs=2, progress=False)


def tiny_films(folder: Path, seed: int, patients: int = 4) -> Path:
    """``patients`` synthetic patients' films (128 x 160) in ``folder``."""
    synthesize(patients, folder, seed=seed, size=(128, 160))
    return folder


def tiny_scorer(films: Path, **changes) -> RadiographScorer:
    """A :data:`TINY` scorer (with ``changes``) fitted on ``films``."""
    return RadiographScorer(**TINY | changes).fit(read_folder(films))
