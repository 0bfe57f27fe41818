"""scripts/generator_look_grid.py on a tiny model the test makes: one labelled face row per
description sketch, identity seed, style and loop round; an existing PNG is kept."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.generator_helpers import single_thread  # noqa: F401  (autouse fixture)
from tests.pipeline_helpers import save_model, toy_config, toy_registry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generator_look_grid.py"


@pytest.fixture(scope="module")
def look():
    spec = importlib.util.spec_from_file_location("generator_look_grid", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _config(tmp_path: Path, rounds: int):
    from facefit.config import ComponentSpec

    config = toy_config(save_model(tmp_path / "model"), rounds=rounds, candidates=2, steps=2)
    components = {**config.components, "denoiser_backend": ComponentSpec("eager")}
    return type(config)(config.settings, components, config.conditioners, config.source)


def test_grid_has_a_row_per_face_row_and_refuses_to_overwrite(look, tmp_path):
    from PIL import Image

    rounds, scale, persons = 2, 2, ("photo1_0724", "photo2_0092")
    out = tmp_path / "look.png"
    config = _config(tmp_path, rounds)
    summary = look.look_grid(
        out,
        config=config,
        registry=toy_registry(),
        scale=scale,
        persons=persons,
        probes=2,
    )
    rows = look.expected_rows(2, rounds)
    assert rows == 2 + 3 + 5 + 3
    assert len(summary["rows"]) == rows
    assert sum(r.startswith("round ") for r in summary["rows"]) == rounds

    image = np.asarray(Image.open(out).convert("RGB"))
    side = 16 * scale  # the tiny model's faces
    height = look.TITLE_HEIGHT + 4 * look.HEADER_HEIGHT + rows * (side + look.GAP)
    assert image.shape[0] == height
    columns = max(1 + len(look.DESCRIPTIONS) + 1, len(persons), 1 + 2 + 1)
    assert image.shape[1] == look.LABEL_WIDTH + columns * side
    # every face row shows faces, not blank paper: its first cell is not all white
    top = look.TITLE_HEIGHT + look.HEADER_HEIGHT
    first = image[top : top + side, look.LABEL_WIDTH : look.LABEL_WIDTH + side]
    assert first.std() > 5

    before = out.read_bytes()
    with pytest.raises(FileExistsError):
        look.look_grid(out, config=config, registry=toy_registry())
    assert out.read_bytes() == before
    with pytest.raises(SystemExit, match="--force"):
        look.main(["--out", str(out)])
    assert out.read_bytes() == before


def test_faces_are_upscaled_by_nearest_neighbour(look):
    face = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    big = look._cell(face, 4, 3)
    assert big.shape == (12, 12, 3)
    assert (big[::3, ::3] == face).all() and (big[2::3, 2::3] == face).all()


def test_a_bad_model_folder_is_named_without_a_traceback(look, tmp_path):
    with pytest.raises(SystemExit) as stop:
        look.main(["--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g.png")])
    assert "nowhere: not a generator directory" in str(stop.value)
    assert not (tmp_path / "g.png").exists()
