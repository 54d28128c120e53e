"""The Dagster code location: `dagster dev -m dagster_defs`."""

from .definitions import build_definitions, defs

__all__ = ["build_definitions", "defs"]
