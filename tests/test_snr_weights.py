"""benchmarks/snr_weights.py: the figures behind "Min-SNR-5 starves the high-noise steps"."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "snr_weights.py"


def _module():
    spec = importlib.util.spec_from_file_location("snr_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_v_weights_are_about_the_snr_at_high_noise_and_capped_below():
    rows = {r["t"]: r for r in _module().snr_table(5.0, "v_prediction", (50, 500, 950))}
    assert rows[950]["snr"] == pytest.approx(0.00585, rel=0.01)
    assert rows[950]["weight"] == pytest.approx(rows[950]["snr"] / (rows[950]["snr"] + 1))
    assert rows[500]["weight"] == pytest.approx(0.492, rel=0.01)
    assert rows[50]["weight"] == pytest.approx(5.0 / (rows[50]["snr"] + 1))  # capped at γ
    eps = {r["t"]: r for r in _module().snr_table(5.0, "epsilon", (950,))}
    assert eps[950]["weight"] == pytest.approx(1.0)  # min(SNR, 5) / SNR below the cap


def test_prints_a_markdown_table(capsys):
    _module().main(["--gamma", "5"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| t | SNR | Min-SNR-5 weight") and len(out) == 2 + 6
