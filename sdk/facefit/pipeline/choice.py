"""The investigator in the loop: what a witness may say after seeing a round.

``Pipeline.run(evidence, on_round=callback)`` calls ``callback(trace)`` after every
round with that round's :class:`~facefit.types.RoundTrace` (candidates, their
scores, the round's ranking). The callback returns a :class:`Choice` (or None to
let the loop decide):

- ``pick``: the candidate (its index in the round) whose identity steers the next
  round, instead of the most evidence-consistent one;
- ``reject``: candidates that look wrong; they are marked ``rejected``, their
  gallery matches leave the round's ranking and they cannot steer;
- ``accept``: stop after this round (the witness is satisfied).

This is how evolutionary composite systems work: the witness recognises better
than they describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from facefit.errors import InputError

__all__ = ["Choice"]


@dataclass(frozen=True)
class Choice:
    """An investigator's answer to one round (all fields optional)."""

    pick: int | None = None
    reject: tuple[int, ...] = ()
    accept: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "reject", tuple(sorted({int(i) for i in self.reject})))
        if self.pick is not None and self.pick in self.reject:
            raise InputError(
                f"investigator choice: candidate {self.pick} is both picked and rejected"
            )

    def check(self, num_candidates: int) -> None:
        """Raise when an index is outside the round's candidates."""
        for index in ([self.pick] if self.pick is not None else []) + list(self.reject):
            if not 0 <= index < num_candidates:
                raise InputError(
                    f"investigator choice: no candidate {index} in this round "
                    f"(candidates are 0..{num_candidates - 1})"
                )

    def to_dict(self) -> dict:
        return {"pick": self.pick, "reject": list(self.reject), "accept": self.accept}
