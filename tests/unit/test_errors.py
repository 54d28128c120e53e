"""The error tree: secrets never reach a message, and every error says whether a retry can help."""

from __future__ import annotations

import pytest

from replicator.errors import (
    ConfigError,
    DeleteGuardError,
    LakeError,
    LakeUnavailable,
    LockError,
    ReplicatorError,
    SchemaChangeError,
    SourceError,
    SourceRefused,
    SourceUnavailable,
    WarehouseError,
    WarehouseUnavailable,
    mask_secrets,
)

SECRET_TEXTS = [
    ("cannot connect to postgresql://user:s3cret@host/db", "s3cret", "postgresql://user:***@host/db"),
    ("mysql+pymysql://root:p%40ss@h/db refused", "p%40ss", "mysql+pymysql://root:***@h/db"),
    (
        "postgresql+psycopg2://etl:pa:ss@db:5432/app?sslmode=require",
        "pa:ss",
        "postgresql+psycopg2://etl:***@db:5432/app",
    ),
    ("dsn: host=db user=etl password=s3cret dbname=app", "s3cret", "password=***"),
    ("PASSWORD=s3cret;user=etl", "s3cret", "PASSWORD=***"),
    ("aws_secret_access_key=AbC/dEf+123 in config", "AbC/dEf+123", "aws_secret_access_key=***"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SECRET_TEXTS)
def test_mask_secrets_hides_passwords(text: str, secret: str, kept: str) -> None:
    masked = mask_secrets(text)
    assert secret not in masked
    assert kept in masked  # user, host and database stay visible: they help find the problem


def test_mask_secrets_hides_every_occurrence() -> None:
    text = "src postgresql://a:one@h1/db, dst postgresql://b:two@h2/db, password=three"
    masked = mask_secrets(text)
    assert masked == "src postgresql://a:***@h1/db, dst postgresql://b:***@h2/db, password=***"


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://user@host/db",
        "s3://bucket/lake/rides/_manifests/00000000000000000001.json",
        "sqlite:////tmp/app.db",
        "table 'rides': column updated_at is NULL in 3 rows",
        "http://127.0.0.1:9000/bucket",
    ],
)
def test_mask_secrets_leaves_text_without_secrets_alone(text: str) -> None:
    assert mask_secrets(text) == text


ERROR_CLASSES = [
    ReplicatorError,
    ConfigError,
    SourceError,
    SourceUnavailable,
    LakeError,
    LakeUnavailable,
    WarehouseError,
    WarehouseUnavailable,
    SchemaChangeError,
    LockError,
    SourceRefused,
    DeleteGuardError,
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("text", "secret", "kept"), SECRET_TEXTS)
def test_error_messages_never_contain_the_secret(
    cls: type[ReplicatorError], text: str, secret: str, kept: str
) -> None:
    err = cls(text)
    assert secret not in str(err)
    assert kept in str(err)
    assert secret not in repr(err)
    assert all(secret not in str(arg) for arg in err.args)


def test_config_error_problem_lines_are_masked() -> None:
    # The CLI prints ConfigError.problems line by line, so each line must be masked too.
    err = ConfigError(["replicator.yml: sources.app: got 'postgresql://etl:s3cret@db/app'", "other problem"])
    assert "s3cret" not in str(err)
    assert not [line for line in err.problems if "s3cret" in line]
    assert len(err.problems) == 2


def test_config_error_keeps_one_line_per_problem() -> None:
    err = ConfigError(["a.yml: x: bad", "b.yml: y: bad"])
    assert err.problems == ["a.yml: x: bad", "b.yml: y: bad"]
    assert str(err) == "a.yml: x: bad\nb.yml: y: bad"
    single = ConfigError("a.yml: x: bad")
    assert single.problems == ["a.yml: x: bad"]


@pytest.mark.parametrize(
    ("cls", "retriable"),
    [
        (SourceUnavailable, True),
        (LakeUnavailable, True),
        (WarehouseUnavailable, True),
        (LockError, True),
        (ConfigError, False),
        (SourceError, False),
        (LakeError, False),
        (WarehouseError, False),
        (SchemaChangeError, False),
        (SourceRefused, False),
        (DeleteGuardError, False),
        (ReplicatorError, False),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_retriable(cls: type[ReplicatorError], retriable: bool) -> None:
    assert cls.retriable is retriable
    assert cls("boom").retriable is retriable


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (SourceUnavailable, SourceError),
        (LakeUnavailable, LakeError),
        (WarehouseUnavailable, WarehouseError),
        (ConfigError, ReplicatorError),
        (SchemaChangeError, ReplicatorError),
        (LockError, ReplicatorError),
        (SourceRefused, SourceError),
        (DeleteGuardError, ReplicatorError),
    ],
)
def test_transient_errors_are_caught_by_their_family(
    cls: type[ReplicatorError], parent: type[ReplicatorError]
) -> None:
    with pytest.raises(parent):
        raise cls("boom")


def test_delete_guard_error_is_still_importable_from_reconcile() -> None:
    from replicator.reconcile import DeleteGuardError as FromReconcile

    assert FromReconcile is DeleteGuardError
