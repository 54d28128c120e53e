"""What the codes drivers attach to their errors mean, before any boundary names them.

A code says what the caller can do, whichever boundary it came through: `UNAVAILABLE` (retry),
`REFUSED` (the server rejected who we are or what we asked to open: fix the URL) or `FAILED` (anything
else that a retry will not cure). Each boundary's mapping module (`sources/errors.py`,
`lake/errors.py`, `warehouse/errors.py`) turns an outcome into its own error class.

Codes come from the exception's attributes wherever the driver sets them: SQLSTATE (psycopg2's
`pgcode`, ADBC's `sqlstate`), the MySQL errno (`args[0]` of pymysql's errors), `OSError.errno`.
Only libpq withholds the SQLSTATE of a refused connection; `libpq_refusal` is the one place that
reads its text, for that reason.
"""

from __future__ import annotations

import enum
import errno
import re

__all__ = ["MYSQL_ERRNOS", "OS_ERRNOS", "Outcome", "libpq_refusal", "mysql_errno_outcome", "os_errno_outcome",
           "sqlstate_outcome"]


class Outcome(enum.Enum):
    UNAVAILABLE = "unavailable"  # transient: connection refused/reset/lost, timeout, throttled, server busy
    REFUSED = "refused"  # credentials, role or database wrong: fix the URL, do not retry
    FAILED = "failed"  # any other permanent failure


# SQLSTATE -> outcome: a full code, or a two-character class standing for every code in it. Codes that
# appear in neither fall back to the driver's exception type (each boundary's table).
SQLSTATES: dict[str, Outcome] = {
    "08": Outcome.UNAVAILABLE,  # connection exception (connection lost, refused by the backend)
    "40": Outcome.UNAVAILABLE,  # transaction rollback: serialization failure, deadlock
    "53": Outcome.UNAVAILABLE,  # insufficient resources: too many connections, disk full, out of memory
    "57": Outcome.UNAVAILABLE,  # operator intervention: query canceled (timeout), admin/crash shutdown, starting up
    "58": Outcome.UNAVAILABLE,  # system error (I/O) on the server
    "55P03": Outcome.UNAVAILABLE,  # lock_not_available: lock_timeout expired
    "28": Outcome.REFUSED,  # invalid authorization: 28P01 wrong password, 28000 no such role / no pg_hba entry
    "3D000": Outcome.REFUSED,  # invalid_catalog_name: the database does not exist
    "42501": Outcome.FAILED,  # insufficient_privilege: grant SELECT, a retry will not help
}

# MySQL/MariaDB error numbers (server errors 1000-1999, client errors 2000-2999) -> outcome.
MYSQL_ERRNOS: dict[int, Outcome] = {
    1040: Outcome.UNAVAILABLE,  # ER_CON_COUNT_ERROR: too many connections
    1053: Outcome.UNAVAILABLE,  # ER_SERVER_SHUTDOWN
    1205: Outcome.UNAVAILABLE,  # ER_LOCK_WAIT_TIMEOUT
    1213: Outcome.UNAVAILABLE,  # ER_LOCK_DEADLOCK
    1927: Outcome.UNAVAILABLE,  # ER_CONNECTION_KILLED (MariaDB)
    1969: Outcome.UNAVAILABLE,  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
    3024: Outcome.UNAVAILABLE,  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
    4031: Outcome.UNAVAILABLE,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8: idle connection closed)
    2002: Outcome.UNAVAILABLE,  # CR_CONNECTION_ERROR: cannot connect through the socket
    2003: Outcome.UNAVAILABLE,  # CR_CONN_HOST_ERROR: cannot connect to the host
    2006: Outcome.UNAVAILABLE,  # CR_SERVER_GONE_ERROR
    2013: Outcome.UNAVAILABLE,  # CR_SERVER_LOST
    2055: Outcome.UNAVAILABLE,  # CR_SERVER_LOST_EXTENDED
    1044: Outcome.REFUSED,  # ER_DBACCESS_DENIED_ERROR
    1045: Outcome.REFUSED,  # ER_ACCESS_DENIED_ERROR: wrong user or password
    1049: Outcome.REFUSED,  # ER_BAD_DB_ERROR: unknown database
    1130: Outcome.REFUSED,  # ER_HOST_NOT_PRIVILEGED: this host may not connect
    1698: Outcome.REFUSED,  # ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    1142: Outcome.FAILED,  # ER_TABLEACCESS_DENIED_ERROR: grant SELECT
}

# Socket-level errno -> outcome; an errno not listed (ENOSPC, EACCES, ...) is a permanent failure.
OS_ERRNOS: dict[int, Outcome] = {
    code: Outcome.UNAVAILABLE
    for code in (errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE,
                 errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.EHOSTDOWN,
                 errno.EAGAIN, errno.EINTR)
}


def sqlstate_outcome(code: str | None) -> Outcome | None:
    """The outcome of a SQLSTATE by its full code, else by its class; None when the table has neither."""
    if not code:
        return None
    return SQLSTATES.get(code) or SQLSTATES.get(code[:2])


def mysql_errno_outcome(code: int | None) -> Outcome | None:
    return MYSQL_ERRNOS.get(code) if code is not None else None


def os_errno_outcome(code: int | None) -> Outcome | None:
    """UNAVAILABLE for a socket-level errno, FAILED for any other errno, None without one."""
    if code is None:
        return None
    return OS_ERRNOS.get(code, Outcome.FAILED)


# libpq reports a refused connection (psycopg2.OperationalError, ADBC's IO status) with no SQLSTATE:
# PQconnectdb fails before a result exists, so neither driver has a field to copy it from. The server's
# own refusals are fixed phrases, each with a documented SQLSTATE; these are the ones the URL can fix.
_LIBPQ_REFUSALS = re.compile(
    r"password authentication failed|\w+ authentication failed|no password supplied|"
    r"role \"[^\"]*\" does not exist|database \"[^\"]*\" does not exist|no pg_hba\.conf entry"
)


def libpq_refusal(message: str) -> bool:
    """True when libpq's connection-failure text is the server refusing credentials, role or database.

    The one place a PostgreSQL message is read: the SQLSTATEs behind these phrases (28P01, 28000,
    3D000) are REFUSED, but libpq keeps them to itself.
    """
    return _LIBPQ_REFUSALS.search(message) is not None
