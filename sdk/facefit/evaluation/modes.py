"""Evaluation modes: how a probe becomes a ranked list of gallery identities.

=============  ===============================================================
``direct``     embed the probe's own images with the identity encoder
``one-shot``   one round of generation from the evidence, then retrieval
``iterative``  the full IdentiFace loop (several rounds)
``matcher``    like ``direct``, with a trained sketch matcher as the encoder
``fused``      every source of evidence matched directly (the sketch matcher on
               sketches, SFace on frames, text by attribute agreement), fused
               and calibrated (:mod:`facefit.evaluation.fused`)
=============  ===============================================================

A mode that cannot run here (no sketch matcher given, no generator installed) says
so through :meth:`EvalMode.unavailable` and is reported with that reason; it is never
approximated by something else.

Generating modes call a *benchmark generator*: ``generate(evidence, rounds) →``
:class:`~facefit.types.Result`, searching the benchmark's gallery and never seeing
the ground truth. :func:`pipeline_generator` builds it with
:func:`facefit.pipeline.evaluation_generator`; the :class:`EvalContext` gives it the benchmark's gallery as a
:class:`~facefit.gallery.GalleryIndex` (:meth:`EvalContext.gallery_index`), the
registry and the pipeline config. Tests and applications may pass their own factory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from facefit.errors import FacefitError, InputError
from facefit.evaluation.enrolment import EnrolledGallery, enrol
from facefit.evaluation.evidence import LoadedProbe, source_key
from facefit.evaluation.grading import DEFAULT_GRADERS, IdentityGrader, make_grader
from facefit.evaluation.manifest import Manifest, Probe
from facefit.imaging.degrade import normalize_lq
from facefit.imaging.faces import FaceEmbedder
from facefit.imaging.images import load_image
from facefit.types import Evidence, Result

if TYPE_CHECKING:
    from facefit.gallery import GalleryIndex

__all__ = [
    "MODES",
    "DirectMode",
    "EvalContext",
    "EvalMode",
    "GeneratingMode",
    "IterativeMode",
    "MatcherMode",
    "ModeUnavailable",
    "OneShotMode",
    "ProbeOutcome",
    "pipeline_generator",
]

Generator = Callable[[Evidence, int], Result]
GeneratorFactory = Callable[["EvalContext"], Generator]


class ModeUnavailable(Exception):
    """A mode cannot run here; the message says which part is missing."""


@dataclass
class ProbeOutcome:
    """What a mode produced for one probe."""

    probe: Probe
    scores: np.ndarray | None
    """``(n_identities,)`` identity scores in the gallery's column order; None if failed."""
    best_images: np.ndarray | None = None
    """Per identity, the index of its best-matching gallery image (-1: none)."""
    seconds: float = 0.0
    error: str | None = None
    notes: tuple[str, ...] = ()
    candidates: tuple[np.ndarray, ...] = ()
    grades: dict[str, list[float]] = field(default_factory=dict)
    evidence: Evidence | None = None
    """Kept for the first probes of a set only (the contact sheet), like ``candidates``."""
    top: tuple[tuple[int, float, int], ...] = ()
    """The best identities as ``(column, score, gallery image index or -1)``, best first."""
    probabilities: np.ndarray | None = None
    """``(n_identities,)`` calibrated probability that each identity is the source, where
    the mode fuses and calibrates its scores (:mod:`facefit.fusion`); else None."""

    @property
    def failed(self) -> bool:
        return self.scores is None


class EvalContext:
    """One benchmark's shared state: registry, embedders and enrolled galleries by encoder."""

    def __init__(
        self,
        manifest: Manifest,
        registry: Any,
        *,
        detector: str = "yunet",
        encoder: str = "sface",
        matcher: str | None = None,
        matcher_options: Mapping[str, Any] | None = None,
        graders: Sequence[str] = DEFAULT_GRADERS,
        rounds: int = 3,
        generator_factory: GeneratorFactory | None = None,
        config: Any = None,
        progress: bool = False,
        embedders: dict[str, FaceEmbedder] | None = None,
        fusion_weights: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.fusion_weights = fusion_weights  # None: the shipped facefit/fusion weights
        self._fusion: Any = None
        self.registry = registry
        self.detector = detector
        self.encoder = encoder
        self.matcher = matcher
        self.matcher_options = dict(matcher_options or {})  # e.g. {"weights": matcher dir}
        self.grader_names = tuple(graders)
        self.rounds = rounds
        self.generator_factory = generator_factory or pipeline_generator
        self.config = config
        self.progress = progress
        self._embedders = {} if embedders is None else embedders  # may be shared
        self._galleries: dict[str, EnrolledGallery] = {}
        self._indexes: dict[str, GalleryIndex] = {}
        self._grader: IdentityGrader | None = None
        self._generator: Generator | None = None

    def embedder(self, encoder: str) -> FaceEmbedder:
        """A detector + ``encoder`` embedder, created once and warmed up (weights loaded)."""
        if encoder not in self._embedders:
            options = self.matcher_options if encoder == self.matcher else None
            embedder = FaceEmbedder.from_registry(
                self.registry, detector=self.detector, encoder=encoder, encoder_options=options
            )
            size = embedder.encoder.input_size
            embedder.embed_aligned(np.zeros((1, size, size, 3), np.uint8))
            embedder.detect(np.zeros((32, 32, 3), np.uint8))
            self._embedders[encoder] = embedder
        return self._embedders[encoder]

    def gallery(self, encoder: str) -> EnrolledGallery:
        """The benchmark's gallery enrolled with ``encoder`` (once per encoder)."""
        if encoder not in self._galleries:
            self._galleries[encoder] = enrol(
                self.manifest, self.embedder(encoder), progress=self.progress
            )
        return self._galleries[encoder]

    @property
    def galleries(self) -> Mapping[str, EnrolledGallery]:
        return dict(self._galleries)

    def gallery_index(self, encoder: str) -> GalleryIndex:
        """The enrolled gallery as a :class:`~facefit.gallery.GalleryIndex` (once per encoder)."""
        if encoder not in self._indexes:
            self._indexes[encoder] = self.gallery(encoder).to_gallery_index(
                self.embedder(encoder).encoder, registry=self.registry
            )
        return self._indexes[encoder]

    def grader(self) -> IdentityGrader:
        if self._grader is None:
            self._grader = make_grader(self.registry, self.grader_names, detector=self.detector)
        return self._grader

    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self.generator_factory(self)
        return self._generator

    def fusion(self) -> Any:
        """The :class:`~facefit.fusion.FusionModel` the fusing modes use (loaded once)."""
        if self._fusion is None:
            from facefit.fusion import FusionModel

            self._fusion = FusionModel.load(self.fusion_weights)
        return self._fusion


def _image_modalities(probe: Probe) -> list[str]:
    return [m for m in ("sketch", "lq", "reference") if getattr(probe, m) is not None]


class EvalMode(ABC):
    """One way of turning a probe into identity scores."""

    name: ClassVar[str]
    summary: ClassVar[str]
    generates: ClassVar[bool] = False

    def unavailable(self, context: EvalContext) -> str | None:
        """Why this mode cannot run here, or None. Must not do the evaluation's work."""
        return None

    def unsupported(self, probe: Probe) -> str | None:
        """Why this mode cannot take probes like this one (e.g. text only), or None."""
        return None

    def ignored(self, probe: Probe) -> tuple[str, ...]:
        """Evidence present in the probe that this mode does not use."""
        return ()

    def encoder_name(self, context: EvalContext) -> str:
        """The identity encoder whose gallery this mode searches."""
        return context.encoder

    def prepare(self, context: EvalContext) -> EnrolledGallery:
        """Enrol the gallery this mode searches (before its probes are timed)."""
        return context.gallery(self.encoder_name(context))

    @abstractmethod
    def run_probe(self, context: EvalContext, loaded: LoadedProbe) -> ProbeOutcome:
        """Scores for one probe; raise :class:`InputError` for a probe that cannot be used."""


def sketch_crops(embedder: Any, evidence: Any, notes: list[str]) -> list[np.ndarray]:
    """Every sketch of ``evidence`` located and cropped by ``embedder`` (a framed-drawing
    fallback where no face is found, noted in ``notes``)."""
    crops = []
    for n, sketch in enumerate(evidence.images("sketch"), start=1):
        key = source_key("sketch", n)
        face = embedder.locate(sketch, source=evidence.sources.get(key, key), sketch_fallback=True)
        if face.fallback:
            notes.append(f"{key}: no face detected, framed-drawing fallback used")
        crops.append(face.crop)
    return crops


def lq_crops(embedder: Any, evidence: Any, aligned: bool, size: int) -> list[np.ndarray]:
    """Every low-quality frame of ``evidence`` as an aligned ``size`` crop: upsampled as
    the generator's input is (bicubic) when the frames are already aligned, else aligned."""
    crops = []
    for n, lq in enumerate(evidence.images("lq"), start=1):
        if aligned:
            crops.append(normalize_lq(lq, size))
        else:
            key = source_key("lq", n)
            crops.append(embedder.align(lq, source=evidence.sources.get(key, key)))
    return crops


class DirectMode(EvalMode):
    """Embed the probe's own images with the identity encoder; no generation.

    Several sketches or frames: see :func:`mean_per_source`.
    """

    name = "direct"
    summary = "embed the probe itself with the identity encoder"

    def unsupported(self, probe: Probe) -> str | None:
        if not _image_modalities(probe):
            return (
                f"{self.name} embeds the probe's images with a face encoder; a probe with "
                f"only {', '.join(probe.modalities)} has none (text needs a generating mode)"
            )
        return None

    def ignored(self, probe: Probe) -> tuple[str, ...]:
        return ("text",) if probe.text is not None else ()

    def run_probe(self, context: EvalContext, loaded: LoadedProbe) -> ProbeOutcome:
        encoder = self.encoder_name(context)
        embedder = context.embedder(encoder)
        gallery = context.gallery(encoder)
        evidence, size = loaded.evidence, embedder.encoder.input_size
        crops: dict[str, list[np.ndarray]] = {}
        notes: list[str] = []
        if evidence.sketch is not None:
            crops["sketch"] = sketch_crops(embedder, evidence, notes)
        if evidence.lq is not None:
            crops["lq"] = lq_crops(embedder, evidence, loaded.lq_aligned, size)
        if evidence.reference is not None:
            source = evidence.sources.get("reference", "reference")
            crops["reference"] = [embedder.align(evidence.reference, source=source)]
        if not crops:
            raise InputError(f"probe {loaded.probe.id!r}: no image to embed")
        vectors = embedder.embed_aligned(np.concatenate([np.stack(c) for c in crops.values()]))
        scores, best = gallery.scores(vectors)
        return ProbeOutcome(
            loaded.probe, mean_per_source(scores, crops), best[0], notes=tuple(notes)
        )


def mean_per_source(scores: np.ndarray, images: Mapping[str, Sequence[Any]]) -> np.ndarray:
    """Identity scores of several images (rows of ``scores``, grouped in the order of
    ``images``' sources): the mean over each source's images, as the pipeline scores
    several sketches or frames (:mod:`facefit.pipeline.direct`), then the mean over
    the sources (the ``direct`` mode's rule for, e.g., a sketch and a frame). With one
    image per source this is the mean of all rows.
    """
    means, start = [], 0
    for group in images.values():
        means.append(scores[start : start + len(group)].mean(axis=0))
        start += len(group)
    return np.mean(means, axis=0)


class MatcherMode(DirectMode):
    """``direct`` with a trained sketch-to-mugshot matcher as the identity encoder."""

    name = "matcher"
    summary = "embed the probe with the trained sketch matcher (a face-encoder plugin)"

    def encoder_name(self, context: EvalContext) -> str:
        return context.matcher or ""

    def unavailable(self, context: EvalContext) -> str | None:
        if not context.matcher:
            return (
                "no sketch matcher given: train one with `facefit train-matcher` "
                "and pass --matcher sketch-matcher --matcher-path DIR"
            )
        try:
            context.registry.entry("face_encoder", context.matcher)
        except FacefitError as exc:
            return f"sketch matcher {context.matcher!r} is not installed: {exc}"
        return None


class GeneratingMode(EvalMode):
    """Generate candidate faces from the evidence, then rank identities by retrieval."""

    generates = True
    rounds: ClassVar[int | None] = None  # None: the context's rounds

    def unavailable(self, context: EvalContext) -> str | None:
        try:
            context.generator()
        except ModeUnavailable as exc:
            return str(exc)
        return None

    def run_probe(self, context: EvalContext, loaded: LoadedProbe) -> ProbeOutcome:
        gallery = context.gallery(self.encoder_name(context))
        rounds = self.rounds or context.rounds
        result = context.generator()(loaded.evidence, rounds)
        scores = np.full(len(gallery.identities), -np.inf)
        calibrated = any(m.probability is not None for m in result.matches)
        probabilities = np.zeros(len(gallery.identities)) if calibrated else None
        for match in result.matches:
            scores[gallery.column(match.identity)] = match.score
            if probabilities is not None and match.probability is not None:
                probabilities[gallery.column(match.identity)] = match.probability
        candidates = tuple(c.image for c in result.candidates if not c.rejected)
        grades: dict[str, list[float]] = {}
        true_photo = context.manifest.true_photo(loaded.probe)
        if candidates and true_photo is not None:
            path = context.manifest.path(true_photo)
            grades = context.grader().grade(candidates, load_image(path), source=str(path))
        return ProbeOutcome(
            loaded.probe,
            scores,
            candidates=candidates,
            grades=grades,
            notes=tuple(n for n in result.notes if n.startswith("fusion:")),
            probabilities=probabilities,
        )


class OneShotMode(GeneratingMode):
    name = "one-shot"
    summary = "one round of generation from the evidence, then retrieval"
    rounds = 1


class IterativeMode(GeneratingMode):
    name = "iterative"
    summary = "the IdentiFace loop: rounds of generation steered by retrieval"


from facefit.evaluation.fused import FusedMode  # noqa: E402  (it builds on DirectMode above)

MODES: dict[str, type[EvalMode]] = {
    m.name: m for m in (DirectMode, OneShotMode, IterativeMode, MatcherMode, FusedMode)
}
"""The built-in modes by name, in report order."""


def create_modes(
    names: Sequence[str], modes: Mapping[str, type[EvalMode]] = MODES
) -> list[EvalMode]:
    """Mode instances by name; an unknown name is an error listing the known ones."""
    unknown = [n for n in names if n not in modes]
    if unknown:
        raise InputError(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(modes)}")
    if not names:
        raise InputError(f"no mode given; known: {', '.join(modes)}")
    return [modes[n]() for n in dict.fromkeys(names)]


def pipeline_generator(context: EvalContext) -> Generator:
    """The benchmark generator of facefit's pipeline
    (:func:`facefit.pipeline.evaluation_generator`), or :class:`ModeUnavailable` where
    it cannot start (e.g. no trained generator installed)."""
    from facefit.pipeline import evaluation_generator

    try:
        return evaluation_generator(context)
    except FacefitError as exc:
        raise ModeUnavailable(f"the generation pipeline cannot start: {exc}") from None
