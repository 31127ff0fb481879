"""SuperTuxKart, the first real 3D game kartkit drives and records.

- :mod:`~kartplay.stk.game`: a time trial in a headless, private game
  (:class:`SuperTuxKart`, :class:`TimeTrial`, :class:`RaceResult`).
- :mod:`~kartplay.stk.config`: the ``config.xml`` kartkit writes (why each setting).
- :mod:`~kartplay.stk.install`: the installed game, its race tracks and karts.
- :mod:`~kartplay.stk.racelog`: the game's per-frame race log, read live.
- :mod:`~kartplay.stk.highscores`: the game's finish-time table.
- :mod:`~kartplay.stk.keys`: the key map between the N64 pad and the game's keys.
- :mod:`~kartplay.stk.display`, :mod:`~kartplay.stk.procs`: Xvfb and child
  processes that never outlive kartkit.
- :mod:`~kartplay.stk.cli`: ``kartplay stk race`` and ``kartplay stk keymap``.
- :mod:`~kartplay.stk.replay`: the ghost replays the game ships and writes.
- :mod:`~kartplay.stk.hud`: the race timer read off the HUD.
- :mod:`~kartplay.stk.demonstrate`: demonstration sessions from ghost replays.
- :mod:`~kartplay.stk.evaluate`: ``kartplay stk evaluate``, a model's time trials
  scored against the replays' human experts.

Nothing is imported eagerly: ``import kartplay.stk.game`` loads what a game needs.
"""
