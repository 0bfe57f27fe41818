"""Checks on the project itself: docs cover every hook, CI runs the README's test command."""

from __future__ import annotations

from pathlib import Path

from facefit import hookspecs

REPO = Path(__file__).resolve().parents[1]


def test_every_hook_is_documented_in_the_hook_reference():
    reference = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    missing = [hook for hook in hookspecs.HOOKS.values() if f"`{hook}`" not in reference]
    assert not missing, f"document these hooks in docs/writing-plugins.md: {missing}"


def test_every_hook_has_a_docstring():
    for hook in hookspecs.HOOKS.values():
        assert getattr(hookspecs, hook).__doc__, hook


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = ci[ci.index("# test command (README)") + 1]
    assert command in readme, "the README's test command and .ci/run have drifted apart"
