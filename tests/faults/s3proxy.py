"""A fault-injecting HTTP proxy in front of an S3 server (moto), for clients that use AWS_ENDPOINT_URL.

Requests are forwarded unchanged (path-style addressing; the Host header is kept, moto does not check
signatures). Rules decide, per request, to answer an S3 error instead, or to drop the connection:

    proxy = FaultProxy("http://127.0.0.1:5000")
    proxy.add(FaultRule(action="503", method="PUT", share=0.3))                   # 30% of PUTs: SlowDown
    proxy.add(FaultRule(action="drop_after", method="PUT", path=r"/_manifests/", times=1))
    with proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url

Actions:
  503          503 SlowDown with S3's XML error body (the request never reaches the server)
  500          500 InternalError
  drop         close the client's connection (with a TCP reset) without forwarding
  drop_after   forward the request (it takes effect), then reset the connection: an unknown outcome
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

__all__ = ["FaultProxy", "FaultRule"]

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "expect", "content-length"}
_ERRORS = {
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
}


@dataclass
class FaultRule:
    """Matches requests by method and a regex searched in the path (and query); fires with `share`
    probability, at most `times` times (None: unlimited)."""

    action: str
    method: str | None = None
    path: str | None = None
    share: float = 1.0
    times: int | None = None
    header: str | None = None  # only requests carrying this header (e.g. x-amz-copy-source)
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in (*_ERRORS, "drop", "drop_after"):
            raise ValueError(f"unknown action {self.action!r}")

    def matches(self, method: str, path: str, headers: Any) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.path is not None and not re.search(self.path, path):
            return False
        if self.header is not None and headers.get(self.header) is None:
            return False
        return self.times is None or self.fired < self.times


@dataclass
class Event:
    method: str
    path: str
    action: str  # "forward" or the rule's action
    status: int | None = None


@dataclass
class FaultProxy:
    upstream: str
    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        parsed = urlparse(self.upstream)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------------------
    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def faults(self, action: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.action != "forward" and (action is None or e.action == action)]

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- per request --------------------------------------------------------------------------------
    def decide(self, method: str, path: str, headers: Any) -> str:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, headers) and self._random.random() < rule.share:
                    rule.fired += 1
                    return rule.action
            return "forward"

    def record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
                ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body or method in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # clients that give up mid-request (after a reset, on a retry) are expected here


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive and `Expect: 100-continue`, as S3 clients expect

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return None

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        owner, method, path = self.owner, self.command, self.path
        body = self._read_body()
        action = owner.decide(method, path, self.headers)
        if action == "drop":
            owner.record(Event(method, path, action))
            self._reset()
            return
        if action in _ERRORS:
            status, code, message = _ERRORS[action]
            owner.record(Event(method, path, action, status))
            self._error(status, code, message)
            return
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
        try:
            status, reason, resp_headers, data = owner.forward(method, path, headers, body)
        except OSError:
            owner.record(Event(method, path, "upstream-error"))
            self._reset()
            return
        owner.record(Event(method, path, action, status))
        # moto names the root of this answer CompleteMultipartUploadResponse; S3 (and pyarrow's check for
        # errors embedded in a 200 answer, which sees the body when it arrives after the headers) uses ...Result.
        data = data.replace(b"CompleteMultipartUploadResponse", b"CompleteMultipartUploadResult")
        if action == "drop_after":
            self._reset()
            return
        self.send_response_only(status, reason)  # upstream's own Server and Date headers follow
        for name, value in resp_headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if method == "HEAD":
            # A HEAD answer carries the object's length but no body.
            length = next((v for k, v in resp_headers if k.lower() == "content-length"), "0")
            self.send_header("Content-Length", length)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>fault-proxy</RequestId><HostId>fault-proxy</HostId></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close with a TCP reset: the client sees the connection die with no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
