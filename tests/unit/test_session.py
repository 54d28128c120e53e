"""The source session settings (replicator/sources/session.py): one function per dialect, as every path applies them."""

from __future__ import annotations

import datetime as dt

from pymysql.converters import escape_item

from replicator.config import SourceConfig
from replicator.sources.session import (
    mysql_isolation_sql,
    mysql_session,
    mysql_set_sql,
    postgres_begin_sql,
    postgres_session,
    set_config_call,
)

CONFIG = SourceConfig(url="mysql://x@h/db", statement_timeout=dt.timedelta(seconds=90, milliseconds=500),
                      lock_timeout=dt.timedelta(milliseconds=2500))


def test_mariadb_times_statements_in_seconds_mysql_in_milliseconds() -> None:
    maria = mysql_session(CONFIG, mariadb=True)
    assert maria.variables == (("time_zone", "+00:00"), ("max_statement_time", 90.5), ("innodb_lock_wait_timeout", 2))
    mysql = mysql_session(CONFIG, mariadb=False)
    assert mysql.variables == (("time_zone", "+00:00"), ("max_execution_time", 90500), ("innodb_lock_wait_timeout", 2))
    assert maria.isolation == mysql.isolation == "REPEATABLE READ" and maria.read_only and mysql.read_only


def test_mysql_lock_wait_is_at_least_one_second() -> None:
    short = SourceConfig(url="mysql://x@h/db", lock_timeout=dt.timedelta(milliseconds=200))
    assert dict(mysql_session(short, mariadb=True).variables)["innodb_lock_wait_timeout"] == 1


def test_mysql_set_is_bound_on_the_row_path_and_escaped_for_connectorx() -> None:
    settings = mysql_session(CONFIG, mariadb=False)
    assert mysql_set_sql(settings) == "SET SESSION time_zone = %s, max_execution_time = %s, innodb_lock_wait_timeout = %s"
    assert settings.values == ("+00:00", 90500, 2)
    assert mysql_set_sql(settings, lambda v: escape_item(v, "utf8mb4")) == (
        "SET SESSION time_zone = '+00:00', max_execution_time = 90500, innodb_lock_wait_timeout = 2")
    assert mysql_set_sql(mysql_session(CONFIG, mariadb=True), lambda v: escape_item(v, "utf8mb4")) == (
        "SET SESSION time_zone = '+00:00', max_statement_time = 90.5e0, innodb_lock_wait_timeout = 2")


def test_mysql_isolation_with_and_without_read_only() -> None:
    settings = mysql_session(CONFIG, mariadb=True)
    assert mysql_isolation_sql(settings, with_read_only=True) == "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    assert mysql_isolation_sql(settings, with_read_only=False) == "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"


def test_postgres_timeouts_in_milliseconds_idle_at_least_a_minute() -> None:
    settings = postgres_session(CONFIG)
    assert settings.variables == (("statement_timeout", "90500"), ("lock_timeout", "2500"),
                                  ("idle_in_transaction_session_timeout", "90500"))
    quick = postgres_session(SourceConfig(url="postgresql://x@h/db", statement_timeout=dt.timedelta(seconds=5)))
    assert dict(quick.variables)["idle_in_transaction_session_timeout"] == "60000"
    assert postgres_begin_sql(settings) == "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def test_set_config_binds_names_and_values() -> None:
    pairs = [("statement_timeout", "1000"), ("replicator.lower", "x'; DROP TABLE t; --")]
    sql, args = set_config_call(pairs, numbered=True)
    assert sql == "SELECT set_config($1, $2, true), set_config($3, $4, true)"
    assert args == ("statement_timeout", "1000", "replicator.lower", "x'; DROP TABLE t; --")
    sql, args = set_config_call(pairs[:1], numbered=False)
    assert (sql, args) == ("SELECT set_config(%s, %s, true)", ("statement_timeout", "1000"))
