"""The exception tree of replicator.

    ReplicatorError                 root; `str(err)` is one line a user can act on
    ├── ConfigError                 a YAML file or environment is wrong: fix it, do not retry
    ├── SourceError                 the source database failed or refused
    │   ├── SourceUnavailable       transient (connection refused/reset, timeout): retry
    │   └── SourceRefused           the source refused the connection (credentials, role, database): fix its url
    ├── LakeError                   the lake store failed
    │   └── LakeUnavailable         transient (5xx, throttling, dropped connection): retry
    ├── WarehouseError              the warehouse failed
    │   └── WarehouseUnavailable    transient: retry
    ├── SchemaChangeError           the source schema changed incompatibly
    ├── DeleteGuardError            more deletes than delete_guard allows: check the source, nothing deleted
    └── LockError                   another run holds this table's lease

Every error carries `retriable`, so an orchestrator can choose retry or fail without parsing text.
Driver errors become these classes by the tables in `sources/errors.py`, `lake/errors.py` and
`warehouse/errors.py` (codes shared by several boundaries are in `driver_errors.py`).
"""

from __future__ import annotations

import re

__all__ = [
    "ConfigError",
    "DeleteGuardError",
    "LakeError",
    "LakeUnavailable",
    "LockError",
    "ReplicatorError",
    "SchemaChangeError",
    "SourceError",
    "SourceRefused",
    "SourceUnavailable",
    "WarehouseError",
    "WarehouseUnavailable",
    "mask_secrets",
]

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_KEY_VALUE_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|aws_secret_access_key)=([^\s&;]+)")


def mask_secrets(text: str) -> str:
    """Return `text` with passwords in URLs and `password=...` pairs replaced by `***`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEY_VALUE_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


class ReplicatorError(Exception):
    """Root of every error replicator raises on purpose."""

    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(mask_secrets(message))


class ConfigError(ReplicatorError):
    """A configuration file or the environment is wrong.

    `problems` holds one line per problem, each naming the file and key.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [mask_secrets(p) for p in ([problems] if isinstance(problems, str) else problems)]
        super().__init__("\n".join(self.problems))


class SourceError(ReplicatorError):
    """The source database failed or refused a request."""


class SourceUnavailable(SourceError):
    retriable = True


class SourceRefused(SourceError):
    """The source refused the connection (wrong credentials, unknown role or database): fix its url."""


class LakeError(ReplicatorError):
    """The lake store failed."""


class LakeUnavailable(LakeError):
    retriable = True


class WarehouseError(ReplicatorError):
    """The warehouse failed."""


class WarehouseUnavailable(WarehouseError):
    retriable = True


class SchemaChangeError(ReplicatorError):
    """The source table changed in a way the lake cannot follow."""


class DeleteGuardError(ReplicatorError):
    """More rows would be deleted than the table's delete_guard allows."""


class LockError(ReplicatorError):
    """Another run holds the table's lease."""

    retriable = True
