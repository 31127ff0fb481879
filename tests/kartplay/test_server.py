"""The protocol server over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from kartdata.schema import Pad
from kartplay.agent import LatestPads, ScriptedPads
from kartplay.pad import to_json_obj
from kartplay.protocol import DEFAULT_PORT, PadServer, ServerConfig, ServerError

PADS = [
    Pad(x=i / 10 - 0.5, y=0.1 * (i % 3), buttons=frozenset({"a"} if i % 2 else {"b"}))
    for i in range(10)
]


def connect(server: PadServer, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(server.address, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_reply(s: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One HTTP reply: status line, headers, body (by Content-Length)."""
    # Byte by byte up to the blank line, so a pipelined next reply stays unread.
    buf = b""
    while not buf.endswith(b"\r\n\r\n"):
        chunk = s.recv(1)
        assert chunk, f"connection closed mid-reply: {buf!r}"
        buf += chunk
    lines = buf[:-4].decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers["content-length"])
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk
        body += chunk
    assert len(body) == n
    return lines[0], headers, body


def get(s: socket.socket, path: str = "/0", version: str = "HTTP/1.1") -> tuple[str, dict, bytes]:
    s.sendall(f"GET {path} {version}\r\n\r\n".encode())
    return read_reply(s)


def closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:  # closed with our unread bytes still queued
        return True


@pytest.fixture
def scripted():
    source = ScriptedPads({0: PADS, 2: list(reversed(PADS))})
    served: list[tuple[int, Pad]] = []
    with PadServer(
        source, ServerConfig(port=0), on_serve=lambda c, p: served.append((c, p))
    ) as srv:
        yield srv, served


def test_http10_old_plugin_request_gets_full_reply_then_close(scripted):
    srv, served = scripted
    for i in range(3):
        with connect(srv) as s:
            s.sendall(b"GET /0 HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):  # the original plugin reads until close
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200")
        assert f"Content-Length: {len(body)}".encode() in head
        obj = json.loads(body)
        assert obj == to_json_obj(PADS[i])
        assert all(isinstance(v, int) and -80 <= v <= 80 for v in obj.values())
    assert [p for _, p in served] == PADS[:3]


def test_keep_alive_serves_each_controller_and_root(scripted):
    srv, served = scripted
    with connect(srv) as s:
        for i in range(5):
            status, headers, body = get(s, "/0")
            assert status == "HTTP/1.1 200 OK" and headers["connection"] == "keep-alive"
            assert json.loads(body) == to_json_obj(PADS[i])
        assert json.loads(get(s, "/")[2]) == to_json_obj(PADS[5])  # "/" is controller 0
        assert json.loads(get(s, "/2")[2]) == to_json_obj(PADS[-1])
        assert json.loads(get(s, "/1")[2]) == to_json_obj(Pad())  # unscripted → neutral
        assert json.loads(get(s, "/3")[2]) == to_json_obj(Pad())
    assert [c for c, _ in served] == [0] * 6 + [2, 1, 3]


def test_pipelined_requests_and_connection_close(scripted):
    srv, _ = scripted
    with connect(srv) as s:
        s.sendall(b"GET /0 HTTP/1.1\r\n\r\nGET /0 HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert json.loads(read_reply(s)[2]) == to_json_obj(PADS[0])
        _, headers, body = read_reply(s)
        assert headers["connection"] == "close" and json.loads(body) == to_json_obj(PADS[1])
        assert closed_by_peer(s)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"garbage\r\n\r\n", "400"),
        (b"POST /0 HTTP/1.1\r\n\r\n", "405"),
        (b"GET /7 HTTP/1.1\r\n\r\n", "404"),
        (b"GET /abc HTTP/1.1\r\n\r\n", "404"),
        (b"GET /0 HTTP/2.0\r\n\r\n", "505"),
        (b"GET /0 HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", "431"),
        (b"\xff\xfe\x00\x01\r\n\r\n", "400"),
    ],
)
def test_malformed_requests_get_an_error_and_close(scripted, request_bytes, status):
    srv, served = scripted
    with connect(srv) as s:
        s.sendall(request_bytes)
        line, _, body = read_reply(s)
        assert line.split()[1] == status and b"error" in body
        assert closed_by_peer(s)
    with connect(srv) as s:  # the server still serves afterwards
        assert get(s)[0] == "HTTP/1.1 200 OK"
    assert srv.stats.bad_requests == 1
    assert len(served) == 1


def test_slow_client_holding_half_a_request_does_not_stall_others():
    cfg = ServerConfig(port=0, request_timeout=0.5)
    with PadServer(ScriptedPads({0: PADS}), cfg) as srv, connect(srv) as slow:
        slow.sendall(b"GET /0 HT")  # and then nothing
        with connect(srv) as fast:
            t0 = time.monotonic()
            for _ in range(20):
                assert get(fast)[0] == "HTTP/1.1 200 OK"
            assert time.monotonic() - t0 < cfg.request_timeout  # never waited for the slow one
        # The slow client is cut off with 408 once its request timeout passes.
        line, _, _ = read_reply(slow)
        assert line.split()[1] == "408"
        assert closed_by_peer(slow)


def test_many_connections_bounded_and_others_keep_working():
    cfg = ServerConfig(port=0, max_connections=8)
    with PadServer(ScriptedPads({0: PADS}), cfg) as srv:
        first = connect(srv)
        assert get(first)[0] == "HTTP/1.1 200 OK"
        idle = [connect(srv) for _ in range(7)]
        deadline = time.monotonic() + 5
        while srv.stats.open_connections < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        extra = [connect(srv) for _ in range(20)]
        for s in extra:  # over the bound: told so at once, not left hanging
            line, _, _ = read_reply(s)
            assert line.split()[1] == "503"
            assert closed_by_peer(s)
        assert srv.stats.rejected == 20
        assert get(first)[0] == "HTTP/1.1 200 OK"  # an existing client is unaffected
        for s in [*idle, *extra]:
            s.close()
        deadline = time.monotonic() + 5
        while srv.stats.open_connections > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with connect(srv) as again:  # freed slots are reusable
            assert get(again)[0] == "HTTP/1.1 200 OK"
        first.close()


def test_lockstep_answers_polls_per_step_polls_per_action():
    cfg = ServerConfig(port=0, mode="lockstep", polls_per_step=3)
    with PadServer(ScriptedPads({0: PADS}), cfg) as srv, connect(srv) as s:
        got = [json.loads(get(s)[2]) for _ in range(9)]
    assert got == [to_json_obj(PADS[i // 3]) for i in range(9)]


def test_lockstep_waits_for_the_agent_and_times_out_to_previous_pad():
    mailbox = LatestPads()
    cfg = ServerConfig(port=0, mode="lockstep", step_timeout=0.3)
    with PadServer(mailbox, cfg) as srv, connect(srv) as s:
        replies: list[bytes] = []
        t = threading.Thread(target=lambda: replies.append(get(s)[2]))
        t.start()
        # The poll is held until the agent acts on it.
        assert mailbox.wait_wanted(0, 0, 5.0) == 1
        assert replies == []
        mailbox.publish(0, PADS[3])
        t.join(5)
        assert json.loads(replies[0]) == to_json_obj(PADS[3])
        # No action within step_timeout: the previous pad, not a deadlock.
        t0 = time.monotonic()
        assert json.loads(get(s)[2]) == to_json_obj(PADS[3])
        assert time.monotonic() - t0 >= 0.3
        assert srv.stats.step_timeouts == 1


def test_listens_on_loopback_only_by_default():
    config = ServerConfig(port=0)  # every other field as the serve command defaults it
    with PadServer(ScriptedPads({}), config) as srv:
        listener = srv._listener
        assert listener is not None
        assert listener.getsockname()[0] == "127.0.0.1"
    assert ServerConfig().port == DEFAULT_PORT == 8082  # the plugin's default


def test_port_in_use_is_a_clear_error():
    with PadServer(ScriptedPads({}), ServerConfig(port=0)) as srv:
        taken = srv.address[1]
        with pytest.raises(ServerError, match=f"127.0.0.1:{taken}"):
            PadServer(ScriptedPads({}), ServerConfig(port=taken)).start()


def test_bad_config_is_rejected():
    with pytest.raises(ServerError, match="mode"):
        ServerConfig(mode="turbo")  # type: ignore[arg-type]
    with pytest.raises(ServerError, match="polls_per_step"):
        ServerConfig(polls_per_step=0)
    with pytest.raises(ServerError, match="max_connections"):
        ServerConfig(max_connections=0)
    with pytest.raises(ServerError, match="timeouts must be positive"):
        ServerConfig(step_timeout=0)
    with pytest.raises(ServerError, match="out of range"):
        ServerConfig(port=70000)
