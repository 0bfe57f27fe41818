"""``facefit eval`` end to end with click's CliRunner on a tiny generated FS2K folder.

The code detector and encoder (``tests/plugins/eval_codes.py``) are installed the
way a vendor's plugin is — an entry point in a (fake) distribution on ``sys.path``
— so the command finds them through the ordinary registry.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from facefit.cli import main
from facefit.plugins import ENV_LOAD_PLUGINS
from facefit.testing import fake_distribution
from tests.test_eval_harness import N, make_fs2k


@pytest.fixture
def codes_installed(tmp_path, monkeypatch):
    site = tmp_path / "site"
    fake_distribution(site, "facefit-eval-codes", "0.1", {"eval-codes": "tests.plugins.eval_codes"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "eval-codes")


def _eval(*args):
    # only the code plugins: the generating modes then have no generator and say so
    # (facefit's built-ins load whatever FACEFIT_LOAD_PLUGINS says)
    from facefit import Registry

    registry = Registry.load(allow={"eval-codes"})
    return CliRunner().invoke(
        main, ["eval", *args, "--no-progress"], obj={"registry": registry}, catch_exceptions=False
    )


def test_eval_fs2k_folder(tmp_path, codes_installed):
    bench = make_fs2k(tmp_path / "fs2k")
    out = tmp_path / "out"
    result = _eval(
        str(bench), "--modes", "direct,one-shot", "--probe-sets", "sketch,lq16,text",
        "--detector", "code", "--encoder", "code", "--out", str(out), "--date", "2026-11-22",
        "--machine", "test box",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| direct | sketch | sketch | 12 | 0 | 83.3% |" in result.output
    assert "`one-shot`:" in result.output  # reported as unavailable, with its reason
    data = json.loads((out / "results.json").read_text())
    assert data["machine"] == "test box" and data["command"].startswith("facefit eval ")
    assert data["modes"]["one-shot"]["available"] is False
    by_set = {(r["mode"], r["probe_set"]): r for r in data["results"]}
    assert by_set[("direct", "lq16")]["rank1"] == 1.0
    assert by_set[("direct", "lq16")]["lq_made_at"] == 16
    assert by_set[("direct", "text")]["status"] == "unsupported"
    assert by_set[("one-shot", "sketch")]["status"] == "unavailable"
    assert (out / "cmc.png").stat().st_size > 0
    assert (out / "contact-fs2k-direct.png").stat().st_size > 0
    assert len((out / "probes.jsonl").read_text().splitlines()) == 2 * N


def test_eval_manifest_file_with_limit(tmp_path, codes_installed):
    from facefit.evaluation import read_fs2k

    bench = read_fs2k(make_fs2k(tmp_path / "fs2k"), probe_sets=["sketch"])
    path = bench.save(tmp_path / "bench" / "tiny.json")
    out = tmp_path / "out"
    result = _eval(str(path), "--limit", "3", "--detector", "code", "--encoder", "code",
                   "--out", str(out), "--contact-sheet", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["results"][0]["probes"] == 3 and data["results"][0]["rank1"] == 1.0
    assert not list(out.glob("contact-*"))
    before = (out / "results.json").read_bytes()
    again = [str(path), "--limit", "2", "--detector", "code", "--encoder", "code",
             "--out", str(out)]  # fmt: skip
    refused = _eval(*again)
    assert refused.exit_code == 2 and "already holds files" in refused.output
    assert "--force" in refused.output and (out / "results.json").read_bytes() == before
    forced = _eval(*again, "--force", "--contact-sheet", "0")
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "results.json").read_text())["results"][0]["probes"] == 2


def test_bad_manifest_fails_before_any_work(tmp_path, codes_installed):
    bench = make_fs2k(tmp_path / "fs2k")
    (bench / "sketch" / "photo1_0003.png").unlink()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["eval", str(bench), "--detector", "code", "--encoder", "code", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "probe 'photo1_0003/sketch': sketch file not found" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "direct,psychic"], "unknown mode(s) psychic; known: direct, one-shot"),
        (["--probe-sets", "sketch+photo"], "cannot be made from a FS2K folder"),
        (["--encoder", "nope"], "unknown face encoder 'nope'"),
    ],
)
def test_clear_errors(tmp_path, codes_installed, args, message):
    bench = make_fs2k(tmp_path / "fs2k")
    result = CliRunner().invoke(
        main, ["eval", str(bench), "--detector", "code", "--encoder", "code",
               "--out", str(tmp_path / "out"), *args],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_split_needs_a_data_folder(tmp_path, monkeypatch, codes_installed):
    monkeypatch.delenv("FACEFIT_SHARED_DATA", raising=False)
    result = CliRunner().invoke(main, ["eval", "--split", "dev", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "give the data folder, or set FACEFIT_SHARED_DATA" in result.output
