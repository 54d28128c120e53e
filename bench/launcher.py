"""A small process that spawns and measures the step children: `python -m bench.launcher` (stdlib only).

Why: on Linux, exec() folds the spawning process's peak RSS into the new program's ru_maxrss
(exec_mmap -> setmax_mm_hiwater_rss). Spawned straight from the bench process, which holds moto,
boto3 and pyarrow, every child would report at least the parent's peak. Spawned from this process, a
child inherits only this process's own small peak (about 10 MiB), below any step's real one.

Protocol: one JSON request per stdin line {"argv", "env", "cwd", "stdout", "stderr", "timeout_s"}; one
JSON reply per stdout line {"wall_s", "maxrss_kib", "cpu_s", "status"}. Wall time is taken around spawn and
wait4, so it includes the child's interpreter start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time


def _run(request: dict[str, object]) -> dict[str, object]:
    with open(str(request["stdout"]), "wb") as out, open(str(request["stderr"]), "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(request["argv"]), stdout=out, stderr=err,  # type: ignore[call-overload]
                                env=dict(request["env"]), cwd=str(request["cwd"]))  # type: ignore[call-overload]
        timer = threading.Timer(float(request["timeout_s"]), proc.kill)  # type: ignore[arg-type]
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen so
    return {"wall_s": wall, "maxrss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
            "status": proc.returncode}


def main() -> int:
    for line in sys.stdin:
        if line.strip():
            try:
                reply = _run(json.loads(line))
            except Exception as exc:  # report to the parent instead of dying silently
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
