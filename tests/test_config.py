"""Pipeline config files: parsing, defaults, and errors that name the file and key."""

from __future__ import annotations

import pytest

from facefit import ConfigError, Registry
from facefit.config import load_config, parse_config, validate
from tests.plugins import good


def write(tmp_path, text):
    path = tmp_path / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_the_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.settings.rounds == 3 and config.components["face_encoder"].plugin == "sface"
    assert set(config.conditioners) == {"sketch", "lq", "text", "reference"}


def test_settings_and_plugin_options_are_read(tmp_path):
    config = load_config(
        write(
            tmp_path,
            '[pipeline]\nrounds = 5\nguidance = 2\n\n[retriever]\nplugin = "hnswlib"\nef = 128\n'
            '\n[conditioners.text]\nplugin = "my-text"\nnum_tokens = 16\n',
        )
    )
    assert config.settings.rounds == 5 and config.settings.guidance == 2
    assert config.components["retriever"].plugin == "hnswlib"
    assert dict(config.components["retriever"].options) == {"ef": 128}
    assert dict(config.conditioners["text"].options) == {"num_tokens": 16}
    assert config.components["sampler"].plugin == "ddpm"  # untouched default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pipeline]\nround = 3\n", r"unknown key \[pipeline\] 'round'"),
        ('[pipeline]\nrounds = "three"\n', r"\[pipeline\] rounds must be of type int"),
        ("[pipeline]\nrounds = 0\n", r"rounds must be at least 1"),
        ('[sampeler]\nplugin = "ddim"\n', r"unknown table \[sampeler\]"),
        ("[sampler]\nsteps = 3\n", r'\[sampler\] needs plugin = "NAME"'),
        ('[conditioners.smell]\nplugin = "nose"\n', r"unknown modality \[conditioners.smell\]"),
        ("[pipeline\nrounds = 3\n", r"not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_validate_checks_plugin_names_and_options_against_the_registry():
    registry = Registry.load(entry_points=False, plugins=[("good", good)])
    base = {
        "face_detector": {"plugin": "auto"},
        "face_encoder": {"plugin": "auto"},
        "text_encoder": {"plugin": "auto"},
        "sketch_extractor": {"plugin": "auto"},
        "sampler": {"plugin": "auto"},
        "denoiser_backend": {"plugin": "auto"},
        "conditioners": {m: {"plugin": "auto"} for m in ("sketch", "lq", "text", "reference")},
    }
    ok = parse_config(
        {
            **base,
            "face_encoder": {"plugin": "mean-colour"},
            "retriever": {"plugin": "needs-path", "path": "g"},
        },
        "ok.toml",
    )
    validate(ok, registry)
    missing = parse_config({**base, "retriever": {"plugin": "needs-path"}}, "missing.toml")
    with pytest.raises(ConfigError, match=r"missing.toml: \[retriever\] .*needs option\(s\) path"):
        validate(missing, registry)
    unknown = parse_config({**base, "face_encoder": {"plugin": "sfase"}}, "unknown.toml")
    with pytest.raises(
        ConfigError, match=r"unknown.toml: \[face_encoder\] unknown face encoder 'sfase'"
    ):
        validate(unknown, registry)


def test_replace_settings_validates():
    config = parse_config({})
    assert config.replace_settings(rounds=7).settings.rounds == 7
    with pytest.raises(ConfigError, match="rounds must be at least 1"):
        config.replace_settings(rounds=0)


def test_the_pipeline_toml_example_in_the_docs_loads_and_validates(tmp_path):
    """docs/pipeline.md shows a whole pipeline.toml; it must be a config facefit accepts."""
    import re
    from pathlib import Path

    from click.testing import CliRunner

    from facefit.cli import main

    doc = (Path(__file__).resolve().parents[1] / "docs" / "pipeline.md").read_text()
    (example,) = re.findall(r"^```toml\n(.*?)^```", doc, re.S | re.M)
    path = tmp_path / "pipeline.toml"
    path.write_text(example)
    config = load_config(path)
    assert (config.settings.rounds, config.settings.candidates, config.settings.steps) == (2, 2, 4)
    assert config.components["sampler"].plugin == "ddim"
    assert config.conditioners["text"].plugin == "text"
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "sampler: ddim" in result.output
