"""The generation marker stands for exactly the patches runs of this generation took."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import workflows
from workflows.patches import GENERATION, IMPLIED, patched


def _patch_constants() -> set[str]:
    found: set[str] = set()
    for module in pkgutil.iter_modules(workflows.__path__):
        loaded = importlib.import_module(f"workflows.{module.name}")
        found |= {
            value
            for name, value in vars(loaded).items()
            if name.endswith("_PATCH") and isinstance(value, str)
        }
    return found


def test_every_patch_the_workflow_asks_about_is_implied_by_the_generation() -> None:
    # A patch added later must not silently join: runs of this generation did not take it.
    assert _patch_constants() == IMPLIED
    assert GENERATION not in IMPLIED


def test_a_patch_the_generation_does_not_imply_is_refused() -> None:
    with pytest.raises(ValueError, match="'a-later-patch' is not implied by 'rollout-generation-1'"):
        patched("a-later-patch")
