"""kartplay: drive a game with a trained model, over the emulator plugin's
protocol or on the CarRacing simulator.

The names below load on first use, so ``import kartplay`` stays fast and does
not import TensorFlow::

    import kartplay
    with kartplay.Serving(kartplay.ServeOptions(model="m", region="0,0,640,480")) as s:
        print(s.address)
    report = kartplay.drive(kartplay.load_policy("m"), kartplay.DriveConfig(seeds=(11, 12)))

The parts: ``protocol`` (the plugin's pad server), ``policy`` (model outputs →
pads), ``serve`` (the ``kartplay serve`` command: frames → policy → server),
``override`` (a human takes over), ``sim`` (the simulator: ``collect``
sessions, ``drive`` closed loop, the ``demo`` and the ``ablation``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DEFAULT_PORT",
    "AblationConfig",
    "DemoConfig",
    "DemoResult",
    "DriveConfig",
    "DriveReport",
    "PadServer",
    "PerturbConfig",
    "Policy",
    "PolicyConfig",
    "ServeOptions",
    "ServerConfig",
    "ServerError",
    "Serving",
    "SimRecordConfig",
    "SimSessionReport",
    "collect",
    "drive",
    "load_policy",
    "run_ablation",
    "run_demo",
]

#: Where each public name lives (imported on first use): module, and the
#: attribute there when it has another name.
_HOME: dict[str, tuple[str, str]] = {
    "DEFAULT_PORT": ("kartplay.protocol", "DEFAULT_PORT"),
    "PadServer": ("kartplay.protocol", "PadServer"),
    "ServerConfig": ("kartplay.protocol", "ServerConfig"),
    "ServerError": ("kartplay.protocol", "ServerError"),
    "Serving": ("kartplay.serve", "Serving"),
    "ServeOptions": ("kartplay.serve", "ServeOptions"),
    "Policy": ("kartplay.policy", "Policy"),
    "PolicyConfig": ("kartplay.policy", "PolicyConfig"),
    "load_policy": ("kartplay.policy", "load"),
    "collect": ("kartplay.sim.collect", "collect"),
    "SimRecordConfig": ("kartplay.sim.collect", "SimRecordConfig"),
    "PerturbConfig": ("kartplay.sim.collect", "PerturbConfig"),
    "SimSessionReport": ("kartplay.sim.collect", "SimSessionReport"),
    "drive": ("kartplay.sim.drive", "drive"),
    "DriveConfig": ("kartplay.sim.drive", "DriveConfig"),
    "DriveReport": ("kartplay.sim.drive", "DriveReport"),
    "run_demo": ("kartplay.sim.demo", "run_demo"),
    "DemoConfig": ("kartplay.sim.demo", "DemoConfig"),
    "DemoResult": ("kartplay.sim.demo", "DemoResult"),
    "run_ablation": ("kartplay.sim.ablation", "run_ablation"),
    "AblationConfig": ("kartplay.sim.ablation", "AblationConfig"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'kartplay' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
