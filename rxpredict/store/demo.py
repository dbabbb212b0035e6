"""A demo database for ``make run``: simulated patients, one login per role with passwords made now, a response
model trained on the demo's patients for the comparison page, a flare-risk monitor for the Monitoring page and a
radiograph scorer for the visit page.

Passwords are generated afresh on every call (``secrets``), printed once by
the command line and stored only as argon2 hashes: none is ever committed.
The response model (:func:`ensure_demo_model`) is trained on the registry
stored in the demo database and promoted to the active model; the monitor is
trained on a simulated registry of its own (not the demo's patients) and kept
where the app looks for it (:func:`rxpredict.store.alerts.monitor_dir`); the
radiograph scorer is trained on synthetic films (:mod:`rxpredict.imaging.synth`)
and kept in :func:`rxpredict.imaging.installed.imaging_model_dir`. Each is
trained once and kept until rxpredict's version changes.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select

from rxpredict import __version__
from rxpredict.bundle import load_models
from rxpredict.exceptions import BundleError
from rxpredict.imaging.installed import imaging_model_dir
from rxpredict.monitoring.persist import save_monitor
from rxpredict.monitoring.pipeline import fit_monitor
from rxpredict.registry import Registry
from rxpredict.retrain import each_stage, train_bundle
from rxpredict.simulate import Scenario, simulate
from rxpredict.store import auth
from rxpredict.store.alerts import load_active_monitor, monitor_dir, stored_registry
from rxpredict.store.engine import database_url
from rxpredict.store.migrate import open_store
from rxpredict.store.models import ModelVersion, active_model, models_root, promote_model, register_model
from rxpredict.store.tables import REGISTRY_TABLES, ROLES
from rxpredict.store.transfer import import_registry

#: Enough patients for the demo's response and survival models to learn something (a minute's training).
DEMO_PATIENTS = 1_000
#: Share of the demo's patients with wearable data (the simulator's default is 8 %): about a hundred are monitored.
DEMO_WEARABLES_FRACTION = 0.1
SETUP_USER = "demo-setup"
#: The demo monitor's training registry and budget: small enough to train in well under a minute on two cores
#: (one network, every third day, a faster learning rate than the default ensemble; held-out AUROC about 0.72).
MONITOR_PATIENTS = 1_500
MONITOR_EPOCHS = 30
MONITOR_STRIDE = 3
MONITOR_TRAINING = {"n_members": 1, "learning_rate": 2e-3, "batch_size": 512}

#: The demo radiograph scorer: synthetic patients (4 films each) and most epochs per network (a minute or two).
SCORER_PATIENTS = 80
SCORER_EPOCHS = 8

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Demo:
    """Where the demo database is, how many patients it holds, a (name, password) per role, the monitor (where
    it is, None when skipped) and the active response model (None when skipped), each with whether this call
    trained it (else it was kept)."""

    url: str
    patients: int
    logins: dict[str, tuple[str, str]]
    monitor: Path | None = None
    monitor_trained: bool = False
    model: ModelVersion | None = None
    model_trained: bool = False
    scorer: Path | None = None
    scorer_trained: bool = False


def current_monitor(directory: Path) -> bool:
    """Whether ``directory`` holds an intact flare-risk bundle written by this version of rxpredict that loads.

    Loading it too catches a bundle whose arrays or weights no longer fit the model of a source tree
    changed since (the version number stays the same between releases).
    """
    try:
        load_active_monitor(directory)  # verifies the checksums, the kind and the format
    except (BundleError, OSError):
        return False
    return _written_by_this_version(directory)


def _written_by_this_version(directory: Path) -> bool:
    """Whether the (loadable) bundle in ``directory`` says this version of rxpredict wrote it."""
    config = json.loads((directory / "config.json").read_text())
    return config.get("versions", {}).get("rxpredict") == __version__


def ensure_demo_monitor(directory: Path, *, patients: int = MONITOR_PATIENTS, epochs: int = MONITOR_EPOCHS,
                        seed: int = 1, progress: Progress | None = None) -> bool:
    """Train a flare-risk monitor into ``directory`` unless a current one is there; whether it trained one.

    It learns from ``patients`` simulated patients who all share wearable
    data. ``progress`` receives a line before and after, and turns on the
    progress bars (on stderr); None trains silently.
    """
    if current_monitor(directory):
        return False
    say = progress or (lambda line: None)
    say(f"Training the demo flare-risk monitor on {patients:,} simulated patients (once; it is kept in {directory})")
    frames = simulate(patients, seed=seed, scenario=Scenario.default().replace(wearables_fraction=1.0),
                      progress=progress is not None)
    fitted = fit_monitor(Registry.from_tables(frames), stride=MONITOR_STRIDE, seed=seed, progress=progress is not None,
                         epochs=epochs, **MONITOR_TRAINING)
    save_monitor(fitted.model, fitted.policy, fitted.background, directory, metrics=fitted.metrics,
                 training=fitted.training, overwrite=True)
    say(f"Monitor trained: held-out AUROC {fitted.metrics['auroc']:.2f}, "
        f"{fitted.metrics['alerts_per_patient_month']:.2f} alerts per patient-month")
    return True


def current_scorer(directory: Path) -> bool:
    """Whether ``directory`` holds an intact radiograph scorer written by this version of rxpredict that loads."""
    from rxpredict.imaging.persist import load_scorer

    try:
        load_scorer(directory)
    except (BundleError, OSError, RuntimeError):  # RuntimeError: weights that no longer fit the networks
        return False
    return _written_by_this_version(directory)


def ensure_demo_scorer(directory: Path, *, patients: int = SCORER_PATIENTS, epochs: int = SCORER_EPOCHS,
                       seed: int = 2, progress: Progress | None = None) -> bool:
    """Train a radiograph scorer on synthetic films into ``directory`` unless a current one is there; whether it
    trained one. ``progress`` receives a line before and after, and turns on the progress bars."""
    from rxpredict.imaging.evaluate import evaluate
    from rxpredict.imaging.layout import read_folder
    from rxpredict.imaging.persist import save_scorer
    from rxpredict.imaging.scorer import RadiographScorer
    from rxpredict.imaging.synth import synthesize

    if current_scorer(directory):
        return False
    say = progress or (lambda line: None)
    say(f"Training the demo radiograph scorer on {patients} synthetic patients' films (once; kept in {directory})")
    with tempfile.TemporaryDirectory(prefix="rxpredict-films-") as tmp:
        synthesize(patients, Path(tmp) / "films", seed=seed)
        folder = read_folder(Path(tmp) / "films")
        scorer = RadiographScorer(locator_epochs=epochs, scorer_epochs=epochs, seed=seed,
                                  progress=progress is not None).fit(folder)
        figures, _ = evaluate(scorer, folder, scorer.validation_patients_)
    save_scorer(scorer, directory, metrics=figures, overwrite=True)
    say(f"Radiograph scorer trained on synthetic films: held-out total SvdH RMSE {figures['rmse_total']:.1f}")
    return True


def current_model(engine: Engine) -> ModelVersion | None:
    """The active response model when it loads and was written by this version of rxpredict; else None."""
    version = active_model(engine)
    if version is None:
        return None
    try:
        load_models(version.path)  # verifies the checksums, the format and that the arrays fit the model
    except (BundleError, OSError):
        return None
    return version if _written_by_this_version(version.path) else None


def ensure_demo_model(engine: Engine, *, seed: int = 0, members: int | None = None, epochs: int | None = None,
                      progress: Progress | None = None) -> tuple[ModelVersion, bool]:
    """The active response model, trained on the registry stored in ``engine`` and promoted unless a current one
    is active; (the version, whether it was trained now). ``members``/``epochs``: the model's defaults when None."""
    kept = current_model(engine)
    if kept is not None:
        return kept, False
    say = progress or (lambda line: None)
    registry = stored_registry(engine)
    out = models_root() / f"demo-{__version__}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"
    say(f"Training the demo response and survival models on the {registry['patients'].height:,} demo patients "
        f"(once; kept in {out})")
    metrics = train_bundle(registry, out, seed=seed, members=members, epochs=epochs,
                           report=None if progress is None else each_stage(lambda line: say(f"  {line}")))
    version = register_model(engine, out, user=SETUP_USER, note="demo model")
    say(f"Response model trained: held-out AUROC {metrics['auroc']:.2f}")
    return promote_model(engine, version.id, user=SETUP_USER), True


def build_demo(url: str | None = None, *, patients: int = DEMO_PATIENTS, seed: int = 0, monitor: bool = True,
               model: bool = True, scorer: bool = True, progress: Progress | None = None) -> Demo:
    """Fill an empty database from the simulator (a database already holding patients is kept), reset demo logins,
    with ``model`` make sure a current response model is active (:func:`ensure_demo_model`), with ``monitor``
    that a current demo monitor is in place (:func:`ensure_demo_monitor`) and with ``scorer`` a current radiograph
    scorer (:func:`ensure_demo_scorer`)."""
    url = database_url(url)
    engine = open_store(url)
    with engine.connect() as c:
        stored = c.scalar(select(func.count()).select_from(REGISTRY_TABLES["patients"]))
    if not stored:
        scenario = Scenario.default().replace(wearables_fraction=DEMO_WEARABLES_FRACTION)
        with tempfile.TemporaryDirectory(prefix="rxpredict-demo-") as tmp:
            simulate(patients, seed=seed, scenario=scenario, out=tmp, progress=False)
            stored = import_registry(engine, tmp, user=SETUP_USER)["patients"]
    logins = {}
    for role in ROLES:
        name, password = f"demo_{role}", secrets.token_urlsafe(12)
        auth.ensure_user(engine, name, role, password, by=SETUP_USER)
        logins[role] = (name, password)
    version, model_trained = ensure_demo_model(engine, seed=seed, progress=progress) if model else (None, False)
    engine.dispose()
    made = Demo(url=url, patients=stored, logins=logins, model=version, model_trained=model_trained)
    if monitor:
        trained = ensure_demo_monitor(monitor_dir(), seed=seed + 1, progress=progress)
        made = dataclasses.replace(made, monitor=monitor_dir(), monitor_trained=trained)
    if scorer:
        trained = ensure_demo_scorer(imaging_model_dir(), seed=seed + 2, progress=progress)
        made = dataclasses.replace(made, scorer=imaging_model_dir(), scorer_trained=trained)
    return made
