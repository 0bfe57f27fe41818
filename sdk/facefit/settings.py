"""One way to check a settings dataclass, and to read its defaults.

Every settings class (the pipeline's, augmentation's, the matcher's and the
generator's training, the gates', the server's) checks itself in ``__post_init__``
with :func:`check_fields` and a table of :class:`Rule`\\ s, so a bad value is
always refused the same way: one error naming every setting that is wrong, its
value and what it must be. The CLI takes its defaults from the dataclasses with
:func:`default_of` instead of writing them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "at_least", "between", "check_fields", "default_of", "more_than", "one_of"]


@dataclass(frozen=True)
class Rule:
    """A test a setting's value must pass, and what it says when it does not."""

    test: Callable[[Any], bool]
    says: str
    """Completes ``"<setting> …"``: ``"must be at least 1"``."""


def at_least(low: float) -> Rule:
    """The value is ``low`` or more."""
    return Rule(lambda v: v >= low, f"must be at least {low:g}")


def more_than(low: float) -> Rule:
    """The value is more than ``low``."""
    return Rule(lambda v: v > low, f"must be more than {low:g}")


def between(low: float, high: float) -> Rule:
    """The value lies in ``[low, high]``."""
    return Rule(lambda v: low <= v <= high, f"must be between {low:g} and {high:g}")


def one_of(choices: Collection[str]) -> Rule:
    """The value is one of ``choices``."""
    return Rule(lambda v: v in choices, f"must be one of {', '.join(map(str, choices))}")


def check_fields(
    settings: Any,
    rules: Mapping[str, Rule],
    *,
    error: type[Exception],
    where: str = "",
    flags: bool = False,
) -> None:
    """Raise ``error`` naming every field of ``settings`` that breaks its rule.

    ``where`` starts the message (``"[pipeline] "``, ``"serve: "``); ``flags`` names
    fields as the command-line options that set them (``--per-identity``).
    """
    problems = []
    for name, rule in rules.items():
        value = getattr(settings, name)
        if not rule.test(value):
            label = f"--{name.replace('_', '-')}" if flags else name
            problems.append(f"{label} {rule.says}, got {value!r}")
    if problems:
        raise error(where + "; ".join(problems))


def default_of(settings_class: type, name: str) -> Any:
    """The default value of field ``name`` of a settings dataclass (for a CLI option)."""
    for f in dataclasses.fields(settings_class):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{settings_class.__name__}.{name} has no default")
    raise ValueError(f"{settings_class.__name__} has no field {name!r}")
