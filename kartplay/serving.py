"""``kartplay serve``: wire a pad source (a model on captured frames, or a
recording) to the protocol server and show a status line."""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from kartdata.errors import KartError

from .agent import AgentLoop, LatestPads, PadSource, replay_pads
from .server import PadServer, ServerConfig


@dataclass(frozen=True, slots=True)
class ServeOptions:
    model: str | None = None
    replay: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8082
    mode: str = "free-run"
    polls_per_step: int = 1
    step_timeout: float = 2.0
    max_connections: int = 64
    region: str | None = None
    window: str | None = None
    status: bool = True


def build_source(opts: ServeOptions) -> tuple[PadSource, AgentLoop | None]:
    """The pad source, and the agent loop feeding it when there is a model."""
    if bool(opts.model) == bool(opts.replay):
        raise KartError("give either a MODEL or --replay RECORDING (not both, not neither)")
    if opts.replay:
        return replay_pads(list(opts.replay)), None
    return _model_agent(opts)


def _model_agent(opts: ServeOptions) -> tuple[PadSource, AgentLoop]:
    try:
        from kartplay import policy  # written in parallel (issue 7)
    except ImportError:
        raise KartError(
            "serving a model needs kartplay.policy, which this checkout does not have yet; "
            "use --replay RECORDING"
        ) from None
    decide = _make_decide(policy, opts)
    mailbox = LatestPads()
    loop = AgentLoop(decide, lockstep=opts.mode == "lockstep", mailbox=mailbox)
    return mailbox, loop


def _make_decide(policy: Any, opts: ServeOptions) -> Any:
    from kartdata.capture import Region, ScreenCapture, WindowRegion

    if not opts.region and not opts.window:
        raise KartError("serving a model needs frames: give --region WxH+X+Y or --window TITLE")
    pol = policy.load(opts.model)
    cap = ScreenCapture()
    win = WindowRegion(opts.window) if opts.window else None
    fixed = Region.parse(opts.region) if opts.region else None

    def decide():  # type: ignore[no-untyped-def]
        region = win.current() if win is not None else fixed
        if region is None:
            raise KartError(f"window {opts.window!r} is gone")
        return pol.act(cap.grab(region)), "ai"

    return decide


def run(opts: ServeOptions) -> None:
    source, loop = build_source(opts)
    cfg = ServerConfig(
        host=opts.host,
        port=opts.port,
        mode=opts.mode,  # type: ignore[arg-type]
        polls_per_step=opts.polls_per_step,
        step_timeout=opts.step_timeout,
        max_connections=opts.max_connections,
    )
    server = PadServer(source, cfg).start()
    if loop is not None:
        loop.start()
    host, port = server.address
    print(f"kartplay serve: {opts.mode} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        last_t, last_n = time.monotonic(), sum(server.stats.requests)
        while not done.wait(1.0):
            if loop is not None and loop.error is not None:
                err = loop.error
                raise err if isinstance(err, KartError) else KartError(f"agent failed: {err}")
            if opts.status:
                now, n = time.monotonic(), sum(server.stats.requests)
                print(_status_line(opts.mode, (n - last_n) / (now - last_t), loop), flush=True)
                last_t, last_n = now, n
    finally:
        server.close()
        if loop is not None:
            loop.stop()


def _status_line(mode: str, polls_per_s: float, loop: AgentLoop | None) -> str:
    line = f"{mode}  polls/s {polls_per_s:6.1f}"
    if loop is not None:
        lat = sorted(loop.stats.latencies_ms) or [0.0]
        line += (
            f"  frames/s {loop.stats.fps():5.1f}"
            f"  inference p50 {lat[len(lat) // 2]:.1f} ms"
            f"  source {loop.stats.source.upper()}"
        )
    else:
        line += "  source REPLAY"
    return line


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: kartplay serve")
