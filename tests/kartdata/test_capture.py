"""Screen capture and window finding against a real Xvfb server and a real window."""

from __future__ import annotations

import numpy as np
import pytest
from xvfb import poll

from kartdata.devices.capture import (
    CaptureError,
    Region,
    ScreenCapture,
    WindowRegion,
    find_window,
    find_window_id,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def assert_pattern(img: np.ndarray) -> None:
    """The four quadrants of tests/pattern_window.py, exactly, edge to edge."""
    h, w = img.shape[:2]
    assert (img[: h // 2, : w // 2] == RED).all()
    assert (img[: h // 2, w // 2 :] == GREEN).all()
    assert (img[h // 2 :, : w // 2] == BLUE).all()
    assert (img[h // 2 :, w // 2 :] == WHITE).all()


def test_region_parse_and_split() -> None:
    r = Region.parse("10, 20,640,480")
    assert r == Region(10, 20, 640, 480)
    assert r.split() == [Region(10, 20, 320, 480), Region(330, 20, 320, 480)]
    assert r.split(vertical=False) == [Region(10, 20, 640, 240), Region(10, 260, 640, 240)]
    assert Region(700, -5, 200, 100).clamped(Region(0, 0, 800, 600)) == Region(600, 0, 200, 100)
    with pytest.raises(CaptureError, match="X,Y,W,H"):
        Region.parse("1,2,3")
    with pytest.raises(CaptureError, match="not positive"):
        Region.parse("0,0,0,10")


def test_find_window_and_grab_its_pixels(xdisplay) -> None:  # type: ignore[no-untyped-def]
    xdisplay.pattern_window("kart-capture-test", 160, 120, x=50, y=70)
    region = poll(lambda: find_window("kart-capture", xdisplay.name))
    assert region == Region(50, 70, 160, 120)
    assert find_window("no such window", xdisplay.name) is None
    with ScreenCapture(xdisplay.name) as cap:
        assert cap.screen() == Region(0, 0, 800, 600)
        img = poll(lambda: (lambda a: a if (a[0, 0] == RED).all() else None)(cap.grab(region)))
        assert img is not None and img.shape == (120, 160, 3) and img.dtype == np.uint8
        assert_pattern(img)
        # one pixel outside the window is the black Xvfb root, not the window
        around = cap.grab(Region(49, 69, 162, 122))
        assert (around[0, :] == 0).all() and (around[:, 0] == 0).all()
        assert_pattern(around[1:-1, 1:-1])


def test_region_follows_moved_window(xdisplay) -> None:  # type: ignore[no-untyped-def]
    xdisplay.pattern_window("kart-move-test", 100, 80, x=10, y=10)
    tracker = WindowRegion("kart-move-test", xdisplay.name)
    try:
        first = tracker.wait(10)
        assert first == Region(10, 10, 100, 80)
        # while nothing changes the answer is the one already known, not a new query
        # (a few re-asks: one every REVALIDATE_S, or a late event from the window's start)
        answers = [tracker.current() for _ in range(200)]
        assert set(answers) == {first} and len({id(r) for r in answers}) <= 5
        wid = find_window_id("kart-move-test", xdisplay.name)
        assert wid is not None
        xdisplay.xdotool("windowmove", str(wid), "300", "200")
        moved = poll(lambda: (lambda r: r if r and r.x == 300 else None)(tracker.current()))
        assert moved == Region(300, 200, 100, 80)
        with ScreenCapture(xdisplay.name) as cap:
            img = poll(
                lambda: (lambda a: a if (a[-1, -1] == WHITE).all() else None)(cap.grab(moved))
            )
            assert img is not None
            assert_pattern(img)
            # where it was is now empty root window
            assert (cap.grab(first) == 0).all()
    finally:
        tracker.close()


def test_window_gone_then_back(xdisplay) -> None:  # type: ignore[no-untyped-def]
    proc = xdisplay.pattern_window("kart-gone-test", 64, 48, x=5, y=5)
    tracker = WindowRegion("kart-gone-test", xdisplay.name)
    try:
        assert tracker.wait(10) == Region(5, 5, 64, 48)
        proc.kill()
        proc.wait()
        assert poll(lambda: tracker.current() is None)
        xdisplay.pattern_window("kart-gone-test again", 64, 48, x=100, y=120)
        assert tracker.wait(10) == Region(100, 120, 64, 48)
        with pytest.raises(CaptureError, match="no window titled"):
            WindowRegion("never shown", xdisplay.name).wait(0.2)
    finally:
        tracker.close()


def test_grab_from_threads_uses_one_connection_each(xdisplay) -> None:  # type: ignore[no-untyped-def]
    import threading

    xdisplay.pattern_window("kart-thread-test", 80, 60, x=0, y=0)
    region = poll(lambda: find_window("kart-thread-test", xdisplay.name))
    cap = ScreenCapture(xdisplay.name)
    results: list[np.ndarray] = []
    poll(lambda: (cap.grab(region)[0, 0] == RED).all())

    def worker() -> None:
        for _ in range(5):
            results.append(cap.grab(region))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 15
    for img in results:
        assert_pattern(img)
    assert len(cap._all) == 4  # main thread + three workers
    cap.close()


def test_bad_display_is_a_one_line_error() -> None:
    with pytest.raises(CaptureError, match="cannot open X display"):
        ScreenCapture(":9999").grab(Region(0, 0, 10, 10))
    with pytest.raises(CaptureError, match="cannot open X display"):
        find_window("x", ":9999")
