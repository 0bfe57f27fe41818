"""The rankings a run reports: direct evidence and generated candidates, fused and calibrated.

:class:`Ranker` holds the run's direct scores (:mod:`.direct`, computed once) and
the fusion weights; after every round it fuses them with the generated candidates'
scores so far (:func:`.fusion.round_means`) by :meth:`facefit.fusion.FusionModel.fuse`.
Each ranked :class:`~facefit.types.Match` carries the raw fused score, the calibrated
probability and the per-source scores; :meth:`Ranker.rank` also says which profile
was used and whether there is *no likely match* (every probability below the
threshold). With text, its record's ``texts`` gives each description's own
agreement with the ranked identities (the ``"text"`` source is their mean).

Identities are every gallery identity that any source scored; an identity the
candidates never retrieved takes the rounds' floor as its generated score (see
:mod:`.fusion`). Ties break by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from facefit.pipeline.direct import DirectScores
from facefit.pipeline.fusion import RoundScores, round_means
from facefit.types import Match

__all__ = ["Ranker"]


@dataclass(frozen=True, eq=False)
class Ranker:
    """Fuses one run's direct scores with its rounds' scores (see the module doc)."""

    direct: DirectScores
    model: Any
    """A :class:`~facefit.fusion.FusionModel`."""
    generated_encoder: str
    """:func:`~facefit.fusion.model.encoder_id` of the encoder that retrieves candidates."""
    prior: float
    threshold: float

    @cached_property
    def _direct_arrays(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """The direct scores as arrays over the sorted identities (made once per run)."""
        names = sorted(set().union(*(s.keys() for s in self.direct.scores.values())))
        arrays = {
            source: np.array([values.get(n, -np.inf) for n in names])
            for source, values in self.direct.scores.items()
        }
        return names, arrays

    def rank(
        self, rounds: Sequence[RoundScores | None], k: int
    ) -> tuple[tuple[Match, ...], dict[str, Any]]:
        """The top ``k`` fused identities and a record of the fusion (for provenance)."""
        means, faces, floor = round_means(rounds)
        names, sources = self._direct_arrays
        if not set(means) <= set(names):  # an identity only the candidates found
            names = sorted(set(means).union(names))
            sources = {
                source: np.array([values.get(n, -np.inf) for n in names])
                for source, values in self.direct.scores.items()
            }
        if not names:
            return (), {}
        sources = dict(sources)
        encoders = dict(self.direct.encoders)
        if means:
            sources["generated"] = np.array([means.get(n, floor) for n in names])
            encoders["generated"] = self.generated_encoder
        fused = self.model.fuse(sources, encoders, prior=self.prior)
        order = np.argsort(-fused.raw, kind="stable")[:k]  # names are sorted: ties by name
        matches = tuple(
            Match(
                names[j],
                round(float(fused.raw[j]), 6),
                rank,
                faces.get(names[j]) or self.direct.faces.get(names[j]),
                None if fused.probability is None else round(float(fused.probability[j]), 6),
                {s: round(float(v[j]), 6) for s, v in sources.items()},
            )
            for rank, j in enumerate(order, start=1)
        )
        top = None if fused.probability is None else float(fused.probability.max())
        info = {
            "profile": fused.profile,
            "encoders": encoders,
            "match_prior": self.prior,
            "no_match_threshold": self.threshold,
            "top_probability": None if top is None else round(top, 6),
            "no_likely_match": top is not None and top < self.threshold,
            "notes": list(self.direct.notes + fused.notes),
        }
        if self.direct.texts:
            info["texts"] = [
                {
                    "description": part["description"],
                    "scored": part["scored"],
                    **({"why": part["why"]} if not part["scored"] else {}),
                    "agreement": {
                        m.identity: part["scores"].get(m.identity)
                        for m in matches
                        if part["scores"] is not None
                    },
                }
                for part in self.direct.texts
            ]
        return matches, info
