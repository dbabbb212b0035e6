"""``rxpredict users``: add, list, unlock and re-password the clinic app's local accounts.

A password is never a command-line argument (it would sit in the shell history
and the process list): it comes from a hidden prompt with confirmation, or as
one line on stdin with ``--password-stdin`` or when stdin is not a terminal.
"""
from __future__ import annotations

import sys

import click

from rxpredict.cli_store import DATABASE_OPTION, cli_operator, store_engine
from rxpredict.store import auth
from rxpredict.store.tables import ROLES, utcnow

PASSWORD_STDIN_OPTION = click.option("--password-stdin", is_flag=True,
                                     help="Read the password as one line from stdin instead of prompting.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users() -> None:
    """Local accounts of the clinic app (roles: clinic_staff, rheumatologist, data_scientist, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the account may open in the app.")
@PASSWORD_STDIN_OPTION
@DATABASE_OPTION
def add(name: str, role: str, password_stdin: bool, database: str | None) -> None:
    """Create the account NAME with a password from a hidden prompt (or stdin)."""
    password = _read_password(password_stdin)
    with store_engine(database) as engine:
        try:
            auth.add_user(engine, name, role, password, by=cli_operator())
        except auth.AuthError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"added {name} ({role})")


@users.command("set-password")
@click.argument("name")
@PASSWORD_STDIN_OPTION
@DATABASE_OPTION
def set_password(name: str, password_stdin: bool, database: str | None) -> None:
    """Give the account NAME a new password from a hidden prompt (or stdin)."""
    password = _read_password(password_stdin)
    with store_engine(database) as engine:
        try:
            auth.set_password(engine, name, password, by=cli_operator())
        except auth.AuthError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"new password set for {name}")


@users.command("list")
@DATABASE_OPTION
def list_users(database: str | None) -> None:
    """Every account with its role and lock state."""
    with store_engine(database) as engine:
        accounts = auth.list_users(engine)
    if not accounts:
        click.echo("no users yet: add one with `rxpredict users add NAME --role admin`")
        return
    width, now = max(len(a.name) for a in accounts), utcnow()
    for a in accounts:
        locked = a.locked_until is not None and a.locked_until > now
        state = "inactive" if not a.active else (f"locked until {a.locked_until:%Y-%m-%d %H:%M} UTC"
                                                  if locked else "active")
        click.echo(f"{a.name:<{width}}  {a.role:<14}  {state}  failed sign-ins: {a.failed_logins}")


@users.command("unlock")
@click.argument("name")
@DATABASE_OPTION
def unlock(name: str, database: str | None) -> None:
    """Clear the failed sign-ins and lock of the account NAME."""
    with store_engine(database) as engine:
        try:
            auth.unlock_user(engine, name, by=cli_operator())
        except auth.AuthError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"unlocked {name}")
