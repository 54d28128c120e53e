"""Typed, strict, frozen models of replicator.yml and schemas/<name>.yml."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Defaults",
    "LakeConfig",
    "NullFallback",
    "ProjectConfig",
    "SourceConfig",
    "TableConfig",
    "WarehouseConfig",
    "parse_duration",
    "parse_size",
]

_DURATION_PART = re.compile(r"(\d+)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """Parse `90s`, `5m`, `1h30m`, `2d` (or a number of seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 2h or 1d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    text = str(value).strip().lower()
    if not text or _DURATION_PART.sub("", text).strip():
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 2h, 1d or 1h30m")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text)))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(i?)B")


def parse_size(value: object) -> int:
    """Parse `256MB`, `1GiB`, `512KB` (or a number of bytes) into bytes; MB is 10^6, MiB 2^20."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 256MB or 1GiB")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a size must be positive")
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a size; write e.g. 256MB or 1GiB")
    number, prefix, binary = match.groups()
    scale = (1024 if binary else 1000) ** "_KMGT".index(prefix or "_")
    return max(1, int(float(number) * scale))


Size = Annotated[int, BeforeValidator(parse_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SourceConfig(_Strict):
    url: str = Field(description="SQLAlchemy URL: postgresql://, mysql+pymysql://, sqlite:///")
    statement_timeout: Duration = Field(default=timedelta(minutes=30))
    lock_timeout: Duration = Field(default=timedelta(seconds=10))
    settle_margin: Duration = Field(
        default=timedelta(seconds=1),
        description="clock-skew margin subtracted from the settle horizon",
    )
    batch_rows: int = Field(default=50_000, ge=1, description="rows per Arrow record batch read")
    chunk_rows: int = Field(
        default=1_000_000, ge=1, description="rows per keyset chunk (one short snapshot each) on full reads"
    )


_SECRET_PROPERTY = re.compile(r"token|credential|secret|password|access-key|session", re.IGNORECASE)


class IcebergConfig(_Strict):
    """Publication of every committed batch to an Iceberg table (off when `lake.iceberg` is absent)."""

    catalog: Literal["sql", "rest", "glue"] = Field(
        default="sql", description="pyiceberg's SQL catalog (SQLite file or PostgreSQL), a REST catalog, or AWS Glue")
    catalog_uri: str | None = Field(
        default=None,
        description="sql: SQLAlchemy URL (default sqlite:///iceberg.db, beside replicator.yml); rest: the catalog's URL",
    )
    catalog_properties: dict[str, str] = Field(
        default_factory=dict,
        description="other pyiceberg catalog properties (warehouse, glue.region, ...); secrets come from "
                    "PYICEBERG_CATALOG__<CATALOG_NAME>__<KEY> environment variables instead")
    catalog_name: str = Field(default="replicator", min_length=1)
    namespace: str = Field(default="lake", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                           description="the change tables' namespace (every row version)")
    current_namespace: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the current-state tables' namespace (one row per key); default `<namespace>_current`")
    tag_max_age: Duration = Field(default=timedelta(days=30), description="how long a batch-<id> tag is kept")
    metadata_versions: int = Field(default=100, ge=1, description="Iceberg metadata files kept per table")

    @field_validator("catalog_properties")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        secret = sorted(k for k in value if _SECRET_PROPERTY.search(k))
        if secret:
            raise ValueError(f"{', '.join(secret)}: a secret does not belong in replicator.yml; set it in the "
                             "environment as PYICEBERG_CATALOG__<CATALOG_NAME>__<KEY> (pyiceberg's convention, "
                             "e.g. PYICEBERG_CATALOG__REPLICATOR__TOKEN) and leave it out here")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IcebergConfig:
        if self.catalog == "rest" and not self.catalog_uri:
            raise ValueError("catalog_uri: a REST catalog needs its URL (https://host/api/catalog)")
        if self.catalog == "glue" and self.catalog_uri:
            raise ValueError("catalog_uri: AWS Glue takes none (its endpoint and region come from AWS_* variables "
                             "or catalog_properties glue.region)")
        if self.current_namespace == self.namespace:
            raise ValueError("current_namespace must differ from namespace: the change table and the current-state "
                             "table of a replicated table have the same name")
        return self

    @property
    def uri(self) -> str | None:
        """The catalog's URL: for the SQL catalog its default SQLite file when none is set."""
        return self.catalog_uri or ("sqlite:///iceberg.db" if self.catalog == "sql" else None)

    @property
    def current(self) -> str:
        """The current-state tables' namespace."""
        return self.current_namespace or f"{self.namespace}_current"


class LakeConfig(_Strict):
    url: str
    iceberg: IcebergConfig | None = None
    row_group_rows: int = Field(default=131_072, ge=1)
    file_max_rows: int = Field(default=1_048_576, ge=1)
    file_max_bytes: Size = Field(default=256 * 2**20, description="a file is closed once it holds this much Parquet")
    compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"


class WarehouseConfig(_Strict):
    url: str
    schema_: str = Field(default="raw", alias="schema", min_length=1)
    memory_limit: str = Field(
        default="auto",
        description="DuckDB only: the limit of a load (it spills beyond it): auto, or a size like 512MB, 2GiB",
    )

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if value.strip() != "auto":
            try:
                parse_size(value)
            except ValueError:
                raise ValueError("not a size; write auto, or a size like 512MB or 2GiB") from None
        return value.strip()
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CompactionPolicy(_Strict):
    """When a sync compacts a table by itself, after its warehouse load: a bound on small files."""

    max_files_per_partition: int = Field(
        default=64, ge=0, description="compact once a partition of the live batches holds more files (0: never)")
    max_rows: int = Field(
        default=5_000_000, ge=0,
        description="row versions above which a sync leaves it to `replicator compact` (0: no limit)")
    retention: Duration = Field(default=timedelta(days=30), description="time travel kept by such a compaction")


class Defaults(_Strict):
    freshness: Duration = Field(default=timedelta(days=1))
    schedule: str = Field(default="0 * * * *", description="cron for tables without their own schedule")
    schedule_status: Literal["stopped", "running"] = Field(
        default="stopped", description="Dagster schedules start stopped (Dagster's convention) unless set to running"
    )
    lease_ttl: Duration = Field(default=timedelta(hours=1))
    max_concurrent_tables: int | None = Field(
        default=None, ge=1, description="tables a `replicator sync` (or one source's lake step in Dagster) extracts "
        "at once; default: the CPUs this process may use, at most 4"
    )
    compaction: CompactionPolicy = Field(default_factory=CompactionPolicy)


class ProjectConfig(_Strict):
    sources: dict[str, SourceConfig] = Field(min_length=1)
    lake: LakeConfig
    warehouse: WarehouseConfig
    schemas_dir: str = "schemas"
    defaults: Defaults = Field(default_factory=Defaults)


class NullFallback(_Strict):
    """Rows whose watermark is NULL use this column's value instead (e.g. created_at)."""

    fallback: str = Field(min_length=1)


class TableConfig(_Strict):
    source: str
    table: str = Field(min_length=1)
    primary_key: list[str] = Field(min_length=1)
    replication: Literal["incremental", "full"] = "incremental"
    watermark: str | None = None
    lookback: int | timedelta = Field(default=timedelta(0))
    on_null_watermark: Literal["fail", "include"] | NullFallback = "fail"
    on_schema_change: Literal["evolve", "fail"] = "evolve"
    soft_delete: str | None = None
    delete_detection: Literal["none", "reconcile"] = "none"
    delete_guard: float = Field(default=0.1, gt=0, le=1)
    reconcile_every: Duration = Field(default=timedelta(days=1))
    partition_by: list[str] = Field(default_factory=list)
    partition_granularity: Literal["day", "month", "year"] = "day"
    columns: list[str] | None = None
    description: str | None = None
    freshness: Duration | None = None
    schedule: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    compaction: CompactionPolicy | None = None  # default: defaults.compaction

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: object) -> timedelta | int:
        # A bare integer is an offset in watermark units (for integer watermarks); text is a duration.
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError("lookback cannot be negative")
            return value
        return parse_duration(value)

    @field_validator("on_null_watermark", mode="before")
    @classmethod
    def _null_rule(cls, value: object) -> object:
        if value in ("fail", "include") or isinstance(value, NullFallback):
            return value
        if isinstance(value, dict) and set(value) == {"fallback"} and isinstance(value["fallback"], str):
            return NullFallback(fallback=value["fallback"])
        raise ValueError(f"{value!r} is not a rule; write fail, include, or {{fallback: <column>}}")

    @field_validator("primary_key", "columns", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("partition_by", mode="before")
    @classmethod
    def _partition_columns(cls, value: object) -> object:
        # One column or a list in folder order; null (the YAML default) is no partition column.
        return [] if value is None else [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> TableConfig:
        if self.replication == "incremental" and not self.watermark:
            raise ValueError(
                "watermark: required when replication is incremental; name an updated_at-like "
                "timestamp or an increasing integer column, or set replication: full"
            )
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError("primary_key: lists a column twice")
        if len(set(self.partition_by)) != len(self.partition_by):
            raise ValueError("partition_by: lists a column twice")
        if self.columns is not None:
            needed = [*self.primary_key, self.watermark, *self.partition_by, self.null_fallback, self.soft_delete]
            missing = [c for c in needed if c and c not in self.columns]
            if missing:
                raise ValueError(f"columns: must include the key, watermark and partition columns; add {missing}")
        return self

    @property
    def null_fallback(self) -> str | None:
        """The column standing in for a NULL watermark, if the rule is `fallback`."""
        rule = self.on_null_watermark
        return rule.fallback if isinstance(rule, NullFallback) else None

    @property
    def schema_name(self) -> str | None:
        """The schema (PostgreSQL) or database (MySQL) part of `table`, if any."""
        return self.table.rsplit(".", 1)[0] if "." in self.table else None

    @property
    def table_name(self) -> str:
        return self.table.rsplit(".", 1)[-1]
