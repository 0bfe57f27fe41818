"""The generator's acceptance gates, measured on the development split.

    >>> from facefit.generator.gates import GateSettings, load_dev_data, run_gates
    >>> data = load_dev_data("../shared/data")
    >>> report = run_gates([("default", path, model)], data, GateSettings(), judge=judge)

Modules: :mod:`.devset` (the held-out faces), :mod:`.runner` (generation through the
pipeline's sampler and backend, many pieces of evidence per batch), :mod:`.measure`
(gates 1–4), :mod:`.report` (several models side by side, JSON and Markdown) and
:mod:`.grid` (the sample grid for the docs). ``scripts/generator_gates.py`` is the
command; docs/generator.md explains the gates.
"""

from __future__ import annotations

from facefit.generator.gates.devset import DevData, FaceSet, Fs2kDev, load_dev_data
from facefit.generator.gates.grid import gates_grid
from facefit.generator.gates.report import GATES, markdown, run_gates, write_report
from facefit.generator.gates.runner import GateRunner, GateSettings

__all__ = [
    "GATES",
    "DevData",
    "FaceSet",
    "Fs2kDev",
    "GateRunner",
    "GateSettings",
    "gates_grid",
    "load_dev_data",
    "markdown",
    "run_gates",
    "write_report",
]
