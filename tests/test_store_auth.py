"""Logins, lockout, sessions and roles of rxpredict.store.auth, on SQLite and PostgreSQL; the ``users`` command line."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from rxpredict.cli_users import users
from rxpredict.exceptions import RxpredictError
from rxpredict.store import auth
from rxpredict.store.audit import audit_frame
from rxpredict.store.engine import make_engine
from rxpredict.store.tables import ROLES, LoginSession, User

PASSWORD = "correct horse battery"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


class Sleeps(list):
    """An injected sleep that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _failed(engine, name: str, password: str, *, now: dt.datetime, sleeps: Sleeps) -> str:
    with pytest.raises(auth.LoginFailed) as e:
        auth.authenticate(engine, name, password, now=now, sleep=sleeps)
    return str(e.value)


def test_password_is_stored_only_as_argon2_hash(store_engine):
    auth.add_user(store_engine, "alice", "rheumatologist", PASSWORD)
    with Session(store_engine) as s:
        stored = s.scalars(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert auth.HASHER.verify(stored, PASSWORD)
    assert auth.hash_password(PASSWORD) != stored  # salted


def test_add_user_rejects_bad_input_and_duplicates(store_engine):
    account = auth.add_user(store_engine, "bob", "clinic_staff", PASSWORD, by="root")
    assert (account.name, account.role, account.active, account.failed_logins) == ("bob", "clinic_staff", True, 0)
    for name, role, password, says in [("", "admin", PASSWORD, "user name"), ("x y", "admin", PASSWORD, "user name"),
                                       ("carol", "nurse", PASSWORD, "unknown role"),
                                       ("carol", "admin", "short", "at least")]:
        with pytest.raises(auth.AuthError, match=says):
            auth.add_user(store_engine, name, role, password)
    with pytest.raises(auth.AuthError, match="exists already"):
        auth.add_user(store_engine, "bob", "admin", PASSWORD)
    assert auth.users_frame(store_engine).select("name", "role").rows() == [("bob", "clinic_staff")]
    log = audit_frame(store_engine, table="users")
    assert log.height == 1 and log.row(0, named=True)["user"] == "root"
    assert json.loads(log["new_values"][0]) == {"name": "bob", "role": "clinic_staff", "active": True}
    assert "password" not in log["new_values"][0] and "argon2" not in log["new_values"][0]


def test_sign_in_session_and_sign_out(store_engine):
    auth.add_user(store_engine, "alice", "rheumatologist", PASSWORD)
    token = auth.sign_in(store_engine, "alice", PASSWORD, now=T0)
    user = auth.session_user(store_engine, token, now=T0 + dt.timedelta(minutes=1))
    assert (user.name, user.role) == ("alice", "rheumatologist")
    with Session(store_engine) as s:
        assert s.scalars(select(LoginSession.token_hash)).one() != token  # only the hash is stored
    auth.end_session(store_engine, token)
    assert auth.session_user(store_engine, token, now=T0 + dt.timedelta(minutes=2)) is None
    assert auth.session_user(store_engine, "not-a-token") is None
    actions = audit_frame(store_engine, table="users")["action"].to_list()
    assert actions[:2] == ["logout", "login"]


def test_session_times_out_after_inactivity_and_requests_keep_it_alive(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    token = auth.sign_in(store_engine, "alice", PASSWORD, now=T0)
    at = T0
    for _ in range(3):  # a request every 25 minutes keeps the session open past the timeout
        at += auth.INACTIVITY_TIMEOUT - dt.timedelta(minutes=5)
        assert auth.session_user(store_engine, token, now=at) is not None
    assert auth.session_user(store_engine, token, now=at + auth.INACTIVITY_TIMEOUT + dt.timedelta(seconds=1)) is None
    assert auth.session_user(store_engine, token, now=at + dt.timedelta(minutes=1)) is None  # ended for good
    assert audit_frame(store_engine, table="users")["action"][0] == "session_expired"


def test_session_ends_at_maximum_age_even_when_active(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    token = auth.sign_in(store_engine, "alice", PASSWORD, now=T0)
    at = T0
    while at + dt.timedelta(minutes=20) <= T0 + auth.MAX_SESSION_AGE:
        at += dt.timedelta(minutes=20)
        assert auth.session_user(store_engine, token, now=at) is not None
    assert auth.session_user(store_engine, token, now=at + dt.timedelta(minutes=20)) is None


def test_failures_are_slowed_then_locked_and_the_lock_runs_out(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    sleeps = Sleeps()
    messages = {_failed(store_engine, "alice", f"wrong {i}", now=T0, sleeps=sleeps)
                for i in range(auth.LOCK_AFTER_FAILURES)}
    assert sleeps == [auth.failed_delay(i) for i in range(1, auth.LOCK_AFTER_FAILURES + 1)]
    assert sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1] <= auth.MAX_FAILED_DELAY_S
    # locked: even the right password fails, with the same message as a wrong one
    messages.add(_failed(store_engine, "alice", PASSWORD, now=T0 + dt.timedelta(minutes=1), sleeps=sleeps))
    assert messages == {auth.LOGIN_FAILED_MESSAGE}
    account = auth.list_users(store_engine)[0]
    assert account.failed_logins == auth.LOCK_AFTER_FAILURES and account.locked_until == T0 + auth.LOCK_FOR
    # after the lock the right password works and resets the counter
    user = auth.authenticate(store_engine, "alice", PASSWORD, now=T0 + auth.LOCK_FOR + dt.timedelta(seconds=1),
                             sleep=sleeps)
    assert user.name == "alice"
    account = auth.list_users(store_engine)[0]
    assert (account.failed_logins, account.locked_until) == (0, None)
    actions = audit_frame(store_engine, table="users")["action"].to_list()
    assert actions.count("lockout") == 1 and actions.count("login_failed") == auth.LOCK_AFTER_FAILURES + 1


def test_a_run_out_lock_counts_failures_afresh(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    sleeps = Sleeps()
    for i in range(auth.LOCK_AFTER_FAILURES):
        _failed(store_engine, "alice", "wrong", now=T0, sleeps=sleeps)
    later = T0 + auth.LOCK_FOR + dt.timedelta(minutes=1)
    _failed(store_engine, "alice", "wrong", now=later, sleeps=sleeps)
    account = auth.list_users(store_engine)[0]
    assert (account.failed_logins, account.locked_until) == (1, None)
    assert sleeps[-1] == auth.failed_delay(1)


def test_admin_unlock(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    sleeps = Sleeps()
    for _ in range(auth.LOCK_AFTER_FAILURES):
        _failed(store_engine, "alice", "wrong", now=T0, sleeps=sleeps)
    auth.unlock_user(store_engine, "alice", by="admin1")
    assert auth.authenticate(store_engine, "alice", PASSWORD, now=T0, sleep=sleeps).name == "alice"
    entry = audit_frame(store_engine, table="users", key="alice").filter(action="unlock").row(0, named=True)
    assert entry["user"] == "admin1"
    assert json.loads(entry["old_values"])["failed_logins"] == auth.LOCK_AFTER_FAILURES
    with pytest.raises(auth.AuthError, match="no user"):
        auth.unlock_user(store_engine, "nobody")


def test_unknown_user_costs_a_hash_and_leaks_nothing(store_engine, monkeypatch):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    verified = []
    real_check = auth._password_ok
    monkeypatch.setattr(auth, "_password_ok", lambda h, p: verified.append(h) or real_check(h, p))
    sleeps = Sleeps()
    unknown = _failed(store_engine, "mallory", PASSWORD, now=T0, sleeps=sleeps)
    wrong = _failed(store_engine, "alice", "not the password", now=T0, sleeps=sleeps)
    assert unknown == wrong == auth.LOGIN_FAILED_MESSAGE
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)
    assert sleeps == [auth.failed_delay(1)] * 2
    entry = audit_frame(store_engine, table="users").filter(record_key="(unknown user)").row(0, named=True)
    assert entry["user"] is None and "mallory" not in str(entry)  # a mistyped password in the name field stays out


def test_inactive_user_cannot_sign_in_and_loses_sessions(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    token = auth.sign_in(store_engine, "alice", PASSWORD, now=T0)
    with Session(store_engine) as s, s.begin():
        s.scalars(select(User)).one().active = False
    assert auth.session_user(store_engine, token, now=T0) is None
    _failed(store_engine, "alice", PASSWORD, now=T0, sleeps=Sleeps())


def test_set_password_and_ensure_user(store_engine):
    auth.add_user(store_engine, "alice", "clinic_staff", PASSWORD)
    auth.set_password(store_engine, "alice", "a new passphrase", by="admin1")
    _failed(store_engine, "alice", PASSWORD, now=T0, sleeps=Sleeps())
    assert auth.authenticate(store_engine, "alice", "a new passphrase", sleep=Sleeps()).role == "clinic_staff"
    auth.ensure_user(store_engine, "alice", "admin", "third passphrase")
    auth.ensure_user(store_engine, "dave", "data_scientist", "fourth passphrase")
    assert auth.authenticate(store_engine, "alice", "third passphrase", sleep=Sleeps()).role == "admin"
    assert auth.users_frame(store_engine).select("name", "role").rows() == [("alice", "admin"),
                                                                            ("dave", "data_scientist")]
    log = audit_frame(store_engine, table="users")
    assert "passphrase" not in str(log.rows()) and "argon2" not in str(log.rows())


@pytest.mark.parametrize("role", ROLES)
def test_page_roles_are_checked_server_side(role):
    user = auth.SignedIn(1, "u", role)
    expected = {
        "clinic_staff": {"patients", "visit_entry", "timeline", "monitoring"},
        "rheumatologist": {"patients", "visit_entry", "timeline", "compare", "monitoring"},
        "data_scientist": {"timeline", "models"},
        "admin": {"patients", "visit_entry", "timeline", "compare", "monitoring", "models", "admin"},
    }[role]
    for page in [*auth.PAGE_ROLES, "no_such_page"]:
        if page in expected:
            auth.require_role(user, page)
        else:
            with pytest.raises(auth.AccessDenied, match=role.replace("_", " ")):
                auth.require_role(user, page)
    assert issubclass(auth.AccessDenied, RxpredictError)


# --- the `users` command line --------------------------------------------------------------------------------

@pytest.fixture()
def cli_database(database_url):
    """An empty database for the command line, which brings it to the newest schema itself; and an engine on it."""
    engine = make_engine(database_url)
    yield database_url, engine
    engine.dispose()


def test_cli_add_list_unlock_with_password_on_stdin(cli_database):
    url, store_engine = cli_database
    runner = CliRunner()
    added = runner.invoke(users, ["add", "erin", "--role", "rheumatologist", "--database", url],
                          input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    assert auth.authenticate(store_engine, "erin", PASSWORD, sleep=Sleeps()).role == "rheumatologist"
    for _ in range(auth.LOCK_AFTER_FAILURES):
        _failed(store_engine, "erin", "wrong", now=auth.utcnow(), sleeps=Sleeps())
    listed = runner.invoke(users, ["list", "--database", url])
    assert listed.exit_code == 0 and "erin" in listed.output and "locked until" in listed.output
    unlocked = runner.invoke(users, ["unlock", "erin", "--database", url])
    assert unlocked.exit_code == 0, unlocked.output
    assert "locked" not in runner.invoke(users, ["list", "--database", url]).output
    assert audit_frame(store_engine, table="users", key="erin")["user"].str.starts_with("cli").any()


def test_cli_errors_are_one_line_and_password_is_never_an_argument(cli_database):
    url, store_engine = cli_database
    runner = CliRunner()
    short = runner.invoke(users, ["add", "erin", "--role", "admin", "--database", url], input="short\n")
    assert short.exit_code == 1 and "at least" in short.output and "Traceback" not in short.output
    bad_role = runner.invoke(users, ["add", "erin", "--role", "nurse", "--database", url], input=PASSWORD + "\n")
    assert bad_role.exit_code == 2
    as_argument = runner.invoke(users, ["add", "erin", "--role", "admin", "--password", PASSWORD, "--database", url])
    assert as_argument.exit_code == 2
    unknown = runner.invoke(users, ["unlock", "nobody", "--database", url])
    assert unknown.exit_code == 1 and "no user" in unknown.output
    assert auth.list_users(store_engine) == []
    changed = runner.invoke(users, ["add", "erin", "--role", "admin", "--password-stdin", "--database", url],
                            input=PASSWORD + "\n")
    assert changed.exit_code == 0
    reset = runner.invoke(users, ["set-password", "erin", "--database", url], input="another passphrase\n")
    assert reset.exit_code == 0
    assert auth.authenticate(store_engine, "erin", "another passphrase", sleep=Sleeps()).name == "erin"
