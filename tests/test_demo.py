"""The demo database `make run` starts the app on: simulated patients and a working login per role."""
from __future__ import annotations

from click.testing import CliRunner

from rxpredict.cli import main
from rxpredict.store import auth, records
from rxpredict.store.migrate import open_store
from rxpredict.store.tables import ROLES


def test_demo_fills_the_database_and_prints_a_login_per_role(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    first = CliRunner().invoke(main, ["demo", "--database", url, "--patients", "12", "--port", "8600"])
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8600" in first.output and "(12 patients)" in first.output
    logins = {line.split()[0]: line.split()[1:] for line in first.output.splitlines() if line.startswith("  ")}
    assert set(logins) == set(ROLES)
    engine = open_store(url)
    for role, (name, password) in logins.items():
        assert auth.authenticate(engine, name, password, sleep=lambda s: None).role == role
    assert records.search_patients(engine, "").height == 12

    again = CliRunner().invoke(main, ["demo", "--database", url, "--patients", "30"])
    assert "(12 patients)" in again.output  # a filled database is kept
    name, old_password = logins["admin"]
    new_password = {line.split()[0]: line.split()[2] for line in again.output.splitlines()
                    if line.startswith("  ")}["admin"]
    assert new_password != old_password  # fresh passwords on every run
    assert auth.authenticate(engine, name, new_password, sleep=lambda s: None).name == name
    engine.dispose()
