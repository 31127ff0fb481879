"""kartplay's and kartmodel's public names: each one is what it says, and
importing either package is cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["kartplay", "kartmodel"])
def test_every_public_name_resolves_to_a_function_or_class(package: str) -> None:
    pkg = importlib.import_module(package)
    home = pkg._HOME  # type: ignore[attr-defined]
    assert sorted(pkg.__all__) == sorted(home)
    for name in pkg.__all__:
        module, attr = home[name]
        value = getattr(pkg, name)
        assert value is getattr(importlib.import_module(module), attr), name
        assert not isinstance(value, type(pkg)), f"{package}.{name} is a module"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pkg.nope  # noqa: B018


def test_importing_the_packages_is_cheap_and_the_functions_are_functions() -> None:
    """A fresh interpreter: the package imports without TensorFlow, and a
    public function stays a function after its own module is imported."""
    code = """
import sys
import kartplay, kartmodel
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "heavy import"
import kartmodel.trainer, kartmodel.artifact, kartmodel.evaluation, kartplay.sim.collect
assert kartmodel.train is kartmodel.trainer.train
assert kartmodel.export is kartmodel.artifact.export
assert kartmodel.evaluate is kartmodel.evaluation.evaluate
assert kartplay.collect is kartplay.sim.collect.collect
assert callable(kartplay.drive) and callable(kartplay.load_policy)
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
