"""The SDK's layers: no module imports a module of a higher layer.

Lowest first. A module belongs to the layer of the longest name below that matches
it (``facefit.generator.gates`` is a workflow, the rest of ``facefit.generator`` a
component). Imports inside functions count (they are still dependencies); imports
under ``if TYPE_CHECKING:`` do not (they are annotations only). Within a layer any
import is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

SDK = Path(__file__).resolve().parents[1] / "sdk" / "facefit"

LAYERS: list[tuple[str, list[str]]] = [
    # what every layer may use: errors, files, devices, settings checks, vector checks
    ("base", ["errors", "version", "files", "devices", "lazy", "settings", "vectors"]),
    # image and face primitives, model files, data-set rules, rank arithmetic
    (
        "primitives",
        ["imaging", "weights", "datasets", "text_agreement", "evaluation.metrics", "evaluation.groups"],
    ),
    # the plugin contract: values, interfaces, kinds, hooks, the registry, configs
    ("contract", ["types", "interfaces", "kinds", "hookspecs", "plugins", "registry", "config"]),
    # the parts built on the contract: galleries, the generator, the matcher, judges
    ("components", ["gallery", "generator", "matcher", "attribute_judge"]),
    # what runs them end to end
    ("workflows", ["pipeline", "fusion", "augment", "evaluation", "generator.gates"]),
    # what people and vendors call: the CLI, the server, the conformance kit, the package
    ("apps", ["cli", "serve", "testing", "__main__", ""]),
]  # fmt: skip


def _layer_of(module: str) -> int:
    """The layer of ``facefit.x.y`` (by its longest listed prefix), or a clear failure."""
    name = module.removeprefix("facefit").removeprefix(".")
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix != "" and name.startswith(prefix + "."))
            if matches and len(prefix) > best:
                best, found = len(prefix), index
    assert found is not None, f"put module facefit.{name} in a layer of tests/test_layers.py"
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SDK.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imports(path: Path, modules: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` of every facefit module ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "facefit":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((node.lineno, full if full in modules else node.module))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "facefit"
            ]
    return found


def test_no_module_imports_a_higher_layer():
    files = sorted(SDK.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    upward = []
    for path in files:
        module = _module_name(path)
        own = _layer_of(module)
        for line, target in _imports(path, modules):
            if _layer_of(target) > own:
                upward.append(
                    f"{path.relative_to(SDK.parent)}:{line}: {module} ({LAYERS[own][0]}) imports "
                    f"{target} ({LAYERS[_layer_of(target)][0]})"
                )
    assert not upward, "imports across layers, upward:\n" + "\n".join(upward)


def test_every_module_has_a_layer():
    for path in SDK.rglob("*.py"):
        _layer_of(_module_name(path))


def test_the_check_sees_an_upward_import(tmp_path):
    """The test itself can fail: a primitive that imports the registry is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from facefit.registry import Registry\n", encoding="utf-8")
    (target,) = [t for _, t in _imports(probe, {"facefit.registry"})]
    assert _layer_of(target) > _layer_of("facefit.imaging.faces")
