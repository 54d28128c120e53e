"""Benchmark of replicator against the local PostgreSQL and MariaDB servers: `python -m bench --help`.

Modules: `dataset` (ride tables generated server-side), `step` (one measured step, run as a child
process), `measure` (spawning children and reading their wall time and peak RSS), `report` (medians,
targets, Markdown and JSON) and `__main__` (the command line and the order of steps).
"""

from __future__ import annotations
