"""``facefit runtime info|build|bench|cache`` on the CPU with the tiny reference UNet."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from facefit.cli import main

HAS_TRT = any(importlib.util.find_spec(m) for m in ("tensorrt", "tensorrt_rtx"))


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFIT_ENGINE_CACHE", str(tmp_path / "engines"))

    def invoke(*args: str):
        return CliRunner().invoke(main, ["runtime", *args], catch_exceptions=False)

    return invoke


def test_info_lists_every_backend_and_why_not(run):
    result = run("info", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {(r["backend"], r["device"]): r for r in data["backends"]}
    assert rows[("eager", "cpu")]["ok"] and rows[("onnxruntime", "cpu")]["ok"]
    assert {"compiled", "tensorrt"} <= {b for b, _ in rows}
    if not HAS_TRT:
        assert not rows[("tensorrt", "cuda")]["ok"]
        assert "TensorRT is not installed" in rows[("tensorrt", "cuda")]["detail"]
    table = run("info").output
    assert "onnxruntime" in table and "engine cache:" in table


def test_build_exports_and_caches_then_cache_lists_and_clears(run):
    result = run("build", "--model", "tiny", "--backend", "onnxruntime", "--batch", "1,2,4")
    assert result.exit_code == 0, result.output
    for stage in ("model", "onnx export", "sessions", "first call, batch 4"):
        assert stage in result.output
    assert "b1-2-4_x4x16x16_t8x32_o4" in result.output
    listing = run("cache").output
    assert "1 entries" in listing and "onnx" in listing and "fp32" in listing
    assert "removed 1 entries" in run("cache", "--clear").output
    assert "0 entries" in run("cache").output


def test_build_needs_three_batch_numbers(run):
    result = run("build", "--model", "tiny", "--batch", "1,2")
    assert result.exit_code == 2 and "min,opt,max" in result.output


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_tensorrt_build_without_tensorrt_fails_with_the_fallback(run):
    result = CliRunner().invoke(
        main, ["runtime", "build", "--model", "tiny", "--backend", "tensorrt", "--device", "cpu"]
    )
    assert result.exit_code == 2
    assert "TensorRT is not installed" in result.output and "'onnxruntime'" in result.output
    assert "Traceback" not in result.output


def test_bench_times_backends_side_by_side(run):
    result = run(
        "bench", "--model", "tiny", "--backend", "eager", "--backend", "onnxruntime",
        "--batch", "1,2", "--rounds", "2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {(r["backend"], r["batch"]) for r in data["results"]} == {
        (b, n) for b in ("eager", "onnxruntime") for n in (1, 2)
    }
    for row in data["results"]:
        assert row["median_ms"] > 0 and row["it_per_s"] > 0 and row["speedup_vs_eager"] > 0
