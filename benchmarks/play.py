"""Play-path latency: plugin GetKeys, server reply over keep-alive, policy inference.

    .venv/bin/python benchmarks/play.py [--frames 3000] [--requests 3000]

1. GetKeys blocking time in free-run, measured inside the C harness (the plugin
   dlopened by a fake core) against a live kartplay server. Goal p99 < 0.1 ms.
2. Server reply latency over one keep-alive connection (Python raw sockets,
   TCP_NODELAY), against the baseline of a naive ``BaseHTTPRequestHandler``
   that writes headers and body separately (the Nagle / delayed-ACK stall).
   Goal p99 < 1 ms.
3. PilotNet (66x200) single-frame inference on the CPU threads this machine
   has, through THE preprocessing. Goal p99 < 10 ms.
4. The path ``kartplay serve MODEL`` really runs: a PilotNet exported by
   ``kartmodel export`` (keras and tflite), loaded by ``kartplay.policy.load``,
   ``Policy.act`` on one 320x240 frame (preprocessing + model + pad), against
   the baseline of calling the same Keras model eagerly, as the artifact runner
   first did.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def getkeys(frames: int) -> tuple[float, float]:
    from kartdata.schema import Pad
    from kartplay.agent import ScriptedPads
    from kartplay.protocol import PadServer, ServerConfig

    subprocess.run(["make", "-s", "-C", str(ROOT / "plugin"), "harness"], check=True)
    build = ROOT / "plugin" / "build"
    pads = [Pad(x=i / 100, buttons=frozenset({"a"})) for i in range(100)]
    with PadServer(ScriptedPads({0: pads}), ServerConfig(port=0)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KARTBOT_")}
        env["KARTBOT_PORT"] = str(srv.address[1])
        # One GetKeys per 16.7 ms frame, as the emulator does at 60 Hz, would take
        # minutes; 1 ms apart keeps the plugin's thread busy polling meanwhile.
        r = subprocess.run(
            [
                str(build / "harness"),
                "run",
                str(build / "mupen64plus-input-kartbot.so"),
                str(frames),
                "1000",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("getkeys_ns"))
    _, p50, p99, _ = line.split()
    return int(p50) / 1e3, int(p99) / 1e3


def _keepalive_latency(addr: tuple[str, int], n: int, path: str = "/0") -> list[float]:
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    out = []
    buf = b""
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(req)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].lower()
                i = head.find(b"content-length:")
                length = int(head[i + 15 :].split(b"\r\n")[0])
                if len(buf) >= end + 4 + length:
                    buf = buf[end + 4 + length :]
                    break
            buf += s.recv(65536)
        out.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return out


class _Naive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"A_BUTTON": 1, "X_AXIS": 40}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # headers flushed in one write …
        self.wfile.write(body)  # … body in a second: Nagle waits for the ACK

    def log_message(self, *args: object) -> None:
        pass


def server_latency(n: int, naive_n: int) -> tuple[list[float], list[float]]:
    from kartdata.schema import Pad
    from kartplay.agent import ScriptedPads
    from kartplay.protocol import PadServer, ServerConfig

    with PadServer(
        ScriptedPads({0: [Pad(x=0.5, buttons=frozenset({"a"}))]}), ServerConfig(port=0)
    ) as srv:
        _keepalive_latency(srv.address, 200)  # warm-up
        ours = _keepalive_latency(srv.address, n)
    naive = ThreadingHTTPServer(("127.0.0.1", 0), _Naive)
    t = threading.Thread(target=naive.serve_forever, daemon=True)
    t.start()
    try:
        base = _keepalive_latency(naive.server_address[:2], naive_n)  # type: ignore[arg-type]
    finally:
        naive.shutdown()
        naive.server_close()
    return ours, base


def inference(n: int) -> list[float] | None:
    try:
        from kartmodel import pilotnet
        from kartmodel.targets import TargetLayout
    except ImportError:
        return None
    import numpy as np
    import tensorflow as tf

    from kartdata.preprocess import PILOTNET_INPUT, preprocess

    model = pilotnet.build(PILOTNET_INPUT, TargetLayout.parse("tensorkart"))

    @tf.function(reduce_retracing=True)
    def act(frame: tf.Tensor) -> tf.Tensor:
        return model(preprocess(frame, PILOTNET_INPUT)[tf.newaxis], training=False)

    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for _ in range(20):
        act(frame).numpy()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        act(frame).numpy()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def policy_inference(n: int) -> dict[str, list[float]]:
    """``Policy.act`` per artifact format, and the eager-Keras baseline (ms)."""
    import tempfile

    import numpy as np

    from kartdata.schema import ClassThresholds
    from kartmodel.artifact import export, load_artifact
    from kartmodel.config import TrainConfig
    from kartmodel.run import BEST_WEIGHTS, Run
    from kartplay import policy

    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)

    def timed(fn) -> list[float]:  # type: ignore[no-untyped-def]
        for _ in range(20):
            fn()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig("unused", model="pilotnet", height=66, width=200)
        run = Run(Path(tmp) / "run", cfg, ClassThresholds())
        run.save()
        run.build_model().save_weights(str(run.file(BEST_WEIGHTS)))
        for fmt in ("keras", "tflite"):
            pol = policy.load(export(run.path, fmt, Path(tmp) / fmt))
            results[f"Policy.act, {fmt} artifact"] = timed(lambda pol=pol: pol.act(frame))
        import keras

        art = load_artifact(Path(tmp) / "keras")
        model = keras.models.load_model(Path(tmp) / "keras" / "model.keras", compile=False)
        results["baseline: eager Keras call"] = timed(
            lambda: model(art.inputs(frame), training=False).numpy()
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--naive-requests", type=int, default=50)
    ap.add_argument("--inferences", type=int, default=300)
    a = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    p50, p99 = getkeys(a.frames)
    print(
        f"GetKeys free-run ({a.frames} calls): p50 {p50:.2f} µs  p99 {p99:.2f} µs  (goal p99 < 100 µs)"
    )
    ours, base = server_latency(a.requests, a.naive_requests)
    o50, o99 = statistics.median(ours), pct(ours, 99)
    b50, b99 = statistics.median(base), pct(base, 99)
    print(
        f"server keep-alive reply ({a.requests} requests): p50 {o50:.0f} µs  p99 {o99:.0f} µs  (goal p99 < 1000 µs)"
    )
    print(
        f"naive BaseHTTPRequestHandler baseline ({a.naive_requests}): p50 {b50:.0f} µs  p99 {b99:.0f} µs"
    )
    print(f"ratio baseline/kartplay: p50 {b50 / o50:.0f}x  p99 {b99 / o99:.0f}x")
    inf = inference(a.inferences)
    if inf is None:
        print("PilotNet inference: kartmodel.pilotnet not available")
    else:
        print(
            f"PilotNet 66x200 inference incl. preprocessing ({a.inferences}, batch 1): "
            f"p50 {statistics.median(inf):.2f} ms  p99 {pct(inf, 99):.2f} ms  (goal p99 < 10 ms)"
        )
    served = policy_inference(a.inferences)
    for name, ts in served.items():
        print(
            f"{name} ({a.inferences}, 320x240 frame): p50 {statistics.median(ts):.2f} ms  p99 {pct(ts, 99):.2f} ms"
        )
    base = statistics.median(served["baseline: eager Keras call"])
    keras_p50 = statistics.median(served["Policy.act, keras artifact"])
    print(f"ratio eager baseline / Policy.act keras: p50 {base / keras_p50:.1f}x")


if __name__ == "__main__":
    main()
