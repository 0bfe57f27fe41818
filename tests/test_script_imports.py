"""Scripts and benchmarks outside the package still import names the SDK has.

They are not imported by the tests (most need ``../shared/data`` or minutes of CPU), so
a module moved or renamed in ``facefit`` would otherwise break them silently. Every
``from facefit... import name`` in ``benchmarks/``, ``scripts/`` and ``examples/`` is
resolved against the installed package without running the script.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("benchmarks", "scripts", "examples")


def _facefit_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, module, name)`` for each facefit import in ``path`` (name None: ``import m``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "facefit":
                found += [(node.lineno, node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name, None) for a in node.names if a.name.startswith("facefit.")
            ]
    return found


def _missing(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    where = path.relative_to(root)
    for line, module, name in _facefit_imports(path):
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            problems.append(f"{where}:{line}: {module}: {exc}")
            continue
        if name is not None and name != "*" and not hasattr(imported, name):
            try:  # a submodule imported by name
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                problems.append(f"{where}:{line}: {module} has no {name}")
    return problems


def _scripts() -> list[Path]:
    return sorted(
        p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "build" not in p.parts
    )


def test_every_script_imports_existing_facefit_names():
    problems = [problem for path in _scripts() for problem in _missing(path)]
    assert not problems, "scripts import what facefit no longer has:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from facefit.faces import FaceEmbedder\n", "facefit.faces"),
        ("from facefit.imaging.faces import NoSuchThing\n", "has no NoSuchThing"),
    ],
)
def test_the_check_sees_a_stale_import(tmp_path, source, expected):
    """The check itself can fail: a moved module and a missing name are both caught."""
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
    (problem,) = _missing(probe, root=tmp_path)
    assert expected in problem
