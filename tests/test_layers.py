"""Every top-level module of `stockroom` has a place in the import-linter layers contract.

import-linter checks only the modules a contract names: a new domain left out of the layers could
import anything, and nothing would say so. This test makes leaving it out fail.
"""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import stockroom

ROOT = Path(__file__).resolve().parents[1]


def _layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return {name for layer in layers["layers"] for name in re.split(r"\s*[:|]\s*", layer)}


def test_every_top_level_module_is_in_a_layer() -> None:
    modules = {f"stockroom.{info.name}" for info in pkgutil.iter_modules(stockroom.__path__)}
    assert modules - _layered_modules() == set()
    # And the contract names nothing that no longer exists.
    assert _layered_modules() - modules == set()
