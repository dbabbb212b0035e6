"""A demo database for ``make run``: simulated patients and one login per role, with passwords made now.

Passwords are generated afresh on every call (``secrets``), printed once by
the command line and stored only as argon2 hashes: none is ever committed.
"""
from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass

from sqlalchemy import func, select

from rxpredict.simulate import simulate
from rxpredict.store import auth
from rxpredict.store.engine import database_url
from rxpredict.store.migrate import open_store
from rxpredict.store.tables import REGISTRY_TABLES, ROLES
from rxpredict.store.transfer import import_registry

DEMO_PATIENTS = 120
SETUP_USER = "demo-setup"


@dataclass(frozen=True)
class Demo:
    """Where the demo database is, how many patients it holds, and a (name, password) per role."""

    url: str
    patients: int
    logins: dict[str, tuple[str, str]]


def build_demo(url: str | None = None, *, patients: int = DEMO_PATIENTS, seed: int = 0) -> Demo:
    """Fill an empty database from the simulator (a database already holding patients is kept) and reset demo logins."""
    url = database_url(url)
    engine = open_store(url)
    with engine.connect() as c:
        stored = c.scalar(select(func.count()).select_from(REGISTRY_TABLES["patients"]))
    if not stored:
        with tempfile.TemporaryDirectory(prefix="rxpredict-demo-") as tmp:
            simulate(patients, seed=seed, out=tmp, progress=False)
            stored = import_registry(engine, tmp, user=SETUP_USER)["patients"]
    logins = {}
    for role in ROLES:
        name, password = f"demo_{role}", secrets.token_urlsafe(12)
        auth.ensure_user(engine, name, role, password, by=SETUP_USER)
        logins[role] = (name, password)
    engine.dispose()
    return Demo(url=url, patients=stored, logins=logins)
