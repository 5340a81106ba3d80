"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def shared_data_dir() -> Path:
    """The checkout's shared real data (<repo root>/../shared/data), never copied into the repo.

    Missing data fails the test in CI (CI=true) so it cannot silently pass, and skips it elsewhere.
    """
    path = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    if not path.is_dir():
        message = f"shared data folder {path} is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
