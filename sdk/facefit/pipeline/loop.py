"""The IdentiFace loop: evidence in, candidate faces and ranked gallery identities out.

    >>> from facefit.pipeline import Pipeline
    >>> pipeline = Pipeline.from_config("pipeline.toml", gallery="mugshots.gallery")
    >>> result = pipeline.run(Evidence(sketch=drawing, text="a man with a beard"))
    >>> result.top(5)

Each round samples K candidates from the evidence; every candidate is scored for
agreement with the evidence (:mod:`facefit.pipeline.scoring`) and searched in the
gallery. The next round's reference identity is the best evidence-consistent
candidate's identity embedding blended with the embedding of that candidate's
closest gallery face (``gallery_reference_weight``), or the investigator's pick.
The loop stops when the top identity has been the same for ``stop_when_stable``
rounds, when the investigator accepts, or after ``rounds``. Identities are ranked by
fusing their scores over rounds (:mod:`facefit.pipeline.fusion`). Nothing here sees
a ground truth: only the evidence, the candidates and the gallery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facefit.config import PipelineConfig, load_config
from facefit.errors import InputError
from facefit.pipeline.choice import Choice
from facefit.pipeline.components import Components, build_components
from facefit.pipeline.evidence import PreparedEvidence, prepare_evidence
from facefit.pipeline.fusion import RoundScores, fuse_rounds, round_scores, top_identity_streak
from facefit.pipeline.scoring import evidence_scores, text_scorer
from facefit.types import Candidate, Condition, Evidence, Match, Result, RoundTrace

__all__ = ["OnRound", "Pipeline", "round_seed"]

log = logging.getLogger(__name__)

OnRound = Callable[[RoundTrace], "Choice | None"]
SEARCH_DEPTH = 50
"""Identities each candidate retrieves (at least ``top_k``); see :mod:`.fusion`."""


def round_seed(seed: int, round_index: int) -> int:
    """The sampler seed of one round, derived from the run's seed (stable across versions)."""
    return int(np.random.SeedSequence([int(seed), int(round_index)]).generate_state(1)[0])


def _resize(crops: np.ndarray, size: int) -> np.ndarray:
    """Aligned crops at another size: the template scales with the side, so they stay aligned."""
    import cv2

    if crops.shape[1] == size:
        return crops
    interpolation = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_CUBIC
    return np.stack(
        [
            cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=interpolation)
            for c in crops
        ]
    )


def _normalised(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


class Pipeline:
    """The iterative loop with its parts resolved once (see the module doc).

    ``config`` is a :class:`~facefit.config.PipelineConfig` (default: every part's
    default), ``registry`` the plugins (default: the installed ones), ``gallery`` a
    :class:`~facefit.gallery.GalleryIndex` or the path of a saved one (None:
    generation only, nothing ranked). A gallery built with another face encoder
    than the config's ``[face_encoder]`` is refused.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        registry: Any = None,
        gallery: Any = None,
    ) -> None:
        if registry is None:
            from facefit.registry import Registry

            registry = Registry.load()
        self.config = config or PipelineConfig()
        self.registry = registry
        self.parts: Components = build_components(self.config, registry, gallery)

    @classmethod
    def from_config(
        cls, path: str | Path, *, registry: Any = None, gallery: Any = None
    ) -> Pipeline:
        """A pipeline from a TOML config file (:func:`facefit.config.load_config`)."""
        return cls(load_config(path), registry=registry, gallery=gallery)

    @property
    def settings(self) -> Any:
        return self.config.settings

    @property
    def gallery(self) -> Any:
        return self.parts.gallery

    # -- one round's pieces -------------------------------------------------------------

    def _embed(self, encoder: Any, images: np.ndarray) -> np.ndarray:
        return encoder.embed(_resize(images, encoder.input_size))

    def _search(self, vectors: np.ndarray) -> list[list[Any]]:
        gallery = self.parts.gallery
        if gallery is None:
            return [[] for _ in vectors]
        k = min(gallery.num_identities, max(self.settings.top_k, SEARCH_DEPTH))
        return gallery.search_many(vectors, k)

    def _gallery_vector(self, hit: Any) -> np.ndarray | None:
        """The embedding of a candidate's closest gallery face, in the identity encoder's space."""
        gallery, encoder = self.parts.gallery, self.parts.identity_encoder
        if gallery is None or gallery.encoder.name != encoder.name or gallery.dim != encoder.dim:
            return None
        return gallery.retriever.get_vectors(np.array([hit.faces[0].label]))[0]

    def _steer(
        self,
        candidates: list[Candidate],
        vectors: np.ndarray,
        hits: list[list[Any]],
        choice: Choice | None,
    ) -> tuple[np.ndarray | None, str, list[str]]:
        """The next round's reference vector, where it came from, and notes."""
        notes: list[str] = []
        usable = [c for c in candidates if not c.rejected]
        if not usable:
            return (
                None,
                "",
                ["every candidate was rejected: the next round keeps this round's reference"],
            )
        if choice is not None and choice.pick is not None:
            best = candidates[choice.pick]
            how = f"investigator pick {best.round}/{best.index}"
        else:

            def key(c: Candidate) -> tuple[float, float, int]:
                top = c.matches[0].score if c.matches else 0.0
                return (c.consistency, top, -c.index)

            best = max(usable, key=key)
            how = f"candidate {best.round}/{best.index} (most evidence-consistent)"
        vector = vectors[best.index]
        weight = self.settings.gallery_reference_weight
        if weight > 0 and hits[best.index]:
            top = hits[best.index][0]
            gallery_vector = self._gallery_vector(top)
            if gallery_vector is None:
                notes.append(
                    "gallery face not blended into the reference: the gallery's encoder "
                    f"({self.parts.gallery.encoder}) is not the generator's identity encoder"
                )
            else:
                vector = (1.0 - weight) * vector + weight * gallery_vector
                how += f" + gallery face of {top.identity} (weight {weight:g})"
        return _normalised(vector), how, notes

    # -- the loop -----------------------------------------------------------------------

    def prepare(self, evidence: Evidence) -> PreparedEvidence:
        """The evidence aligned to the generator's template (see :mod:`.evidence`)."""
        return prepare_evidence(
            evidence, detector=self.parts.detector, image_size=self.parts.model.image_size
        )

    def run(
        self, evidence: Evidence, *, on_round: OnRound | None = None, rounds: int | None = None
    ) -> Result:
        """Run the loop on one probe's evidence; ``rounds`` overrides the config's."""
        from facefit.generator.conditions import domain_condition

        start = time.perf_counter()
        parts, settings = self.parts, self.settings
        max_rounds = settings.rounds if rounds is None else int(rounds)
        if max_rounds < 1:
            raise InputError(f"rounds must be at least 1, got {max_rounds}")
        prepared = self.prepare(evidence)
        base = {m: c(prepared.evidence) for m, c in parts.conditioners.items()}
        evidence_reference = None
        if prepared.evidence.reference is not None:
            evidence_reference = base["reference"].tokens[0].numpy().astype(np.float32)
        first_notes = list(prepared.notes)
        text = None
        if prepared.evidence.text is not None:
            text, note = text_scorer(prepared.evidence.text, parts.identity_encoder)
            first_notes.append(note)
        if parts.gallery is None:
            first_notes.append("no gallery: candidates are generated and scored, nothing is ranked")

        steering: np.ndarray | None = None
        how = "evidence reference face" if evidence_reference is not None else None
        traces: list[RoundTrace] = []
        per_round: list[RoundScores | None] = []
        tops: list[str | None] = []
        seeds: list[int] = []
        stopped = f"ran all {max_rounds} rounds"
        for r in range(max_rounds):
            round_start = time.perf_counter()
            notes = first_notes if r == 0 else []
            conditions = [c for m, c in base.items() if m != "reference" or steering is None]
            if steering is not None:
                import torch

                conditions.append(Condition("reference", tokens=torch.from_numpy(steering[None])))
            seed = round_seed(settings.seed, r)
            seeds.append(seed)
            images = parts.sampler.sample(
                parts.backend,
                [*conditions, domain_condition("photo")],
                num_images=settings.candidates,
                steps=settings.steps,
                guidance=settings.guidance,
                seed=seed,
            )
            identity = self._embed(parts.identity_encoder, images)
            retrieval = (
                identity
                if parts.face_encoder is parts.identity_encoder
                else self._embed(parts.face_encoder, images)
            )
            scores = evidence_scores(
                images,
                prepared,
                sketch_extractor=parts.sketch_extractor,
                reference_vector=evidence_reference,
                identity_vectors=identity,
                text=text,
            )
            hits = self._search(retrieval)
            matches = [tuple(h.to_match() for h in row) for row in hits]
            candidates = [
                Candidate(images[i], r, i, seed, scores[i], matches[i][: settings.top_k])
                for i in range(len(images))
            ]
            stats = round_scores(matches)
            trace = RoundTrace(
                r,
                tuple(candidates),
                stats.ranked(settings.top_k) if stats else (),
                how,
                time.perf_counter() - round_start,
                tuple(notes),
            )
            choice = on_round(trace) if on_round is not None else None
            if choice is not None:
                choice.check(len(candidates))
                if choice.reject:
                    candidates = [
                        Candidate(
                            c.image,
                            c.round,
                            c.index,
                            c.seed,
                            c.evidence_scores,
                            c.matches,
                            c.index in choice.reject,
                        )
                        for c in candidates
                    ]
                    stats = round_scores(
                        [m for i, m in enumerate(matches) if i not in choice.reject]
                    )
                notes = [*notes, f"investigator: {choice.to_dict()}"]
            per_round.append(stats)
            top = stats.ranked(1)[0].identity if stats else None
            tops.append(top)
            next_vector, next_how, steer_notes = self._steer(candidates, identity, hits, choice)
            traces.append(
                RoundTrace(
                    r,
                    tuple(candidates),
                    stats.ranked(settings.top_k) if stats else (),
                    how,
                    time.perf_counter() - round_start,
                    tuple(notes + steer_notes),
                )
            )
            if next_vector is not None:
                steering, how = next_vector, next_how
            if choice is not None and choice.accept:
                stopped = f"investigator accepted round {r}"
                break
            streak = top_identity_streak(tops)
            if settings.stop_when_stable and streak >= settings.stop_when_stable:
                stopped = f"top identity {top!r} stable for {streak} rounds"
                break
        ranked = fuse_rounds(per_round, settings.top_k)
        info = {
            "stopped": stopped,
            "rounds_run": len(traces),
            "round_seeds": seeds,
            "seconds": time.perf_counter() - start,
        }
        return Result(ranked, tuple(traces), info)


def matches_to_dicts(matches: tuple[Match, ...]) -> list[dict[str, Any]]:
    return [
        {"rank": m.rank, "identity": m.identity, "score": m.score, "image": m.image_id}
        for m in matches
    ]
