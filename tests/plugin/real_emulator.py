"""The real emulator (Debian's mupen64plus, dummy video, audio and RSP) running
a generated test ROM with the kartbot plugin's test build.

What the game read comes from the ROM's own log in RDRAM, dumped by the
plugin's test build (KARTBOT_DUMP) when it stops the core after
KARTBOT_STOP_AFTER polls; KARTBOT_TRACE gives, per poll, the ROM's frame
counter, so a test can watch emulation advance (or not) while it runs.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kartdata.schema import BUTTONS, Pad
from kartplay import testrom

EMULATOR = "/usr/games/mupen64plus"


def script(n: int) -> list[Pad]:
    """Distinct consecutive pads: every axis value and every button get used."""
    return [
        Pad(
            x=((i * 7) % 161 - 80) / 80,
            y=((i * 13) % 161 - 80) / 80,
            buttons=frozenset({BUTTONS[i % 14], BUTTONS[(i * 5) % 14]}),
        )
        for i in range(n)
    ]


class Emulator:
    def __init__(
        self,
        tmp: Path,
        plugin: Path,
        port: int,
        stop_after: int,
        video: testrom.Video | None = None,
        **env: str,
    ) -> None:
        self.rom = testrom.write(tmp / "padtest.z64", video)
        self.dump = tmp / "rdram.bin"
        self.trace = tmp / "trace.txt"
        (tmp / "config").mkdir(exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KARTBOT_")}
        full_env.update(
            SDL_VIDEODRIVER="dummy",
            SDL_AUDIODRIVER="dummy",
            KARTBOT_PORT=str(port),
            KARTBOT_STOP_AFTER=str(stop_after),
            KARTBOT_DUMP=str(self.dump),
            KARTBOT_DUMP_RANGE=f"{testrom.LOG_ADDR}:{testrom.DUMP_LEN}",
            KARTBOT_TRACE=str(self.trace),
            KARTBOT_TRACE_ADDR=str(testrom.LOG_ADDR),
            **env,
        )
        cmd = [EMULATOR, "--configdir", str(tmp / "config"), "--nosaveoptions", "--noosd"]
        cmd += ["--gfx", "dummy", "--audio", "dummy", "--rsp", "dummy"]
        cmd += ["--input", str(plugin.resolve()), "--emumode", "2", str(self.rom)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env
        )

    def polls(self) -> list[tuple[int, int, int]]:
        """(poll number, word served to the core, ROM frame counter) per GetKeys(0)."""
        if not self.trace.exists():
            return []
        out = []
        for line in self.trace.read_text().splitlines():
            f = line.split()
            if len(f) == 3:
                out.append((int(f[0]), int(f[1], 16), int(f[2], 16)))
        return out

    def wait_polls(self, n: int, timeout: float) -> list[tuple[int, int, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.polls()
            if len(p) >= n:
                return p
            assert self.proc.poll() is None, self.output()
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.polls())} polls after {timeout} s")

    def finish(self, timeout: float = 60) -> testrom.PadLog:
        out, _ = self.proc.communicate(timeout=timeout)
        self._out = out
        assert self.proc.returncode == 0, out[-3000:]
        # A run of zero frames also exits 0: the log proves the ROM ran.
        return testrom.read_log(self.dump.read_bytes())

    def output(self) -> str:
        return getattr(self, "_out", "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
