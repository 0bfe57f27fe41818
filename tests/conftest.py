"""Shared fixtures.

``shared_data`` points at ``../shared/data`` (or ``$FACEFIT_SHARED_DATA``) and skips
the test with a clear reason when it is absent: tests on real faces are never the
only tests of a feature.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    return Path(os.environ.get("FACEFIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-face data folder; skips when it is not beside the checkout."""
    path = _shared_data_dir()
    if not (path / "fs2k-train").is_dir():
        pytest.skip(f"real face data not found at {path} (set FACEFIT_SHARED_DATA to use it)")
    return path


@pytest.fixture
def registry():
    """A registry of the installed plugins, built fresh for each test."""
    from facefit import Registry

    return Registry.load()
