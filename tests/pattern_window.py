"""A real X11 program for capture tests: a pygame window with a known pattern.

Run as ``python pattern_window.py TITLE WIDTH HEIGHT X Y``. The window shows four
quadrants (top-left red, top-right green, bottom-left blue, bottom-right white)
and redraws every frame, so it shows the pattern again after being moved. With a
sixth argument ``noise`` the bottom half is noise, new every frame. It prints ``ready`` once the first frame is on screen and exits on SIGTERM or when
stdin closes.
"""

from __future__ import annotations

import os
import sys
import threading

COLOURS = {
    "top_left": (255, 0, 0),
    "top_right": (0, 255, 0),
    "bottom_left": (0, 0, 255),
    "bottom_right": (255, 255, 255),
}


def main() -> None:
    title, w, h, x, y = sys.argv[1], *(int(v) for v in sys.argv[2:6])
    # "noise": the bottom half shows fresh noise every frame (a live game for
    # the validator's frozen-frame check); the top half keeps the pattern
    noise = sys.argv[6:7] == ["noise"]
    os.environ["SDL_VIDEO_WINDOW_POS"] = f"{x},{y}"
    # forced: a test process that used a gamepad has SDL_VIDEODRIVER=dummy set
    os.environ["SDL_VIDEODRIVER"] = "x11"
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    import pygame

    pygame.display.init()
    screen = pygame.display.set_mode((w, h))
    pygame.display.set_caption(title)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    clock = pygame.time.Clock()
    first = True
    while not stop.is_set():
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                stop.set()
        hw, hh = w // 2, h // 2
        screen.fill(COLOURS["top_left"], (0, 0, hw, hh))
        screen.fill(COLOURS["top_right"], (hw, 0, w - hw, hh))
        screen.fill(COLOURS["bottom_left"], (0, hh, hw, h - hh))
        screen.fill(COLOURS["bottom_right"], (hw, hh, w - hw, h - hh))
        if noise:
            import numpy as np

            arr = np.random.default_rng().integers(0, 256, (w, h - hh, 3), dtype=np.uint8)
            screen.blit(pygame.surfarray.make_surface(arr), (0, hh))
        pygame.display.flip()
        if first:
            print("ready", flush=True)
            first = False
        clock.tick(30)
    pygame.quit()


if __name__ == "__main__":
    main()
