"""kartplay stk evaluate — owned by helper H8 (work in progress).

Time trials in SuperTuxKart driven by an exported model, scored against the
shipped ghost replays' expert times.
"""
