"""The input-bot protocol server that the emulator plugin polls.

``GET /<n>`` (controller n, 0-3) or ``GET /`` (controller 0) → a JSON object of
the 16 pad keys. HTTP/1.0 connections are closed right after the reply (the
original plugin reads until close); HTTP/1.1 connections stay open. Headers and
body go out in one ``sendall`` with TCP_NODELAY, so a keep-alive client never
waits for the Nagle / delayed-ACK stall (~40 ms on loopback).

One thread per connection, at most ``max_connections`` of them: a client that
sends half a request or nothing at all only holds its own thread until its
timeout, never the others.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from kartdata.errors import KartError
from kartdata.schema import Pad

from .agent import MAX_CONTROLLERS, PadSource
from .pad import NEUTRAL, to_json_bytes

#: The input-bot plugin's default port.
DEFAULT_PORT = 8082

Mode = Literal["free-run", "lockstep"]
MODES: tuple[Mode, ...] = ("free-run", "lockstep")


class ServerError(KartError):
    """The server cannot start (bad config, port taken)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    #: 0: any free port (see :attr:`PadServer.address`).
    port: int = DEFAULT_PORT
    mode: Mode = "free-run"
    #: Lockstep: polls answered with one action before the next poll waits for
    #: the agent (gym-mupen64plus used 5).
    polls_per_step: int = 1
    #: Lockstep: longest wait for the agent; then the previous pad is served so
    #: that nothing deadlocks forever.
    step_timeout: float = 2.0
    max_connections: int = 64
    #: A client has this long to finish a request once it started one.
    request_timeout: float = 2.0
    #: An idle keep-alive connection is closed after this long.
    idle_timeout: float = 60.0
    max_request_bytes: int = 8192

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ServerError(f"mode {self.mode!r} is not one of {MODES}")
        if self.polls_per_step < 1:
            raise ServerError(f"polls_per_step {self.polls_per_step} must be >= 1")
        if not 0 <= self.port <= 65535:
            raise ServerError(f"port {self.port} is out of range")
        if self.max_connections < 1 or self.max_request_bytes < 1:
            raise ServerError("max_connections and max_request_bytes must be ≥ 1")
        if min(self.step_timeout, self.request_timeout, self.idle_timeout) <= 0:
            raise ServerError("step, request and idle timeouts must be positive")


@dataclass
class ServerStats:
    requests: list[int] = field(default_factory=lambda: [0] * MAX_CONTROLLERS)
    bad_requests: int = 0
    rejected: int = 0
    step_timeouts: int = 0
    open_connections: int = 0


OnServe = Callable[[int, Pad], None]


class PadServer:
    """Serve pads from a :class:`PadSource`; use as a context manager or
    :meth:`start` / :meth:`close`."""

    def __init__(
        self, source: PadSource, config: ServerConfig | None = None, on_serve: OnServe | None = None
    ) -> None:
        self.source = source
        self.config = config or ServerConfig()
        self.on_serve = on_serve
        self.stats = ServerStats()
        self._slots = threading.BoundedSemaphore(self.config.max_connections)
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        # Lockstep state per controller: the pad of the current step and how
        # many polls it has answered.
        self._step_pad = [NEUTRAL] * MAX_CONTROLLERS
        self._step_polls = [0] * MAX_CONTROLLERS
        self._step_locks = [threading.Lock() for _ in range(MAX_CONTROLLERS)]
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise ServerError("server is not started")
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self) -> PadServer:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ls.bind((self.config.host, self.config.port))
        except OSError as e:
            ls.close()
            raise ServerError(
                f"cannot listen on {self.config.host}:{self.config.port}: {e.strerror}"
            ) from None
        ls.listen(128)
        self._listener = ls
        self._thread = threading.Thread(
            target=self._accept_loop, name="kartplay-accept", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept().
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PadServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        self._closing.wait()

    # -- the pad of a poll ---------------------------------------------------

    def pad_for(self, controller: int) -> Pad:
        if self.config.mode == "free-run":
            pad = self.source.latest(controller)
        else:
            pad = self._lockstep_pad(controller)
        self.stats.requests[controller] += 1
        if self.on_serve is not None:
            self.on_serve(controller, pad)
        return pad

    def _lockstep_pad(self, controller: int) -> Pad:
        with self._step_locks[controller]:
            if self._step_polls[controller] % self.config.polls_per_step == 0:
                pad = self.source.step(controller, self.config.step_timeout)
                if pad is None:
                    self.stats.step_timeouts += 1
                else:
                    self._step_pad[controller] = pad
            self._step_polls[controller] += 1
            return self._step_pad[controller]

    # -- connections ---------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self._slots.acquire(blocking=False):
                self.stats.rejected += 1
                _send_quietly(conn, _response(503, "too many connections", b"", False))
                conn.close()
                continue
            with self._lock:
                self._conns.add(conn)
                self.stats.open_connections = len(self._conns)
            threading.Thread(
                target=self._serve_conn, args=(conn,), name="kartplay-conn", daemon=True
            ).start()

    def _serve_conn(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except OSError:
            pass  # the client went away or timed out; nothing to answer
        finally:
            with self._lock:
                self._conns.discard(conn)
                self.stats.open_connections = len(self._conns)
            conn.close()
            self._slots.release()

    def _handle(self, conn: socket.socket) -> None:
        cfg = self.config
        buf = b""
        while not self._closing.is_set():
            # Wait for the first byte of a request with the idle timeout, then
            # give the rest of it request_timeout in total (a slow client
            # cannot keep the thread forever by trickling bytes).
            end = -1
            deadline = 0.0
            while True:
                end = _header_end(buf)
                if end >= 0:
                    break
                if len(buf) > cfg.max_request_bytes:
                    self.stats.bad_requests += 1
                    _send_quietly(conn, _response(431, "request too large", b"", False))
                    return
                if buf:
                    deadline = deadline or time.monotonic() + cfg.request_timeout
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.stats.bad_requests += 1
                        _send_quietly(conn, _response(408, "request timeout", b"", False))
                        return
                    conn.settimeout(left)
                else:
                    conn.settimeout(cfg.idle_timeout)
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    if not buf:
                        return  # idle keep-alive connection
                    continue  # the deadline check above answers 408
                if not chunk:
                    return
                buf += chunk
            head, buf = buf[:end], buf[end:].lstrip(b"\r\n")
            status, controller, keep_alive, version = _parse_request(head)
            if status != 200:
                self.stats.bad_requests += 1
                _send_quietly(conn, _response(status, "bad request", b"", False, version))
                return
            body = to_json_bytes(self.pad_for(controller))
            conn.sendall(_response(200, "OK", body, keep_alive, version))
            if not keep_alive:
                return


def _header_end(buf: bytes) -> int:
    """Index just past the blank line ending the request head, or -1."""
    i = buf.find(b"\r\n\r\n")
    j = buf.find(b"\n\n")
    ends = [k + n for k, n in ((i, 4), (j, 2)) if k >= 0]
    return min(ends) if ends else -1


def _parse_request(head: bytes) -> tuple[int, int, bool, str]:
    """(status, controller, keep_alive, version) of a request head."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        return 400, 0, False, "HTTP/1.1"
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return 400, 0, False, "HTTP/1.1"
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        return 505, 0, False, "HTTP/1.1"
    if method != "GET":
        return 405, 0, False, version
    path = target.split("?", 1)[0].strip("/")
    if path == "":
        controller = 0
    elif path.isdigit() and int(path) < MAX_CONTROLLERS:
        controller = int(path)
    else:
        return 404, 0, False, version
    connection = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "connection":
            connection = value.strip().lower()
    # HTTP/1.0 closes unless asked otherwise (the original plugin reads until close).
    keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
    return 200, controller, keep_alive, version


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def _response(
    status: int, what: str, body: bytes, keep_alive: bool, version: str = "HTTP/1.1"
) -> bytes:
    if status != 200:
        body = f'{{"error":"{what}"}}'.encode()
    head = (
        f"{version} {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.settimeout(0.5)
        conn.sendall(data)
