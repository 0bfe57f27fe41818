"""The README's main job: bundled sketches ranked against the bundled gallery, via the CLI."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from facefit.cli import main
from facefit.errors import WeightsNotFoundError

DEMO = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"


@pytest.fixture(scope="module")
def demo_gallery(tmp_path_factory) -> Path:
    from facefit import weights

    try:
        weights.resolve("yunet"), weights.resolve("sface")
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc})")
    out = tmp_path_factory.mktemp("demo") / "gallery"
    result = CliRunner().invoke(
        main,
        [
            "gallery", "build", str(DEMO / "gallery"), "--identities", str(DEMO / "gallery.csv"),
            "--out", str(out), "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added 24 faces of 24 identities" in result.output
    return out


def test_gallery_csv_lists_every_bundled_face():
    with (DEMO / "gallery.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["image"] for r in rows) == sorted(p.name for p in (DEMO / "gallery").iterdir())


@pytest.mark.parametrize("probe", sorted(p.name for p in (DEMO / "probes").glob("*.png")))
def test_each_bundled_sketch_finds_its_identity_first(demo_gallery, probe):
    result = CliRunner().invoke(
        main,
        ["gallery", "search", "-g", str(demo_gallery), str(DEMO / "probes" / probe), "-k", "3"],
    )
    assert result.exit_code == 0, result.output
    first = result.output.strip().splitlines()[0]
    identity = Path(probe).stem.removeprefix("sketch_")  # probes/sketch_<pair id>.png
    assert re.match(rf"\s*1\s+\S+\s+{identity}\b", first), result.output


def test_readme_demo_runs_offline_with_the_shipped_model(tmp_path):
    """The README's first command ends in `facefit demo`: the loop on bundled evidence."""
    import json

    from facefit import weights
    from facefit.generator.loading import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip(f"no default generator in {DEFAULT_MODEL_DIR}")
    try:
        weights.resolve("yunet"), weights.resolve("sface"), weights.resolve("minilm-weights")
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc})")
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ranked identities (evidence and rounds fused; raw score, probability):" in (
        result.output
    )
    ranked = re.findall(r"^\s+(\d)\. (\S+)\s+(-?[0-9.]+)  p=([0-9.]+)$", result.output, re.M)
    assert [int(r[0]) for r in ranked] == [1, 2, 3, 4, 5]
    assert (out / "contact_sheet.png").is_file()
    saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert [m["identity"] for m in saved["matches"][:5]] == [r[1] for r in ranked]
    probabilities = [float(r[3]) for r in ranked]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0
    assert (out / "provenance.json").is_file()
