"""What a source's read session is set to, one function per dialect; every driver's path applies it.

The row path (SQLAlchemy), the connectorx path and the ADBC path all take their session from
`mysql_session` or `postgres_session`, so the time zone, timeouts, isolation and read-only mode cannot
drift between them. Pure: the functions return values and statement text, the callers run them.
Variable names and the isolation level come from this module, never from YAML; values are bound or
escaped by the driver.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..config import SourceConfig

__all__ = ["SessionSettings", "Value", "mysql_isolation_sql", "mysql_session", "mysql_set_sql", "postgres_begin_sql", "postgres_session", "set_config_call"]

Value = str | int | float


@dataclass(frozen=True, kw_only=True)
class SessionSettings:
    """A read session: its variables in the order they are set, its isolation, and read-only mode."""

    variables: tuple[tuple[str, Value], ...]
    isolation: Literal["REPEATABLE READ"] = "REPEATABLE READ"
    read_only: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.variables)

    @property
    def values(self) -> tuple[Value, ...]:
        return tuple(value for _, value in self.variables)


def mysql_session(config: SourceConfig, *, mariadb: bool) -> SessionSettings:
    """UTC, the statement timeout (MariaDB's max_statement_time in seconds, MySQL's max_execution_time
    in milliseconds), InnoDB's lock wait (whole seconds, at least one); REPEATABLE READ, read-only."""
    seconds = config.statement_timeout.total_seconds()
    timeout: tuple[str, Value] = (("max_statement_time", seconds) if mariadb
                                  else ("max_execution_time", int(seconds * 1000)))
    return SessionSettings(variables=(
        ("time_zone", "+00:00"), timeout,
        ("innodb_lock_wait_timeout", max(1, int(config.lock_timeout.total_seconds()))),
    ))


def mysql_set_sql(settings: SessionSettings, literal: Callable[[Value], str] | None = None) -> str:
    """One SET SESSION of every variable: with %s markers for the driver to bind, or with `literal`'s
    escaped text for a driver that takes no parameters."""
    marker = literal or (lambda _: "%s")
    return "SET SESSION " + ", ".join(f"{name} = {marker(value)}" for name, value in settings.variables)


def mysql_isolation_sql(settings: SessionSettings, *, with_read_only: bool) -> str:
    """The session's isolation level, and with `with_read_only` its read-only mode, for the session's
    transactions to come (a path that starts its own transaction makes that one read-only instead)."""
    read_only = ", READ ONLY" if with_read_only and settings.read_only else ""
    return f"SET SESSION TRANSACTION ISOLATION LEVEL {settings.isolation}{read_only}"


def _ms(value: dt.timedelta) -> str:
    return str(int(value.total_seconds() * 1000))


def postgres_session(config: SourceConfig) -> SessionSettings:
    """The statement and lock timeouts, and an idle-in-transaction timeout of at least a minute (a
    consumer slower than the read must not lose its snapshot), in milliseconds; REPEATABLE READ, read-only.
    Set with set_config(..., true), so they last for the snapshot's transaction only."""
    return SessionSettings(variables=(
        ("statement_timeout", _ms(config.statement_timeout)),
        ("lock_timeout", _ms(config.lock_timeout)),
        ("idle_in_transaction_session_timeout", _ms(max(config.statement_timeout, dt.timedelta(minutes=1)))),
    ))


def postgres_begin_sql(settings: SessionSettings) -> str:
    """BEGIN of a snapshot with the session's isolation and read-only mode (for a driver SQLAlchemy does not drive)."""
    return f"BEGIN ISOLATION LEVEL {settings.isolation}" + (", READ ONLY" if settings.read_only else "")


def set_config_call(variables: Sequence[tuple[str, Value]], *, numbered: bool) -> tuple[str, tuple[Value, ...]]:
    """SELECT set_config(name, value, true) of each variable, transaction-local, and its parameters.

    SET cannot take parameters, set_config() can, so names and values are both bound. Markers are
    $1, $2, ... (libpq, ADBC) when `numbered`, else %s (psycopg2).
    """
    def marker(i: int) -> str:
        return f"${i + 1}" if numbered else "%s"
    calls = ", ".join(f"set_config({marker(2 * i)}, {marker(2 * i + 1)}, true)" for i in range(len(variables)))
    return f"SELECT {calls}", tuple(x for pair in variables for x in pair)
