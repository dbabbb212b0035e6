"""Local logins: argon2 password hashes, slowed and locked failed logins, sessions that time out, page roles.

- Passwords are stored only as argon2id hashes (argon2-cffi's ``PasswordHasher``
  defaults); an unknown user name costs the same hash work as a wrong password
  and every failed sign-in gets the same message, so a failure does not tell
  whether the name exists or the account is locked.
- Each failed sign-in of a known user raises its counter and waits longer
  (``FAILED_DELAY_S`` doubling, at most ``MAX_FAILED_DELAY_S``);
  ``LOCK_AFTER_FAILURES`` failures in a row lock the account for ``LOCK_FOR``
  (an admin may unlock it earlier). A successful sign-in resets the counter.
- A session is a random token held by the browser; the database keeps only
  its SHA-256. It ends on sign-out, after ``INACTIVITY_TIMEOUT`` without a
  request, and at the latest ``MAX_SESSION_AGE`` after sign-in.
- ``PAGE_ROLES`` says which roles may open which app page; every page calls
  :func:`require_role` on the server.

Sign-ins, failures, lockouts, sign-outs, expiries and account changes are
written to the audit log; no password or hash ever is.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import polars as pl
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rxpredict.exceptions import RxpredictError
from rxpredict.store.audit import as_utc, record_write
from rxpredict.store.engine import writing
from rxpredict.store.tables import ROLES, LoginSession, User, utcnow

#: Failed sign-ins in a row that lock an account, and for how long.
LOCK_AFTER_FAILURES = 5
LOCK_FOR = dt.timedelta(minutes=15)
#: Wait after the first failed sign-in; it doubles with each further failure up to the maximum.
FAILED_DELAY_S = 0.5
MAX_FAILED_DELAY_S = 8.0
#: A session ends after this long without a request, and at the latest this long after sign-in.
INACTIVITY_TIMEOUT = dt.timedelta(minutes=30)
MAX_SESSION_AGE = dt.timedelta(hours=12)
MIN_PASSWORD_LENGTH = 10
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

#: App page -> roles that may open it. Data scientists see the (read-only) timeline but
#: neither register patients, enter visits nor decide on flare-risk alerts; only rheumatologists (and admins)
#: compare therapies for a patient; data scientists (and admins) train, evaluate and promote models; only admins
#: manage accounts and read the audit log.
PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "patients": ("clinic_staff", "rheumatologist", "admin"),
    "visit_entry": ("clinic_staff", "rheumatologist", "admin"),
    "timeline": ("clinic_staff", "rheumatologist", "data_scientist", "admin"),
    "compare": ("rheumatologist", "admin"),
    "monitoring": ("clinic_staff", "rheumatologist", "admin"),
    "models": ("data_scientist", "admin"),
    "admin": ("admin",),
}

LOGIN_FAILED_MESSAGE = ("Sign-in failed: the user name or password is wrong, or the account is locked after "
                        "repeated failures. Try again later or ask an administrator.")

HASHER = PasswordHasher()


class AuthError(RxpredictError):
    """An account cannot be created or changed (bad name, role or password; unknown or existing user)."""


class LoginFailed(AuthError):
    """A sign-in was refused; the message is the same whatever the reason."""

    def __init__(self) -> None:
        super().__init__(LOGIN_FAILED_MESSAGE)


class AccessDenied(AuthError):
    """The signed-in user's role may not open a page."""


@dataclass(frozen=True)
class SignedIn:
    """Who a request comes from: the user behind a live session."""

    user_id: int
    name: str
    role: str


@dataclass(frozen=True)
class Account:
    """A user account as the admin page and the command line show it (never the hash)."""

    name: str
    role: str
    active: bool
    failed_logins: int
    locked_until: dt.datetime | None
    created_at: dt.datetime


def _account(user: User) -> Account:
    return Account(user.name, user.role, user.active, user.failed_logins, as_utc(user.locked_until),
                   as_utc(user.created_at))


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; the text to store)."""
    return HASHER.hash(password)


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _password_ok(stored_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_new_account(name: str, role: str, password: str) -> None:
    if not USER_NAME.fullmatch(name):
        raise AuthError("a user name is 1 to 64 letters, digits or . _ @ - and starts with a letter or digit")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    _check_password(password)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _get_user(session: Session, name: str, *, lock: bool = False) -> User | None:
    query = select(User).where(User.name == name)
    return session.scalars(query.with_for_update() if lock else query).one_or_none()


def _existing(session: Session, name: str) -> User:
    user = _get_user(session, name, lock=True)
    if user is None:
        raise AuthError(f"there is no user {name!r}")
    return user


def _new_user(session: Session, name: str, role: str, password: str, by: str | None) -> User:
    user = User(name=name, role=role, password_hash=hash_password(password), active=True, failed_logins=0)
    session.add(user)
    session.flush()
    record_write(session, user=by, action="insert", table="users", key=name, old=None,
                 new={"name": name, "role": role, "active": True})
    return user


def add_user(engine: Engine, name: str, role: str, password: str, *, by: str | None = None) -> Account:
    """Create an active account; the password is hashed here and never stored or logged as given."""
    _check_new_account(name, role, password)
    try:
        with writing(engine) as session:
            return _account(_new_user(session, name, role, password, by))
    except IntegrityError:
        raise AuthError(f"a user named {name!r} exists already") from None


def ensure_user(engine: Engine, name: str, role: str, password: str, *, by: str | None = None) -> Account:
    """Create the account, or give an existing one this role and password, active and unlocked (demo set-up)."""
    _check_new_account(name, role, password)
    with writing(engine) as session:
        user = _get_user(session, name, lock=True)
        if user is None:
            return _account(_new_user(session, name, role, password, by))
        old = {"role": user.role, "active": user.active}
        user.role, user.active, user.password_hash = role, True, hash_password(password)
        user.failed_logins, user.locked_until = 0, None
        record_write(session, user=by, action="reset", table="users", key=name, old=old,
                     new={"role": role, "active": True})
        return _account(user)


def set_password(engine: Engine, name: str, password: str, *, by: str | None = None) -> None:
    """Replace a user's password (the audit row says that it changed, not what it is)."""
    _check_password(password)
    with writing(engine) as session:
        user = _existing(session, name)
        user.password_hash = hash_password(password)
        record_write(session, user=by, action="set_password", table="users", key=name, old=None, new=None)


def unlock_user(engine: Engine, name: str, *, by: str | None = None) -> None:
    """Clear a user's failed sign-ins and lock."""
    with writing(engine) as session:
        user = _existing(session, name)
        old = {"failed_logins": user.failed_logins, "locked_until": as_utc(user.locked_until)}
        user.failed_logins, user.locked_until = 0, None
        record_write(session, user=by, action="unlock", table="users", key=name, old=old,
                     new={"failed_logins": 0, "locked_until": None})


def list_users(engine: Engine) -> list[Account]:
    """Every account, by name."""
    with Session(engine) as session:
        return [_account(u) for u in session.scalars(select(User).order_by(User.name))]


def users_frame(engine: Engine) -> pl.DataFrame:
    """Every account as a frame (name, role, active, failed_logins, locked_until, created_at)."""
    schema = {"name": pl.String, "role": pl.String, "active": pl.Boolean, "failed_logins": pl.Int64,
              "locked_until": pl.Datetime("us", "UTC"), "created_at": pl.Datetime("us", "UTC")}
    rows = [(a.name, a.role, a.active, a.failed_logins, a.locked_until, a.created_at) for a in list_users(engine)]
    return pl.DataFrame(rows, schema=schema, orient="row")


def failed_delay(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed sign-in in a row."""
    return min(FAILED_DELAY_S * 2 ** max(failures - 1, 0), MAX_FAILED_DELAY_S)


def authenticate(engine: Engine, name: str, password: str, *, now: dt.datetime | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> SignedIn:
    """The user whose name and password these are, or :class:`LoginFailed` after the failure delay.

    A locked or deactivated account fails even with the right password. The
    delay is served after the transaction, so a slowed attacker holds no lock.
    """
    now = now or utcnow()
    with writing(engine) as session:
        user = _get_user(session, name, lock=True)
        ok = _password_ok(user.password_hash if user else _dummy_hash(), password)
        if user is None:
            record_write(session, user=None, action="login_failed", table="users", key="(unknown user)",
                         old=None, new=None)
            failures = 1
        else:
            locked = user.locked_until is not None and as_utc(user.locked_until) > now
            if ok and user.active and not locked:
                if HASHER.check_needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                user.failed_logins, user.locked_until = 0, None
                return SignedIn(user.id, user.name, user.role)
            failures = _count_failure(session, user, now, locked=locked)
    sleep(failed_delay(failures))
    raise LoginFailed()


def _count_failure(session: Session, user: User, now: dt.datetime, *, locked: bool) -> int:
    """Raise the failure counter (a lock that has run out starts it afresh) and lock at the threshold."""
    if locked:
        record_write(session, user=user.name, action="login_failed", table="users", key=user.name,
                     old=None, new={"locked": True})
        return user.failed_logins
    failures = (0 if user.locked_until is not None else user.failed_logins) + 1
    user.failed_logins, user.locked_until = failures, None
    record_write(session, user=user.name, action="login_failed", table="users", key=user.name,
                 old=None, new={"failed_logins": failures})
    if failures >= LOCK_AFTER_FAILURES:
        user.locked_until = now + LOCK_FOR
        record_write(session, user=user.name, action="lockout", table="users", key=user.name,
                     old=None, new={"locked_until": user.locked_until})
    return failures


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(engine: Engine, user: SignedIn, *, now: dt.datetime | None = None) -> str:
    """A new session token for ``user`` (only its SHA-256 is stored); audited as a sign-in."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with writing(engine) as session:
        session.add(LoginSession(token_hash=_token_hash(token), user_id=user.user_id, created_at=now,
                                 last_seen_at=now))
        record_write(session, user=user.name, action="login", table="users", key=user.name, old=None, new=None)
    return token


def sign_in(engine: Engine, name: str, password: str, *, now: dt.datetime | None = None,
            sleep: Callable[[float], None] = time.sleep) -> str:
    """Check the name and password and open a session: the token, or :class:`LoginFailed`."""
    return start_session(engine, authenticate(engine, name, password, now=now, sleep=sleep), now=now)


def session_user(engine: Engine, token: str, *, now: dt.datetime | None = None) -> SignedIn | None:
    """The user of a live session, marking it as seen now; None once it was ended or has timed out."""
    now = now or utcnow()
    with writing(engine) as session:
        found = session.execute(
            select(LoginSession, User).join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_hash == _token_hash(token)).with_for_update(of=LoginSession)
        ).one_or_none()
        if found is None or found[0].ended_at is not None:
            return None
        login, user = found
        if (now - as_utc(login.last_seen_at) > INACTIVITY_TIMEOUT or now - as_utc(login.created_at) > MAX_SESSION_AGE
                or not user.active):
            login.ended_at = now
            record_write(session, user=user.name, action="session_expired", table="users", key=user.name,
                         old=None, new=None)
            return None
        login.last_seen_at = now
        return SignedIn(user.id, user.name, user.role)


def end_session(engine: Engine, token: str, *, now: dt.datetime | None = None) -> None:
    """Sign out: the session ends now (an unknown or ended token is left alone)."""
    with writing(engine) as session:
        found = session.execute(
            select(LoginSession, User.name).join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_hash == _token_hash(token), LoginSession.ended_at.is_(None))
        ).one_or_none()
        if found is not None:
            found[0].ended_at = now or utcnow()
            record_write(session, user=found[1], action="logout", table="users", key=found[1], old=None, new=None)


def require_role(user: SignedIn, page: str) -> None:
    """Raise :class:`AccessDenied` unless ``user``'s role may open ``page`` (an unknown page is denied)."""
    if user.role not in PAGE_ROLES.get(page, ()):
        raise AccessDenied(f"the {user.role.replace('_', ' ')} role may not open the {page.replace('_', ' ')} page")
