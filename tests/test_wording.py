"""What misleads a reader of the code stays out of it (issue 19, point 5).

Scaffolding that says a module "has not landed", issue numbers in messages and
docstrings (a user has no issue tracker), and the British ``normalise`` beside the
``normalize`` the code is written in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = [
    p
    for folder in ("sdk", "plugins", "runtime")
    for p in sorted((ROOT / folder).rglob("*.py"))
    if "build" not in p.relative_to(ROOT).parts
]

MISLEADING = {
    "scaffolding": re.compile(r"(has|have|had) not (yet )?landed", re.IGNORECASE),
    "an issue number": re.compile(r"\bissues? #?\d+|\(#\d+\)", re.IGNORECASE),
    "normalise (the code says normalize)": re.compile(r"normalis", re.IGNORECASE),
}


def _findings(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for what, pattern in MISLEADING.items():
            if pattern.search(line):
                found.append(f"{path.name}:{number}: {what}: {line.strip()}")
    return found


def test_the_code_is_found():
    assert len(CODE) > 100


@pytest.mark.parametrize("what", sorted(MISLEADING))
def test_the_check_sees_it(tmp_path, what):
    samples = {
        "scaffolding": "raise ImportError('the pipeline has not landed yet')",
        "an issue number": '"""Balanced sampling (issue 21)."""',
        "normalise (the code says normalize)": "x = normalise(x)",
    }
    path = tmp_path / "m.py"
    path.write_text("x = 1\n" + samples[what] + "\n", encoding="utf-8")
    assert _findings(path) == [f"m.py:2: {what}: {samples[what]}"]


def test_no_code_says_what_misleads():
    found = [f"{p.parent.relative_to(ROOT)}/{f}" for p in CODE for f in _findings(p)]
    assert not found, "\n".join(found)
