"""The evaluation harness behind ``facefit eval``.

Benchmarks are manifests (:mod:`.manifest`), read from JSON or made from FS2K- and
CelebA-format folders (:mod:`.readers`); modes (:mod:`.modes`) turn each probe into
identity scores; :func:`evaluate` runs them and :mod:`.report` writes the results::

    from facefit.evaluation import evaluate, read_benchmark, write_report

    bench = read_benchmark("path/to/fs2k-folder", ["sketch", "lq16"])
    run = evaluate([bench], ["direct"])
    write_report(run, "eval-out")
"""

from facefit.evaluation.manifest import GalleryImage, Manifest, ManifestError, Probe, load_manifest
from facefit.evaluation.metrics import IdentificationMetrics, identification_metrics
from facefit.evaluation.modes import MODES, EvalContext, EvalMode, ModeUnavailable, create_modes
from facefit.evaluation.readers import dev_benchmarks, read_benchmark, read_celeba, read_fs2k
from facefit.evaluation.report import write_report
from facefit.evaluation.runner import EvalRun, ModeResult, evaluate

__all__ = [
    "MODES",
    "EvalContext",
    "EvalMode",
    "EvalRun",
    "GalleryImage",
    "IdentificationMetrics",
    "Manifest",
    "ManifestError",
    "ModeResult",
    "ModeUnavailable",
    "Probe",
    "create_modes",
    "dev_benchmarks",
    "evaluate",
    "identification_metrics",
    "load_manifest",
    "read_benchmark",
    "read_celeba",
    "read_fs2k",
    "write_report",
]
