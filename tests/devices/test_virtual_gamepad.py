"""The uinput virtual gamepad: where /dev/uinput works, a real device read back
through evdev; where it cannot (this sandbox's kernel has no uinput module),
the one-line reason — and the reasons for a missing device node, a missing
permission and a missing python-evdev, each made to happen here."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

from kartdata.devices.controls import InputError
from kartdata.devices.virtual_gamepad import UINPUT, VirtualGamepad
from kartdata.schema import Pad


def uinput_usable() -> bool:
    try:
        fd = os.open(UINPUT, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def test_the_virtual_gamepad_here() -> None:
    if not uinput_usable():
        # the sandbox's case: say why, in one line, and make no device
        with pytest.raises(InputError, match=r"^virtual gamepad: ") as e:
            VirtualGamepad()
        assert "\n" not in str(e.value) and str(UINPUT) in str(e.value)
        return
    import evdev
    from evdev import ecodes as ec

    with VirtualGamepad("kartkit test pad") as vp:
        dev = evdev.InputDevice(vp.device_path)
        try:
            assert dev.name == "kartkit test pad"
            assert (dev.info.vendor, dev.info.product) == (0x045E, 0x028E)
            vp.set_pad(Pad(x=-1.0, y=0.5, buttons=frozenset({"a", "z", "dpad_up"})))
            assert ec.BTN_SOUTH in dev.active_keys()
            assert dev.absinfo(ec.ABS_X).value == -32767
            assert dev.absinfo(ec.ABS_Y).value == round(-0.5 * 32767)
            assert dev.absinfo(ec.ABS_Z).value == 255
            assert dev.absinfo(ec.ABS_HAT0Y).value == -1
            vp.release_all()
            assert dev.active_keys() == [] and dev.absinfo(ec.ABS_X).value == 0
        finally:
            dev.close()


def test_each_reason_it_cannot_be_used_is_one_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "uinput"
    with pytest.raises(InputError, match=r"uinput does not exist \(load the kernel module"):
        VirtualGamepad(path=missing)
    locked = tmp_path / "locked"
    locked.touch()
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked)
    with pytest.raises(InputError, match=r"no permission to open .*locked"):
        VirtualGamepad(path=locked)
    monkeypatch.undo()
    real_import = builtins.__import__

    def no_evdev(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "evdev" or name.startswith("evdev."):
            raise ImportError("No module named 'evdev'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_evdev)
    with pytest.raises(
        InputError, match=r"python-evdev is not installed \(pip install 'kartkit\[uinput\]'\)"
    ):
        VirtualGamepad(path=locked)
    monkeypatch.undo()
    # an ordinary file is no uinput device: the kernel's answer, in one line
    with pytest.raises(InputError, match=r"^virtual gamepad: cannot create a uinput device: "):
        VirtualGamepad(path=locked)
