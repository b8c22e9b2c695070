"""The real binaries the tests need, found by the kit, and failing (never skipping) in CI when one
is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sluice.stack import StackError, find_binary

__all__ = ["require_binary"]


def require_binary(name: str) -> str:
    """Path of ``name`` (:func:`sluice.stack.find_binary`: beside the venv's python, else PATH).

    Missing: a failure when ``CI`` is set (nothing may be skipped silently there), a skip with
    the install hint otherwise.
    """
    try:
        return find_binary(name)
    except StackError as error:
        reason = f"{Path(name).name} binary not found ({error})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test", pytrace=False)
        pytest.skip(reason)
