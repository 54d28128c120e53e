"""The source boundary's error mapping: driver error -> SourceUnavailable, SourceRefused or SourceError.

One table per driver family, keyed by what the driver attaches to its errors:

    family                        key                                    table
    SQLAlchemy row path           SQLSTATE (psycopg2 `pgcode`)          driver_errors.SQLSTATES
                                  MySQL errno (pymysql `args[0]`)        driver_errors.MYSQL_ERRNOS
                                  PEP 249 exception type                 DBAPI_TYPES
    ADBC (PostgreSQL fast path)   SQLSTATE (`sqlstate`)                  driver_errors.SQLSTATES
                                  ADBC status code (`status_code`)       ADBC_STATUS
    connectorx (MySQL fast path)  its Rust error variant, MySQL errno,   CONNECTORX_VARIANTS,
                                  errno (parsed, see `connectorx_codes`) MYSQL_ERRNOS, OS_ERRNOS

The first key that a table knows decides. A refused libpq connection carries no SQLSTATE at all
(see `driver_errors.libpq_refusal`).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from ..driver_errors import Outcome, libpq_refusal, mysql_errno_outcome, os_errno_outcome, sqlstate_outcome
from ..errors import SourceError, SourceRefused, SourceUnavailable

__all__ = ["ADBC_STATUS", "CONNECTORX_VARIANTS", "DBAPI_TYPES", "adbc_outcome", "connectorx_codes",
           "connectorx_outcome", "dbapi_outcome", "source_class", "source_outcome"]

SOURCE_CLASSES: dict[Outcome, type[SourceError]] = {
    Outcome.UNAVAILABLE: SourceUnavailable,
    Outcome.REFUSED: SourceRefused,
    Outcome.FAILED: SourceError,
}

# PEP 249 exception type (by name: every driver defines its own classes) -> outcome, for errors that
# carry no code the tables know. OperationalError is the driver's "the database or link failed".
DBAPI_TYPES: dict[str, Outcome] = {"OperationalError": Outcome.UNAVAILABLE}

# ADBC status codes (adbc_driver_manager.AdbcStatusCode) -> outcome, when no SQLSTATE came with the error.
ADBC_STATUS: dict[int, Outcome] = {
    10: Outcome.UNAVAILABLE,  # IO: the connection failed or was lost
    11: Outcome.UNAVAILABLE,  # CANCELLED
    12: Outcome.UNAVAILABLE,  # TIMEOUT
    13: Outcome.REFUSED,  # UNAUTHENTICATED
    14: Outcome.REFUSED,  # UNAUTHORIZED
}

# The Rust `mysql` crate's error variants, as connectorx prints them -> outcome.
CONNECTORX_VARIANTS: dict[str, Outcome] = {
    "IoError": Outcome.UNAVAILABLE,  # the socket failed
    "CodecError": Outcome.UNAVAILABLE,  # the stream broke mid-packet
    "DriverError": Outcome.UNAVAILABLE,  # could not connect, connect timeout, packets out of sync
    "TlsError": Outcome.FAILED,
    "UrlError": Outcome.FAILED,
}
# r2d2, connectorx's pool, gives up with this when no connection could be made (its cause follows).
_POOL_TIMEOUT = "timed out waiting for connection"


def _driver(exc: BaseException) -> str:
    return type(exc).__module__.split(".")[0]


def _first(*outcomes: Outcome | None) -> Outcome | None:
    return next((o for o in outcomes if o is not None), None)


def dbapi_outcome(orig: BaseException, connection_invalidated: bool = False) -> Outcome:
    """A DBAPI driver's error (psycopg2, pymysql, sqlite3, ...), unwrapped from SQLAlchemy's."""
    driver = _driver(orig)
    code: Outcome | None = None
    if driver in ("psycopg2", "psycopg"):
        sqlstate = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        code = sqlstate_outcome(sqlstate)
        if code is None and not sqlstate and libpq_refusal(str(orig)):
            code = Outcome.REFUSED
    elif driver in ("pymysql", "MySQLdb") and orig.args and isinstance(orig.args[0], int):
        code = mysql_errno_outcome(orig.args[0])
    if code is None and connection_invalidated:
        code = Outcome.UNAVAILABLE  # SQLAlchemy saw the connection die, whatever the driver called it
    return _first(code, DBAPI_TYPES.get(type(orig).__name__)) or Outcome.FAILED


def adbc_outcome(exc: Any) -> Outcome:
    """An `adbc_driver_manager.Error`: its SQLSTATE, else (a refused connect) libpq's text, else its status."""
    sqlstate = getattr(exc, "sqlstate", None)
    code = sqlstate_outcome(sqlstate)
    if code is None and not sqlstate and libpq_refusal(str(exc)):
        code = Outcome.REFUSED
    return _first(code, ADBC_STATUS.get(int(getattr(exc, "status_code", 0) or 0))) or Outcome.FAILED


_CX_MYSQL = re.compile(r"\bMySqlError \{ ERROR (?P<errno>\d+) \((?P<sqlstate>[0-9A-Z]{5})\)")
_CX_OS = re.compile(r"\(os error (?P<errno>\d+)\)")
_CX_VARIANT = re.compile(r"\b(?P<variant>" + "|".join(CONNECTORX_VARIANTS) + r") \{")


def connectorx_codes(text: str) -> tuple[int | None, int | None, str | None, bool]:
    """(MySQL errno, OS errno, mysql-crate variant, pool gave up) from a connectorx error's text.

    connectorx raises a bare RuntimeError (or a Rust panic) whose only content is the Rust error's
    Display: `MySqlError { ERROR 1045 (28000): ... }`, `DriverError { ... (os error 111) }`. So this one
    function reads text: each code is taken only from the fixed frame the crate prints around it, never
    from anywhere else in the message (which can hold table and column names).
    """
    mysql = _CX_MYSQL.search(text)
    os_error = _CX_OS.search(text)
    variant = _CX_VARIANT.search(text)
    return (int(mysql["errno"]) if mysql else None, int(os_error["errno"]) if os_error else None,
            variant["variant"] if variant else None, text.startswith(_POOL_TIMEOUT))


def connectorx_outcome(exc: BaseException) -> Outcome:
    mysql, os_errno, variant, pool_gave_up = connectorx_codes(str(exc))
    if mysql is not None:  # the server answered: its errno decides, and an unknown one is permanent
        return mysql_errno_outcome(mysql) or Outcome.FAILED
    return _first(os_errno_outcome(os_errno) if os_errno is not None else None,
                  CONNECTORX_VARIANTS.get(variant or ""),
                  Outcome.UNAVAILABLE if pool_gave_up else None) or Outcome.FAILED


def source_outcome(exc: BaseException) -> Outcome:
    """What any driver error that reached the source boundary means, by its driver's table."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        outcome = dbapi_outcome(exc.orig, exc.connection_invalidated)
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        outcome = Outcome.UNAVAILABLE  # e.g. a connection invalidated mid-read, with no driver error left
    elif (adbc := sys.modules.get("adbc_driver_manager")) is not None and isinstance(exc, adbc.Error):
        outcome = adbc_outcome(exc)
    elif isinstance(exc, OSError) and exc.errno is not None:
        outcome = os_errno_outcome(exc.errno) or Outcome.FAILED
    else:
        outcome = connectorx_outcome(exc)
    return outcome


def source_class(outcome: Outcome, action: str = "read") -> type[SourceError]:
    """The error class of an outcome. A permanent failure to connect is SourceRefused whatever its code:
    the source as configured cannot be reached (validate reports it once per source, not per table)."""
    if action == "connect" and outcome is Outcome.FAILED:
        return SourceRefused
    return SOURCE_CLASSES[outcome]
