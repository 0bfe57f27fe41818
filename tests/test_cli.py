"""The command line: version, plugins listing, config check, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

import facefit
from facefit.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and facefit.__version__ in result.output


def test_plugins_lists_builtins_with_package_and_version():
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    by_name = {row["plugin"]: row for row in listing["plugins"]}
    assert by_name, "no plugin loaded"
    for row in by_name.values():
        assert row["package"] == "facefit" and row["version"] == facefit.__version__
        assert row["provides"], f"plugin {row['plugin']} provides nothing"
    assert listing["failed"] == [], listing["failed"]


def test_config_check_reports_bad_config_without_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[pipeline]\nround = 3\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "error:" in result.output and "unknown key [pipeline] 'round'" in result.output
    assert "Traceback" not in result.output


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "facefit", "--version"], capture_output=True, text=True, check=True
    )
    assert "facefit" in out.stdout


def test_cli_defaults_are_the_settings_dataclasses_own():
    """Each option that sets a settings field defaults to what that field does."""
    import dataclasses

    from facefit.augment.plan import AugmentSettings
    from facefit.config import Settings
    from facefit.matcher.train import TrainSettings

    commands = {"demo": Settings, "augment": AugmentSettings, "train-matcher": TrainSettings}
    for name, settings in commands.items():
        fields = {f.name for f in dataclasses.fields(settings)}
        defaults = settings()
        checked = []
        for param in main.commands[name].params:
            # an option without a default holds None or click's unset sentinel
            plain = isinstance(param.default, (bool, int, float, str))
            if param.name not in fields or not plain or param.multiple:
                continue
            if (name, param.name) == ("demo", "steps"):
                continue  # the demo samples fewer steps on purpose (DEMO_STEPS)
            from_cli = getattr(settings(**{param.name: param.default}), param.name)
            assert from_cli == getattr(defaults, param.name), f"{name} --{param.name}"
            checked.append(param.name)
        assert len(checked) >= 3, (name, checked)
