"""A tiny homebrew N64 ROM for testing the input plugin in the real emulator.

No Nintendo code: a z64 header plus ~60 hand-encoded MIPS instructions at ROM
offset 0x40, which the core's high-level PIF boot copies to SP DMEM and runs.
Every video frame the program asks the PIF for controller 1's pad (channel 0,
which makes the core call the input plugin's ``GetKeys(0)``) and logs what it
read into RDRAM:

=================  ===========================================================
``LOG_ADDR + 0``   frames completed (incremented after each pad is logged)
``LOG_ADDR + 4``   the last pad word
``RING_ADDR``      ``RING_LEN`` words: the pad word of frame ``i`` at ``i % RING_LEN``
=================  ===========================================================

Pad words are as the game reads them: the byte-swap of the plugin's
``BUTTONS.Value`` (:func:`game_word_to_value`). RDRAM is physical addresses;
the emulator keeps it as host-order 32-bit words, which is how a dump made
through ``DebugMemGetPointer(M64P_DBG_PTR_RDRAM)`` reads back.

With a :class:`Video` mode the ROM also shows a picture, as a game does: it sets
up the VI (16-bit RGBA5551 or 32-bit RGBA8888, ``width`` x ``height``) and each
frame, before it polls the pad, draws frame ``f`` (its frame counter) into one
of two frame buffers and points ``VI_ORIGIN`` at it. Word ``i`` of frame ``f``
is :func:`pattern_word` ``(f, i)``; :func:`pattern_words` gives a whole frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ROM_SIZE = 1 << 20
CODE_OFFSET = 0x40
BLOCK_ADDR = 0x00100000  # the 64-byte PIF command block
LOG_ADDR = 0x00200000
RING_OFFSET = 0x100
RING_ADDR = LOG_ADDR + RING_OFFSET
RING_LEN = 4096
DUMP_LEN = RING_OFFSET + 4 * RING_LEN

FB_ADDR = 0x00300000  # frame buffer 0; buffer 1 is FB_STRIDE above it
FB_STRIDE = 0x00080000
#: Word i of frame f is f * PATTERN_STEP + i * PATTERN_INC (mod 2**32).
PATTERN_STEP = 0x9E3779B9
PATTERN_INC = 0x01000193

_REGS = {
    "zero": 0,
    **{f"t{i}": 8 + i for i in range(8)},
    **{f"s{i}": 16 + i for i in range(8)},
    "t8": 24,
    "t9": 25,
}
_OPS_I = {"addiu": 0x09, "andi": 0x0C, "ori": 0x0D, "lui": 0x0F, "lw": 0x23, "sw": 0x2B}


def _r(name: str) -> int:
    return _REGS[name]


class _Asm:
    """Just enough of a MIPS assembler for the program below (two passes)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.items: list[tuple[str, tuple]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.items)

    def __getattr__(self, op: str):  # type: ignore[no-untyped-def]
        return lambda *args: self.items.append((op, args))

    def encode(self) -> bytes:
        out = bytearray()
        for pc, (op, a) in enumerate(self.items):
            out += struct.pack(">I", self._one(pc, op, a))
        return bytes(out)

    def _one(self, pc: int, op: str, a: tuple) -> int:
        if op == "nop":
            return 0
        if op == "sll":  # rd, rt, sa
            return (_r(a[1]) << 16) | (_r(a[0]) << 11) | (a[2] << 6)
        if op == "addu":  # rd, rs, rt
            return (_r(a[1]) << 21) | (_r(a[2]) << 16) | (_r(a[0]) << 11) | 0x21
        if op in ("beq", "bne"):  # rs, rt, label
            off = (self.labels[a[2]] - (pc + 1)) & 0xFFFF
            return (
                ((0x04 if op == "beq" else 0x05) << 26) | (_r(a[0]) << 21) | (_r(a[1]) << 16) | off
            )
        if op == "lui":  # rt, imm
            return (0x0F << 26) | (_r(a[0]) << 16) | (a[1] & 0xFFFF)
        if op in ("lw", "sw"):  # rt, offset, base
            return (_OPS_I[op] << 26) | (_r(a[2]) << 21) | (_r(a[0]) << 16) | (a[1] & 0xFFFF)
        # addiu/andi/ori: rt, rs, imm
        return (_OPS_I[op] << 26) | (_r(a[1]) << 21) | (_r(a[0]) << 16) | (a[2] & 0xFFFF)


@dataclass(frozen=True)
class Video:
    """What the ROM shows: its frame buffer's pixel size and resolution, and who
    draws it: the CPU (``"cpu"``: :func:`pattern_words`) or the RDP (``"rdp"``:
    a command list sent straight to the DP, :func:`rdp_words`), which only a
    video plugin that runs RDP commands into RDRAM turns into pixels."""

    bits: int = 16
    width: int = 320
    height: int = 240
    draw: Literal["cpu", "rdp"] = "cpu"

    def __post_init__(self) -> None:
        if self.bits not in (16, 32):
            raise ValueError(f"video bits {self.bits} is not 16 or 32")
        if self.draw not in ("cpu", "rdp"):
            raise ValueError(f"video draw {self.draw!r} is not cpu or rdp")
        if not (8 <= self.width <= 640 and 8 <= self.height <= 480):
            raise ValueError(f"video {self.width}x{self.height} is outside 8x8..640x480")
        if self.frame_bytes % 16 or self.frame_bytes > FB_STRIDE:
            raise ValueError(f"video {self.width}x{self.height}x{self.bits} does not fit a buffer")

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.bits // 8

    @property
    def vi_registers(self) -> dict[int, int]:
        """VI register offset → value: type, width, and the NTSC timing that
        makes ``height`` lines (half-lines / 2 * Y_SCALE) of ``width`` pixels."""
        v_start = 0x23
        h_start = 0x6C
        return {
            0x00: 2 if self.bits == 16 else 3,  # VI_STATUS: pixel type
            0x08: self.width,  # VI_WIDTH
            0x24: (h_start << 16) | (h_start + 640),  # VI_H_START
            0x28: (v_start << 16) | (v_start + 2 * self.height),  # VI_V_START
            0x30: self.width * 1024 // 640,  # VI_X_SCALE (2.10)
            0x34: 0x400,  # VI_Y_SCALE: 1.0
        }


def pattern_word(frame: int, i: int) -> int:
    """Word ``i`` (host order, as RDRAM holds it) of the frame the ROM drew as ``frame``."""
    return (frame * PATTERN_STEP + i * PATTERN_INC) & 0xFFFFFFFF


def pattern_words(frame: int, video: Video) -> list[int]:
    """The words of frame ``frame`` as the CPU draws it (``draw="cpu"``)."""
    base = frame * PATTERN_STEP
    return [(base + i * PATTERN_INC) & 0xFFFFFFFF for i in range(video.frame_bytes // 4)]


RDP_BAR = 16  # width of the bar the RDP draws, in pixels


def rdp_bar_x(frame: int) -> int:
    return (frame & 127) * 2


def rdp_words(frame: int, video: Video) -> list[int]:
    """The words of frame ``frame`` as the RDP draws it (``draw="rdp"``): the
    whole screen filled with ``pattern_word(frame, 0)``, then a bar
    ``RDP_BAR`` pixels wide at :func:`rdp_bar_x` filled with
    ``pattern_word(frame, 1)``. A 16-bit fill colour is two pixels, the first
    in its top half: so is every frame buffer word."""
    back, bar = pattern_word(frame, 0), pattern_word(frame, 1)
    x0 = rdp_bar_x(frame)
    per_word = 2 if video.bits == 16 else 1
    row = [
        bar if x0 <= x * per_word < x0 + RDP_BAR else back for x in range(video.width // per_word)
    ]
    return row * video.height


CMD_ADDR = 0x00280000  # where the ROM writes its RDP command list


def _load32(m: _Asm, reg: str, value: int) -> None:
    m.lui(reg, value >> 16)
    m.ori(reg, reg, value & 0xFFFF)


def _video_setup(m: _Asm, video: Video) -> None:
    for off, value in video.vi_registers.items():
        _load32(m, "t0", value)
        m.sw("t0", off, "s2")
    m.addu("s5", "zero", "zero")  # s5: frame f's first word, f * PATTERN_STEP
    _load32(m, "s6", PATTERN_INC)
    _load32(m, "s7", PATTERN_STEP)


def _rdp_frame(m: _Asm, video: Video) -> None:
    """Frame f by the RDP: a 64-byte command list at CMD_ADDR, run by writing
    DPC_START / DPC_END (the core hands it to the video plugin's ProcessRDPList)."""
    w, h = video.width, video.height
    size = 2 if video.bits == 16 else 3
    m.lui("t7", 0xA000 | (CMD_ADDR >> 16))

    def put(off: int, value: int) -> None:
        _load32(m, "t8", value)
        m.sw("t8", off, "t7")

    put(0, 0xFF000000 | (size << 19) | (w - 1))  # Set Color Image: RGBA, size, width
    m.lui("t1", FB_ADDR >> 16)
    m.addu("t1", "t1", "t0")
    m.sw("t1", 4, "t7")  # ... at the back buffer
    put(8, 0xED000000)  # Set Scissor (0,0) ..
    put(12, ((w << 2) << 12) | (h << 2))  # .. (w,h), 10.2 fixed point
    put(16, 0xEF300000)  # Set Other Modes: cycle type fill
    m.sw("zero", 20, "t7")
    put(24, 0xF7000000)  # Set Fill Color: the background
    m.sw("s5", 28, "t7")
    put(32, 0xF6000000 | (((w - 1) << 2) << 12) | ((h - 1) << 2))  # Fill Rectangle, all
    m.sw("zero", 36, "t7")
    put(40, 0xF7000000)  # Set Fill Color: the bar
    m.addu("t9", "s5", "s6")
    m.sw("t9", 44, "t7")
    m.andi("t9", "t5", 127)
    m.sll("t9", "t9", 1)  # x0
    m.addiu("t6", "t9", RDP_BAR - 1)
    m.sll("t6", "t6", 14)  # (x0 + 15) << 2 << 12
    _load32(m, "t8", 0xF6000000 | ((h - 1) << 2))
    m.addu("t8", "t8", "t6")
    m.sw("t8", 48, "t7")  # Fill Rectangle: lower right (x0+15, h-1) ..
    m.sll("t6", "t9", 14)
    m.sw("t6", 52, "t7")  # .. upper left (x0, 0)
    put(56, 0xE9000000)  # Sync Full
    m.sw("zero", 60, "t7")
    m.lui("t8", 0xA410)  # DPC
    m.ori("t6", "zero", 1)
    m.sw("t6", 0x0C, "t8")  # DPC_STATUS: clear XBUS (commands come from RDRAM)
    m.lui("t6", CMD_ADDR >> 16)
    m.sw("t6", 0x00, "t8")  # DPC_START
    m.addiu("t6", "t6", 64)
    m.sw("t6", 0x04, "t8")  # DPC_END: run it


def _draw_frame(m: _Asm, video: Video) -> None:
    """Draw frame f into buffer f % 2 and show it (VI_ORIGIN)."""
    m.lw("t5", 0, "s1")  # f
    m.andi("t0", "t5", 1)
    m.sll("t0", "t0", FB_STRIDE.bit_length() - 1)
    if video.draw == "rdp":
        _rdp_frame(m, video)
        _show(m)
        return
    m.lui("t7", 0xA000 | (FB_ADDR >> 16))
    m.addu("t7", "t7", "t0")  # KSEG1 address of the buffer
    _load32(m, "t9", video.frame_bytes)
    m.addu("t8", "t7", "t9")  # its end
    m.addu("t9", "s5", "zero")
    m.label("draw")
    for k in range(4):
        m.sw("t9", 4 * k, "t7")
        m.addu("t9", "t9", "s6")
    m.addiu("t7", "t7", 16)
    m.bne("t7", "t8", "draw")
    m.nop()
    _show(m)


def _show(m: _Asm) -> None:
    m.lui("t1", FB_ADDR >> 16)
    m.addu("t1", "t1", "t0")
    m.sw("t1", 0x04, "s2")  # VI_ORIGIN: show it
    m.addu("s5", "s5", "s7")


def program(video: Video | None = None) -> bytes:
    """The MIPS code placed at ROM 0x40 (runs at 0xA4000040)."""
    k1 = 0xA000  # KSEG1 (uncached) high half for RDRAM addresses
    m = _Asm(0xA4000040)
    m.lui("s0", k1 | (BLOCK_ADDR >> 16))
    m.lui("s1", k1 | (LOG_ADDR >> 16))
    m.lui("s2", 0xA440)  # VI
    m.lui("s3", 0xA430)  # MI
    m.lui("s4", 0xA480)  # SI
    m.ori("t0", "zero", 525)
    m.sw("t0", 0x18, "s2")  # VI_V_SYNC: 525 lines, NTSC
    m.ori("t0", "zero", 2)
    m.sw("t0", 0x0C, "s2")  # VI_V_INTR: interrupt at line 2
    m.sw("zero", 0, "s1")  # frames = 0
    if video is not None:
        _video_setup(m, video)
    m.lui("t2", BLOCK_ADDR >> 16)  # physical address of the block
    m.lui("t3", 0x1FC0)
    m.ori("t3", "t3", 0x07C0)  # PIF RAM
    m.label("frame")
    m.label("wait_vi")
    m.lw("t0", 0x08, "s3")  # MI_INTR
    m.andi("t0", "t0", 0x08)  # VI pending?
    m.beq("t0", "zero", "wait_vi")
    m.nop()
    m.sw("zero", 0x10, "s2")  # writing VI_CURRENT acknowledges it
    if video is not None:
        _draw_frame(m, video)
    # The PIF block: [FF 01 04 01][FF FF FF FF][FE ...] ... last byte 1.
    m.lui("t1", 0xFF01)
    m.ori("t1", "t1", 0x0401)
    m.sw("t1", 0, "s0")
    m.addiu("t1", "zero", -1)
    m.sw("t1", 4, "s0")
    m.lui("t1", 0xFE00)
    m.sw("t1", 8, "s0")
    for off in range(12, 60, 4):
        m.sw("zero", off, "s0")
    m.ori("t1", "zero", 1)
    m.sw("t1", 60, "s0")
    m.sw("t2", 0x00, "s4")  # SI_DRAM_ADDR
    m.sw("t3", 0x10, "s4")  # SI_PIF_ADDR_WR64B: RDRAM → PIF
    m.label("wait_si1")
    m.lw("t0", 0x18, "s4")
    m.andi("t0", "t0", 3)
    m.bne("t0", "zero", "wait_si1")
    m.nop()
    m.sw("zero", 0x18, "s4")  # acknowledge the SI interrupt
    m.sw("t2", 0x00, "s4")
    m.sw("t3", 0x04, "s4")  # SI_PIF_ADDR_RD64B: PIF → RDRAM; the core polls the pad here
    m.label("wait_si2")
    m.lw("t0", 0x18, "s4")
    m.andi("t0", "t0", 3)
    m.bne("t0", "zero", "wait_si2")
    m.nop()
    m.sw("zero", 0x18, "s4")
    m.lw("t4", 4, "s0")  # the pad word
    m.lw("t5", 0, "s1")  # frames
    m.sw("t4", 4, "s1")
    m.andi("t6", "t5", RING_LEN - 1)
    m.sll("t6", "t6", 2)
    m.addu("t6", "t6", "s1")
    m.sw("t4", RING_OFFSET, "t6")
    m.addiu("t5", "t5", 1)
    m.sw("t5", 0, "s1")
    m.beq("zero", "zero", "frame")
    m.nop()
    return m.encode()


def build(name: str = "KARTKIT PADTEST", video: Video | None = None) -> bytes:
    """The whole 1 MiB big-endian (z64) image; with ``video``, one that draws."""
    rom = bytearray(ROM_SIZE)
    struct.pack_into(">4I", rom, 0, 0x80371240, 0x0000000F, 0x80000400, 0x0000144C)
    rom[0x20:0x34] = name.encode("ascii")[:20].ljust(20, b" ")
    rom[0x3B] = ord("N")
    rom[0x3C:0x3E] = b"KK"
    rom[0x3E] = ord("E")
    code = program(video)
    if CODE_OFFSET + len(code) > 0x1000:
        raise ValueError("test program does not fit in SP DMEM")
    rom[CODE_OFFSET : CODE_OFFSET + len(code)] = code
    return bytes(rom)


def write(path: str | Path, video: Video | None = None) -> Path:
    path = Path(path)
    path.write_bytes(build(video=video))
    return path


def game_word_to_value(word: int) -> int:
    """The game reads the pad bytes big-endian: undo that to get ``BUTTONS.Value``."""
    return struct.unpack("<I", struct.pack(">I", word & 0xFFFFFFFF))[0]


@dataclass(frozen=True)
class PadLog:
    frames: int
    last: int
    #: ``BUTTONS.Value`` read by the game in frames 0..frames-1 (the last RING_LEN).
    values: list[int]


def read_log(dump: bytes) -> PadLog:
    """Decode a dump of ``DUMP_LEN`` bytes of RDRAM from ``LOG_ADDR``."""
    if len(dump) < DUMP_LEN:
        raise ValueError(f"RDRAM dump has {len(dump)} bytes, expected {DUMP_LEN}")
    frames, last = struct.unpack_from("<2I", dump, 0)
    ring = struct.unpack_from(f"<{RING_LEN}I", dump, RING_OFFSET)
    first = max(0, frames - RING_LEN)
    values = [game_word_to_value(ring[i % RING_LEN]) for i in range(first, frames)]
    return PadLog(frames=frames, last=game_word_to_value(last), values=values)
