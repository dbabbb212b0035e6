"""The demo database `make run` starts the app on: simulated patients, a working login per role and a monitor."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from rxpredict.cli import main
from rxpredict.monitoring.persist import load_monitor
from rxpredict.store import auth, records
from rxpredict.store.alerts import MONITOR_MODEL_ENV, monitor_dir
from rxpredict.imaging.installed import IMAGING_MODEL_ENV, imaging_model_dir, installed_scorer
from rxpredict.store.demo import (build_demo, current_model, current_monitor, current_scorer, ensure_demo_model,
                                  ensure_demo_monitor, ensure_demo_scorer)
from rxpredict.store.migrate import open_store
from rxpredict.store.models import active_model, model_versions
from rxpredict.store.tables import REGISTRY_TABLES, ROLES


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """$RXPREDICT_HOME in the test's folder, so that no monitor is looked for or written in the real one."""
    monkeypatch.setenv("RXPREDICT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(MONITOR_MODEL_ENV, raising=False)
    return tmp_path / "home"


def test_demo_fills_the_database_and_prints_a_login_per_role(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    first = CliRunner().invoke(main, ["demo", "--database", url, "--patients", "12", "--port", "8600", "--no-monitor",
                                       "--no-model", "--no-scorer"])
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8600" in first.output and "(12 patients)" in first.output
    logins = {line.split()[0]: line.split()[1:] for line in first.output.splitlines() if line.startswith("  ")}
    assert set(logins) == set(ROLES)
    engine = open_store(url)
    for role, (name, password) in logins.items():
        assert auth.authenticate(engine, name, password, sleep=lambda s: None).role == role
    assert records.search_patients(engine, "").height == 12

    again = CliRunner().invoke(main, ["demo", "--database", url, "--patients", "30", "--no-monitor", "--no-model",
                                       "--no-scorer"])
    assert "(12 patients)" in again.output  # a filled database is kept
    name, old_password = logins["admin"]
    new_password = {line.split()[0]: line.split()[2] for line in again.output.splitlines()
                    if line.startswith("  ")}["admin"]
    assert new_password != old_password  # fresh passwords on every run
    assert auth.authenticate(engine, name, new_password, sleep=lambda s: None).name == name
    engine.dispose()


def test_some_demo_patients_share_wearable_data_and_no_monitor_is_made_when_skipped(tmp_path, home):
    made = build_demo(f"sqlite:///{tmp_path / 'demo.db'}", patients=12, monitor=False, model=False, scorer=False)
    assert made.model is None and made.monitor is None and not made.monitor_trained and not monitor_dir().exists()
    assert made.scorer is None and not imaging_model_dir().exists()
    engine = open_store(made.url)
    wearables = REGISTRY_TABLES["wearables"]
    with engine.connect() as c:
        wearers = c.scalar(select(func.count(func.distinct(wearables.c.patient_id))))
    assert wearers > 0
    engine.dispose()


@pytest.mark.slow
def test_the_demo_monitor_is_trained_once_and_loads(tmp_path, home):
    lines: list[str] = []
    assert ensure_demo_monitor(monitor_dir(), patients=100, epochs=1, progress=lines.append)
    assert monitor_dir() == home / "models" / "monitor" and current_monitor(monitor_dir())
    assert lines[0].startswith("Training the demo flare-risk monitor on 100 simulated patients")
    _, policy, _, metrics = load_monitor(monitor_dir())
    assert policy.threshold_ is not None and 0 <= metrics["auroc"] <= 1
    assert not ensure_demo_monitor(monitor_dir(), patients=100, epochs=1)  # kept: made by this version
    shown = CliRunner().invoke(main, ["demo", "--database", f"sqlite:///{tmp_path / 'demo.db'}", "--patients", "12",
                                      "--no-model", "--no-scorer"])
    assert shown.exit_code == 0, shown.output
    assert f"Flare-risk monitor: {monitor_dir()} (kept)" in shown.output
    assert not current_monitor(tmp_path)  # a folder without a bundle


def test_the_demo_model_is_trained_on_the_demo_patients_once_and_made_active(tmp_path, home):
    made = build_demo(f"sqlite:///{tmp_path / 'demo.db'}", patients=300, monitor=False, model=False, scorer=False)
    engine = open_store(made.url)
    lines: list[str] = []
    version, trained = ensure_demo_model(engine, members=2, epochs=2, progress=lines.append)
    assert trained and version.status == "active" and active_model(engine).id == version.id
    assert version.path.parent == home / "models" / "response" and (version.path / "MODEL_CARD.md").is_file()
    assert lines[0].startswith("Training the demo response and survival models on the 300 demo patients")
    assert any("training the response model" in line for line in lines)
    assert current_model(engine) == version
    again, trained_again = ensure_demo_model(engine, members=2, epochs=2)
    assert not trained_again and again.id == version.id and model_versions(engine).height == 1
    engine.dispose()


def test_the_demo_scorer_is_trained_once_on_synthetic_films_and_loads(home, monkeypatch):
    monkeypatch.delenv(IMAGING_MODEL_ENV, raising=False)
    lines: list[str] = []
    assert ensure_demo_scorer(imaging_model_dir(), patients=3, epochs=1, progress=lines.append)
    assert imaging_model_dir() == home / "models" / "imaging" and current_scorer(imaging_model_dir())
    assert lines[0].startswith("Training the demo radiograph scorer on 3 synthetic patients")
    assert "held-out total SvdH RMSE" in lines[-1]
    assert installed_scorer() is not None
    assert not ensure_demo_scorer(imaging_model_dir(), patients=3, epochs=1)  # kept: made by this version
