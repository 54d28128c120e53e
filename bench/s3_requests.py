"""S3 requests per incremental sync, as a table's batches pile up: `python -m bench.s3_requests [--syncs N]`.

A 20,000-row PostgreSQL table (database `replicator_bench_s3req`, made here) partitioned by `created_at`
over 14 days, its lake on moto's S3 server over HTTP (in this process), a local DuckDB warehouse. After the
full load, N times: about 20 rows change, and a fresh `replicator sync` process runs. Every request the
server answers is counted from its own request log (werkzeug's), by kind: LIST (GET with list-type), GET,
HEAD, PUT, POST (multipart), DELETE. Prints a Markdown table of the counts at a few batch numbers: flat
counts mean a sync's cost does not grow with the batches a table has. With `--iceberg`, the project also
publishes both Iceberg tables (`lake.iceberg`, a SQLite catalog file in the temporary folder), so the
counts include the publication's requests.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .measure import S3Server
from .pg_scratch import change_small_rides, small_rides, url

DB = "replicator_bench_s3req"
_REQUEST = re.compile(r'"([A-Z]+) ([^ ]+) HTTP/')
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some lines (206, 404) for a terminal


class _Counter(logging.Handler):
    """Counts the S3 server's requests by kind (from werkzeug's access log lines)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        found = _REQUEST.search(_COLOUR.sub("", record.getMessage()))
        if found is None or found.group(2).startswith("/moto-api"):
            return
        method, target = found.groups()
        self.counts["LIST" if method == "GET" and "list-type=" in target else method] += 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--syncs", type=int, default=60)
    parser.add_argument("--iceberg", action="store_true", help="publish to Iceberg too (SQLite catalog)")
    args = parser.parse_args(argv)
    small_rides(DB, args.rows)
    counter = _Counter()
    with S3Server() as s3, tempfile.TemporaryDirectory() as tmp:
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.setLevel(logging.INFO)
        werkzeug.propagate = False
        werkzeug.addHandler(counter)
        folder = Path(tmp)
        (folder / "schemas").mkdir()
        iceberg = f"  iceberg:\n    catalog_uri: 'sqlite:///{folder / 'iceberg.db'}'\n" if args.iceberg else ""
        (folder / "replicator.yml").write_text(
            f"sources:\n  app:\n    url: '{url(DB)}'\nlake:\n  url: '{s3.new_lake()}'\n{iceberg}"
            "warehouse:\n  url: duckdb:///warehouse.duckdb\n")
        (folder / "schemas" / "rides.yml").write_text(
            "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\npartition_by: created_at\n")
        env = {**os.environ, **s3.env}
        report = {1, 2, 5, 10, 20, 40, args.syncs + 1}
        rows = []
        for batch in range(1, args.syncs + 2):
            if batch > 1:
                change_small_rides(DB, batch)
            counter.counts.clear()
            subprocess.run([sys.executable, "-m", "replicator", "--project", str(folder / "replicator.yml"), "sync",
                            "rides"], env=env, check=True, capture_output=True)
            if batch in report:
                rows.append((batch, dict(counter.counts)))
    kinds = ["LIST", "GET", "HEAD", "PUT", "POST", "DELETE"]
    print(f"| batch (a sync of ~{args.rows // 1000} changed rows; batch 1 is the full load) | "
          + " | ".join(kinds) + " | all |")
    print("|---" * (len(kinds) + 2) + "|")
    for batch, counts in rows:
        print(f"| {batch} | " + " | ".join(str(counts.get(k, 0)) for k in kinds) + f" | {sum(counts.values())} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
