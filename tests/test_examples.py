"""The application developer's example script runs as written (examples/app_developer.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_app_developer_script(tmp_path):
    from facefit import weights
    from facefit.errors import WeightsNotFoundError

    try:
        weights.resolve("yunet"), weights.resolve("sface")
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc}); run `facefit models install`")
    command = [sys.executable, str(REPO / "examples" / "app_developer.py"), "--work", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout
    assert "gallery: 24 faces of 24 identities" in out
    assert "search photo1_0724.jpg: photo1_0724 1.000" in out
    assert "done    round 2/2 100%" in out and "run: ran all 2 rounds" in out
    assert "cancelled: run cancelled at sampler step" in out and "of round 1" in out
    assert "kept 1 round(s)" in out
    assert (tmp_path / "mugshots.gallery" / "manifest.json").is_file()
    assert "Loading weights" not in result.stderr  # nothing printed unasked
