"""The SQLAlchemy-based reader every dialect module specializes (the protocol it meets is in `reading`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

from ..config import SourceConfig, TableConfig
from ..driver_errors import Outcome
from ..errors import ConfigError, ReplicatorError, SourceError, mask_secrets
from ..lake.partitioning import check_partition_columns
from ..reading import ReadRequest, SourceReader, TableSchema
from ..types import ColumnSpec
from ..watermark import Probe, SettleClock
from . import query
from .errors import source_class, source_outcome
from .typemap import column_spec, iceberg_compatible

__all__ = ["ReadRequest", "SourceReader", "SqlSource", "TableSchema", "source_error"]

log = logging.getLogger(__name__)

# What each outcome of the source's error table (sources/errors.py) tells the user to do.
_REMEDY = {Outcome.UNAVAILABLE: "; check that the server is reachable, then retry",
           Outcome.REFUSED: "; fix the credentials or database in its url", Outcome.FAILED: ""}


def source_error(source: str, action: str, exc: BaseException) -> ReplicatorError:
    """Translate a driver error by its code and type (sources/errors.py): retriable or not, and the remedy."""
    text = mask_secrets(str(getattr(exc, "orig", None) or exc)).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    outcome = source_outcome(exc)
    return source_class(outcome, action)(f"source {source!r}: cannot {action}: {first}{_REMEDY[outcome]}")


def normalize_url(url: str) -> str:
    """Default drivers: psycopg2 for postgresql://, pymysql for mysql:// and mariadb://."""
    for bare, full in (("postgresql://", "postgresql+psycopg2://"), ("postgres://", "postgresql+psycopg2://"),
                       ("mysql://", "mysql+pymysql://"), ("mariadb://", "mariadb+pymysql://")):
        if url.startswith(bare):
            return full + url[len(bare):]
    return url


CONNECT_TIMEOUT_S = 10  # every login to a source gives up after this: a server that never answers fails the sync


def make_engine(url: str, owner: str, connect_timeout: int = CONNECT_TIMEOUT_S) -> Engine:
    url = normalize_url(url)
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018 - a malformed port only raises when read
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"{owner}: url: not a database URL ({mask_secrets(str(exc))})") from None
    args: dict[str, Any] = {}
    pool: dict[str, Any] = {"poolclass": NullPool}
    if parsed.get_backend_name() in ("postgresql", "mysql", "mariadb"):
        args["connect_timeout"] = connect_timeout
        # One run reflects, asks for the horizon and counts before it reads: reusing one idle connection
        # for those spares the server a login each and the client a TLS set-up (PyMySQL builds a fresh
        # TLS context per connect, 25-38 ms). The source's close() disposes of it at the end of the run;
        # threads sharing a source beyond that one get connections of their own, closed when returned.
        pool = {"poolclass": QueuePool, "pool_size": 1, "max_overflow": -1, "pool_pre_ping": True}
    try:
        return sa.create_engine(parsed, connect_args=args, **pool)
    except (sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(f"{owner}: url: unsupported database {parsed.drivername!r} ({exc})") from None


class SqlSource:
    """A source read through SQLAlchemy Core; dialect modules override the hooks below."""

    dialect: ClassVar[str] = ""

    iceberg_types = False  # set by open_source: Iceberg-compatible column types (typemap.iceberg_compatible)

    def __init__(self, name: str, config: SourceConfig, engine: Engine | None = None) -> None:
        self.name = name
        self.config = config
        self._engine = engine
        self._engine_lock = threading.Lock()

    # -- hooks --------------------------------------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection inside one read-only, consistent transaction with timeouts."""
        with self.connect() as conn, conn.begin():
            yield conn

    def settle_clock(self) -> SettleClock | None:
        """The source's clock and its oldest open transaction (None: nothing known, no cap)."""
        return None

    def clock_sql(self) -> str:
        """A statement returning the source's clock now (not the statement's or transaction's start)."""
        raise NotImplementedError

    def probe(self, table: TableConfig) -> Probe | None:
        """The highest (effective) watermark in one snapshot, and the source clock read after it began.

        An integer watermark settles by probes (see watermark.settle_bound); None: the table is empty.
        """
        with self.snapshot() as conn:
            top = conn.execute(query.max_watermark_select(table)).scalar_one()
            at = conn.exec_driver_sql(self.clock_sql()).scalar_one()
        if top is None:
            return None
        return Probe(at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc), int(top))

    def bind_value(self, spec: ColumnSpec, value: Any) -> Any:
        return value

    # -- shared ---------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        with self._engine_lock:  # one pool for the tables read side by side
            if self._engine is None:
                self._engine = make_engine(self.config.url, f"source {self.name!r}")
            return self._engine

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise source_error(self.name, "connect", exc) from exc
        try:
            yield conn
        except sa.exc.DBAPIError as exc:
            raise source_error(self.name, "read", exc) from exc
        except sa.exc.SQLAlchemyError as exc:  # e.g. a connection invalidated mid-read
            cls = source_class(source_outcome(exc))
            raise cls(f"source {self.name!r}: cannot read: {mask_secrets(str(exc)).splitlines()[0]}") from exc
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def table_clause(self, table: TableConfig, columns: Sequence[str]) -> sa.TableClause:
        return query.table_clause(table, columns)

    def reflect(self, conn: Connection, table: TableConfig) -> list[dict[str, Any]]:
        try:
            return [dict(c) for c in sa.inspect(conn).get_columns(table.table_name, schema=table.schema_name)]
        except sa.exc.NoSuchTableError:
            raise SourceError(
                f"table: {table.table!r} not found in source {self.name!r}; check the name "
                f"({'schema.table' if self.dialect == 'postgresql' else 'table or db.table'})"
            ) from None

    def describe(self, table: TableConfig) -> TableSchema:
        """Reflect the table; raise naming every configured column the source lacks."""
        with self.connect() as conn:
            reflected = self.reflect(conn, table)
        by_name = {c["name"]: c for c in reflected}
        wanted = table.columns or [c["name"] for c in reflected]
        missing = []
        for key, cols in (("primary_key", table.primary_key), ("watermark", [table.watermark]),
                          ("partition_by", table.partition_by), ("on_null_watermark.fallback", [table.null_fallback]), ("soft_delete", [table.soft_delete]),
                          ("columns", table.columns or [])):
            missing += [f"{key}: column {c!r} not found in {table.table}" for c in cols if c and c not in by_name]
        if missing:
            have = ", ".join(by_name)
            raise SourceError("; ".join(dict.fromkeys(missing)) + f" (it has: {have})")
        wanted = [*wanted, *[c for c in [table.null_fallback, table.soft_delete] if c and c not in wanted]]
        specs = tuple(column_spec(self.dialect, c, by_name[c]["type"], by_name[c].get("nullable", True)) for c in wanted)
        if self.iceberg_types:
            specs = tuple(map(iceberg_compatible, specs))
        schema = TableSchema(specs, tuple(by_name))
        self._check_kinds(table, schema)
        return schema

    def _check_kinds(self, table: TableConfig, schema: TableSchema) -> None:
        for k in table.primary_key:
            t = schema.column(k).arrow_type
            if pa.types.is_list(t) or pa.types.is_floating(t) or schema.column(k).logical == "json":
                raise SourceError(
                    f"primary_key: column {k!r} is {schema.column(k).source_type}; a key must be an exact scalar "
                    "(integer, text, uuid, date/time, decimal)"
                )
        if table.null_fallback and table.watermark:
            got, want = schema.column(table.null_fallback), schema.column(table.watermark)
            if got.arrow_type != want.arrow_type:
                raise SourceError(
                    f"on_null_watermark.fallback: column {table.null_fallback!r} is {got.source_type}, the watermark "
                    f"{table.watermark!r} is {want.source_type}; they must have the same type"
                )
        if table.watermark:
            t = schema.column(table.watermark).arrow_type
            if not (pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_integer(t)):
                raise SourceError(
                    f"watermark: column {table.watermark!r} is {schema.column(table.watermark).source_type}; "
                    "use a timestamp/datetime, date or integer column"
                )
            if isinstance(table.lookback, int) and not pa.types.is_integer(t):
                raise SourceError("lookback: an integer lookback needs an integer watermark; write a duration like 5m")
        unusable = check_partition_columns(table.partition_by, {c: schema.column(c).arrow_type for c in table.partition_by})
        if unusable:
            raise SourceError(unusable)

    def read(self, request: ReadRequest) -> Iterator[pa.RecordBatch]:
        """Stream record batches of the request; chunked requests read keyset chunks, one snapshot each."""
        chunk = self.chunk_rows(request) if request.chunked else None
        after: tuple[Any, ...] | None = None
        while True:
            got = 0
            last: pa.RecordBatch | None = None
            for batch in self.read_chunk(request, after, chunk):
                got += batch.num_rows
                last = batch if batch.num_rows else last
                yield batch
            if chunk is None or got < chunk or last is None:
                return
            after = tuple(last.column(k)[last.num_rows - 1].as_py() for k in request.table.primary_key)

    def chunk_rows(self, request: ReadRequest) -> int:
        """Rows per keyset chunk of a full read."""
        return self.config.chunk_rows

    def will_read(self) -> None:
        """Told before the extract's own work that a read follows: a source may start opening what the
        read needs (PostgreSQL: its ADBC connection). Nothing by default."""

    def reads_ahead(self, request: ReadRequest) -> bool:
        """True when the driver already decodes in its own thread, so the extract needs no read-ahead."""
        return False

    def read_chunk(self, request: ReadRequest, after: tuple[Any, ...] | None, limit: int | None) -> Iterator[pa.RecordBatch]:
        """One statement in one snapshot, through a server-side cursor, as record batches."""
        with self.snapshot() as conn:
            stmt = query.read_select(request, after, limit, param=query.bound(self.bind_value))
            result = conn.execution_options(stream_results=True, max_row_buffer=self.config.batch_rows).execute(stmt)
            while rows := result.fetchmany(self.config.batch_rows):
                yield self._to_batch(request.schema, rows)
            result.close()

    def _to_batch(self, schema: TableSchema, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
        columns = list(zip(*rows))
        arrays = []
        for spec, values in zip(schema.columns, columns):
            try:
                arrays.append(spec.to_arrow(values))
            except (pa.ArrowException, ValueError, TypeError, ArithmeticError) as exc:
                raise SourceError(f"column {spec.name!r} ({spec.source_type}): a value does not fit {spec.arrow_type}: {exc}") from exc
        return pa.RecordBatch.from_arrays(arrays, schema=schema.arrow)

    def count_rows(self, table: TableConfig, where_null: str | None = None) -> int:
        with self.snapshot() as conn:
            return int(conn.execute(query.count_select(table, where_null)).scalar_one())

    def list_tables(self) -> list[str]:
        with self.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())

    def primary_key(self, table: TableConfig) -> list[str]:
        with self.connect() as conn:
            self.reflect(conn, table)  # a clear error for a missing table
            constraint = sa.inspect(conn).get_pk_constraint(table.table_name, schema=table.schema_name)
            return list(constraint.get("constrained_columns") or [])


def batch_min_max(batch: pa.RecordBatch | pa.Table, column: str) -> tuple[Any, Any]:
    result = pc.min_max(batch.column(column))
    return result["min"].as_py(), result["max"].as_py()

