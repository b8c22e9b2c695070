"""Finding the real binaries the tests need, and failing (never skipping) in CI when one is missing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

__all__ = ["require_binary"]


def require_binary(name: str, *, system: bool = False) -> str:
    """Path of ``name`` (beside the venv's python, or on PATH for system packages).

    Missing: a failure when ``CI`` is set (nothing may be skipped silently there), a skip
    with the install hint otherwise.
    """
    candidate = Path(sys.executable).parent / name
    path = str(candidate) if candidate.exists() and not system else shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
