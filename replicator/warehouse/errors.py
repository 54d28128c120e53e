"""The warehouse boundary's error mapping: DuckDB and PostgreSQL errors -> WarehouseUnavailable or WarehouseError.

    driver     phase     key                                           table
    duckdb     open      exception type                                DUCKDB_OPEN
               use       exception type                                DUCKDB_USE
    psycopg2   connect   SQLSTATE, libpq's refusal, exception type     driver_errors.SQLSTATES, PSYCOPG2_TYPES
               use       SQLSTATE, exception type                      driver_errors.SQLSTATES, PSYCOPG2_USE
    ADBC       both      the same, its SQLSTATE in `sqlstate`          (the binary COPY load)

`postgres_warehouse_error` is what PostgresWarehouse calls: it keeps that module's wording.
"""

from __future__ import annotations

from typing import Literal

from ..driver_errors import Outcome, libpq_refusal, sqlstate_outcome
from ..errors import WarehouseError, WarehouseUnavailable, mask_secrets

__all__ = ["DUCKDB_OPEN", "DUCKDB_USE", "PSYCOPG2_TYPES", "PSYCOPG2_USE", "duckdb_class", "postgres_class",
           "postgres_warehouse_error"]

Phase = Literal["connect", "use"]

WAREHOUSE_CLASSES: dict[Outcome, type[WarehouseError]] = {
    Outcome.UNAVAILABLE: WarehouseUnavailable, Outcome.REFUSED: WarehouseError, Outcome.FAILED: WarehouseError,
}

# duckdb exception class names, looked up along the exception's MRO (most specific first) -> outcome.
DUCKDB_OPEN: dict[str, Outcome] = {
    "IOException": Outcome.UNAVAILABLE,  # another process holds DuckDB's single-writer file lock
    "Error": Outcome.FAILED,
}
# Once open, a failure is the load's own (a type, a constraint, memory): a retry repeats it.
DUCKDB_USE: dict[str, Outcome] = {"Error": Outcome.FAILED}

# psycopg2 exception class names for errors without a SQLSTATE the table knows -> outcome.
PSYCOPG2_TYPES: dict[str, Outcome] = {"OperationalError": Outcome.UNAVAILABLE, "Error": Outcome.FAILED}
# In use, only a connection lost without any SQLSTATE (libpq's "server closed the connection") is transient
# by type; every other in-use error is decided by its SQLSTATE, else permanent.
PSYCOPG2_USE: dict[str, Outcome] = {"Error": Outcome.FAILED}


def _by_type(exc: BaseException, table: dict[str, Outcome]) -> Outcome:
    return next((table[c.__name__] for c in type(exc).__mro__ if c.__name__ in table), Outcome.FAILED)


def duckdb_class(exc: BaseException, phase: Phase) -> type[WarehouseError]:
    return WAREHOUSE_CLASSES[_by_type(exc, DUCKDB_OPEN if phase == "connect" else DUCKDB_USE)]


def postgres_class(exc: BaseException, phase: Phase) -> type[WarehouseError]:
    """The class of a psycopg2 or ADBC error met connecting (`connect`) or loading (`use`)."""
    sqlstate = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    outcome = sqlstate_outcome(sqlstate)
    if outcome is None and not sqlstate:
        if libpq_refusal(str(exc)):
            outcome = Outcome.REFUSED
        elif phase == "use" and type(exc).__name__ == "OperationalError":
            outcome = Outcome.UNAVAILABLE  # libpq lost the server mid-load: nothing was committed, retry
    if outcome is None:
        outcome = _by_type(exc, PSYCOPG2_TYPES if phase == "connect" else PSYCOPG2_USE)
    return WAREHOUSE_CLASSES[outcome]


def postgres_warehouse_error(exc: BaseException, phase: Phase) -> WarehouseError:
    """A psycopg2 error as our WarehouseError (or WarehouseUnavailable), secrets masked, one line.

    `connect`: "warehouse: cannot connect: <first line>"; `use`: "warehouse: <first line>".
    """
    lines = mask_secrets(str(exc)).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return postgres_class(exc, phase)(f"warehouse: cannot connect: {first}" if phase == "connect" else f"warehouse: {first}")
