"""Run one step in a child process and measure it; write bench projects; the S3 server for full_s3."""

from __future__ import annotations

import atexit
import compileall
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import Server
from .step import RESULT_PREFIX, TABLE

__all__ = ["ChildResult", "Launcher", "S3Server", "launcher", "run_step", "snapshot_code", "write_project"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_code_root = REPO_ROOT  # where children import `bench` and `replicator` from; see snapshot_code()


def snapshot_code(folder: Path) -> Path:
    """Copy replicator/ and bench/ into `folder` and run every child from there.

    The library is edited while benchmarks run; measuring a frozen copy keeps all runs of one
    invocation on the same code. Children run with the copy as their working directory and first
    PYTHONPATH entry, which `python -m` and the import system search before the editable install.
    Bytecode is compiled now, so the first measured child does not pay for it.
    """
    global _code_root
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results")
    for package in ("replicator", "bench"):
        shutil.copytree(REPO_ROOT / package, folder / package, ignore=ignore)
    compileall.compile_dir(str(folder), quiet=1)
    _code_root = folder
    return folder


@dataclass
class ChildResult:
    """What the parent saw of one child (wall, peak RSS, exit) plus what the child reported of itself."""

    argv: list[str]
    wall_s: float
    peak_rss_mib: float
    cpu_s: float
    returncode: int
    reported: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        out = {"wall_s": self.wall_s, "peak_rss_mib": self.peak_rss_mib, "cpu_s": self.cpu_s, "returncode": self.returncode,
               "error": self.error, **self.reported}
        return {**out, "stderr_tail": self.stderr_tail} if self.stderr_tail else out


class Launcher:
    """The `bench.launcher` process that spawns every step child (see its docstring for why)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "bench.launcher"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, cwd=_code_root, env=_child_env(None), text=True)

    def run(self, argv: list[str], env: dict[str, str], stdout: str, stderr: str, timeout_s: float) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        request = {"argv": argv, "env": env, "cwd": str(_code_root), "stdout": stdout, "stderr": stderr,
                   "timeout_s": timeout_s}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline()
        if not reply:
            raise RuntimeError("bench.launcher exited unexpectedly")
        data: dict[str, Any] = json.loads(reply)
        if "error" in data:
            raise RuntimeError(f"bench.launcher could not run {argv}: {data['error']}")
        return data

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_launcher: Launcher | None = None


def launcher() -> Launcher:
    """The shared launcher, started on first use and stopped when the bench exits."""
    global _launcher
    if _launcher is None:
        _launcher = Launcher()
        atexit.register(_launcher.close)
    return _launcher


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_code_root), child_env.get("PYTHONPATH")]))
    return child_env


def run_step(args: list[str], env: dict[str, str] | None = None, timeout_s: float = 3600.0) -> ChildResult:
    """Run `python -m bench.step ARGS` through the launcher: wall time including interpreter start, peak RSS.

    The peak RSS is ru_maxrss of wait4, which covers the child and every descendant it waited for
    (psql, mariadb for `floor`): the peak of the largest of them. CPU is user + system time of the same.
    """
    argv = [sys.executable, "-m", "bench.step", *args]
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        measured = launcher().run(argv, _child_env(env), out, err, timeout_s)
        stdout = Path(out).read_text(errors="replace")
        stderr = Path(err).read_text(errors="replace")
    status = int(measured["status"])
    result = ChildResult(argv, float(measured["wall_s"]), int(measured["maxrss_kib"]) / 1024,
                         float(measured["cpu_s"]), status)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if lines:
        result.reported = json.loads(lines[-1][len(RESULT_PREFIX):])
    if status != 0 or not lines:
        tail = stderr.strip().splitlines()[-1:] or [stdout.strip()[-500:]]  # the exception's own line
        result.error = f"exit {status}: {tail[0]}"
        result.stderr_tail = stderr.strip().splitlines()[-30:]
    return result


def write_project(folder: Path, srv: Server, source_table: str, lake_url: str, warehouse_url: str | None = None,
                  warehouse_schema: str = "raw") -> Path:
    """A fresh project: replicator.yml (lake; DuckDB warehouse in `folder` unless `warehouse_url`) and schemas/rides.yml."""
    warehouse_url = warehouse_url or f"duckdb:///{folder / 'warehouse.duckdb'}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(exist_ok=True)
    project = folder / "replicator.yml"
    project.write_text(
        "sources:\n"
        "  bench:\n"
        f"    url: '{srv.source_url()}'\n"
        "lake:\n"
        f"  url: '{lake_url}'\n"
        "warehouse:\n"
        f"  url: '{warehouse_url}'\n"
        f"  schema: {warehouse_schema}\n"
    )
    (folder / "schemas" / f"{TABLE}.yml").write_text(
        "source: bench\n"
        f"table: {srv.source_table(source_table)}\n"
        "primary_key: [id]\n"
        "replication: incremental\n"
        "watermark: updated_at\n"
        "lookback: 0s\n"
    )
    return project


class S3Server:
    """moto's ThreadedMotoServer in this (the parent) process, on a free port, with a fresh bucket per run.

    werkzeug's request log is silenced so it does not drown the bench's progress lines.

    Children reach it over HTTP through AWS_ENDPOINT_URL. Its CPU time is spent in this process, so a
    full_s3 step measures moto as well; its memory is not part of the child's peak RSS.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                    "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def __enter__(self) -> S3Server:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def new_lake(self) -> str:
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=bucket)
        return f"s3://{bucket}/lake"

    def reset(self) -> None:
        """Drop every bucket (moto keeps objects in memory)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass
