"""The `replicator` command's process: process-wide settings first, then the CLI (`replicator.cli`).

Arrow's allocations go to jemalloc unless ARROW_DEFAULT_MEMORY_POOL says otherwise. pyarrow's default,
mimalloc, keeps what worker threads freed (the DuckDB load and pyiceberg's writer hand Arrow buffers
between threads): a 2M-row `replicator sync` peaked at 326 MiB with it and 300 MiB with jemalloc, and with
Iceberg publication 548 against 349 MiB, at the same speed (README, Performance). Arrow reads the variable
once, at its first allocation, so it is set before anything imports pyarrow; this process is the
command's own, so the library itself never sets it (an embedder keeps its choice).

For the same reason the command's process never imports polars: ADBC's DB-API module imports it whenever
it is installed, for a bind-parameter backend replicator never uses, and that cost a PostgreSQL sync
29 MiB of RSS and 0.1 s of start-up (`python -X importtime`). Nothing in replicator uses polars.
"""

import os
import sys

if sys.platform != "win32":  # pyarrow's Windows wheels have no jemalloc
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
sys.modules.setdefault("polars", None)  # type: ignore[arg-type]  # None: `import polars` raises ImportError


def run() -> None:
    from .cli import run as command

    command()


if __name__ == "__main__":
    run()
