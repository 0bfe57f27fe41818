"""The IdentiFace loop: evidence in, candidate faces and ranked gallery identities out.

    >>> from facefit.pipeline import Pipeline, PipelineConfig
    >>> pipeline = Pipeline.from_config(PipelineConfig(rounds=2), gallery="mugshots.gallery")
    >>> result = pipeline.run(Evidence(sketch="sketch.png", text="a man with a beard"))
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

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from facefit.config import PipelineConfig, load_config
from facefit.errors import InputError
from facefit.imaging.faces import resize_aligned
from facefit.pipeline.choice import Choice
from facefit.pipeline.components import Components, build_components
from facefit.pipeline.direct import direct_scores
from facefit.pipeline.evidence import PreparedEvidence, prepare_evidence
from facefit.pipeline.fusion import round_scores, top_identity_streak
from facefit.pipeline.progress import Cancelled, CancelToken, ProgressCallback, Reporter
from facefit.pipeline.ranking import Ranker
from facefit.pipeline.scoring import evidence_scores, texts_scorer
from facefit.pipeline.state import Probe, RunState
from facefit.pipeline.warmup import quiet_loading, warm_up
from facefit.types import Candidate, Condition, Evidence, Match, Result, RoundTrace

__all__ = ["OnRound", "Pipeline", "round_seed"]

log = logging.getLogger(__name__)

OnRound = Callable[[RoundTrace], "Choice | None"]
SEARCH_DEPTH = 50
"""Identities each candidate retrieves (at least ``top_k``); see :mod:`.fusion`."""


@dataclass(frozen=True)
class Steering:
    """The reference a round hands the next: an identity vector and, where there is
    one, an aligned face image (the generator's v2 models look at the image)."""

    vector: np.ndarray
    face: np.ndarray | None = None


@dataclass
class _Round:
    """One round's candidates and rankings, as sampled and after the investigator's choice."""

    index: int
    seed: int
    started: float
    candidates: list[Candidate]
    matches: list[tuple[Match, ...]]
    stats: Any
    """The round's :class:`~facefit.pipeline.fusion.RoundScores` (None without a gallery)."""
    identity: np.ndarray
    hits: list[list[Any]]
    notes: list[str]


def round_seed(seed: int, round_index: int) -> int:
    """The sampler seed of one round, derived from the run's seed (stable across versions)."""
    return int(np.random.SeedSequence([int(seed), int(round_index)]).generate_state(1)[0])


def _resize(crops: np.ndarray, size: int) -> np.ndarray:
    """Aligned crops at another size (:func:`facefit.imaging.faces.resize_aligned` on each)."""
    if crops.shape[1] == size:
        return crops
    return np.stack([resize_aligned(c, size) for c in crops])


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _sketch_gallery(gallery: Any, registry: Any) -> tuple[Any, Any]:
    """The sketch-matcher gallery and its encoder: ``(gallery, encoder)`` as given, or the
    encoder created by the gallery's encoder name with its default options."""
    if gallery is None:
        return None, None
    from facefit.gallery import GalleryIndex

    encoder = None
    if isinstance(gallery, tuple):
        gallery, encoder = gallery
    if isinstance(gallery, (str, Path)):
        gallery = GalleryIndex.load(gallery, registry=registry)
    encoder = encoder or registry.create_face_encoder(gallery.encoder.name)
    gallery.check_encoder(encoder)
    return gallery, encoder


def _fusion_model(fusion: Any) -> Any:
    from facefit.fusion import FusionModel

    return fusion if isinstance(fusion, FusionModel) else FusionModel.load(fusion)


class Pipeline:
    """The iterative loop with its components created once (see the module doc).

    ``config`` is a :class:`~facefit.config.PipelineConfig` (default: every part's
    default), ``registry`` the plugins (default: the installed ones), ``gallery`` a
    :class:`~facefit.gallery.GalleryIndex` or the path of a saved one (None:
    generation only, nothing ranked). A gallery built with another face encoder
    than the config's ``[face_encoder]`` is refused. ``sketch_gallery``: the same
    mugshots enrolled with the sketch matcher (a gallery, its path, or a ``(gallery,
    encoder)`` pair), which sketches
    are matched against directly (:mod:`.direct`); ``fusion``: a
    :class:`~facefit.fusion.FusionModel` or the path of a weights file (default: the
    shipped weights).

    Construction creates every part and loads the generator; other models load on
    first use, or ahead with :meth:`warm_up`. Nothing is printed.

    **Threads.** One pipeline may serve several threads at once: :meth:`run` keeps
    its state in the call, and it calls the parts that are not thread-safe (the
    face detector, the conditioners, the encoders that score and search
    candidates, the gallery) one run at a time under the pipeline's lock. Only
    sampling, which is most of a run, goes on side by side, where the sampler and
    the denoiser backend declare ``thread_safe`` (the built-in samplers and the eager and
    onnxruntime backends do). Results do not
    depend on how runs interleave.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        registry: Any = None,
        gallery: Any = None,
        sketch_gallery: Any = None,
        fusion: Any = None,
    ) -> None:
        if registry is None:
            from facefit.registry import Registry

            registry = Registry.load()
        self.config = config or PipelineConfig()
        self.registry = registry
        self.components: Components = build_components(self.config, registry, gallery)
        self.sketch_gallery, self.sketch_encoder = _sketch_gallery(sketch_gallery, registry)
        self.fusion = _fusion_model(fusion)
        self._lock = threading.RLock()
        # compiled (CUDA graphs) and TensorRT hold one set of buffers: runs take turns
        concurrent = self.components.sampler.thread_safe and self.components.backend.thread_safe
        self._sampling: Any = contextlib.nullcontext() if concurrent else threading.Lock()
        self._step_hook = self.components.sampler.reports_steps
        self._loaded = False

    @classmethod
    def from_config(
        cls, config: str | Path | PipelineConfig, *, registry: Any = None, gallery: Any = None
    ) -> Pipeline:
        """A pipeline from a :class:`~facefit.config.PipelineConfig` or a TOML file's path."""
        if not isinstance(config, PipelineConfig):
            config = load_config(config)
        return cls(config, registry=registry, gallery=gallery)

    @property
    def settings(self) -> Any:
        """The config's :class:`~facefit.config.Settings`."""
        return self.config.settings

    @property
    def gallery(self) -> Any:
        """The :class:`~facefit.gallery.GalleryIndex` searched, or None."""
        return self.components.gallery

    def warm_up(self) -> Pipeline:
        """Load every model now (text and face encoders, detector, torch's first calls).

        The first :meth:`run` then takes as long as later ones. Returns the pipeline,
        so ``Pipeline(config).warm_up()`` reads naturally. Safe to call twice.
        """
        with self._lock:
            warm_up(self.components)
            self._loaded = True
        return self

    # -- one round's pieces -------------------------------------------------------------

    def _embed(self, encoder: Any, images: np.ndarray) -> np.ndarray:
        return encoder.embed(_resize(images, encoder.input_size))

    def _search(self, vectors: np.ndarray) -> list[list[Any]]:
        gallery = self.components.gallery
        if gallery is None:
            return [[] for _ in vectors]
        k = min(gallery.num_identities, max(self.settings.top_k, SEARCH_DEPTH))
        return gallery.search_many(vectors, k)

    def _gallery_vector(self, hit: Any) -> np.ndarray | None:
        """The embedding of a candidate's closest gallery face, in the identity encoder's space."""
        gallery, encoder = self.components.gallery, self.components.identity_encoder
        if gallery is None or gallery.encoder.name != encoder.name or gallery.dim != encoder.dim:
            return None
        return gallery.retriever.get_vectors(np.array([hit.faces[0].label]))[0]

    def _steer(
        self,
        candidates: list[Candidate],
        vectors: np.ndarray,
        hits: list[list[Any]],
        choice: Choice | None,
    ) -> tuple[Steering | None, str, list[str]]:
        """The next round's reference (identity vector and face image), where it came from,
        and notes.

        The face image is the investigator's pick, else the top gallery face retrieved for
        the most evidence-consistent candidate (IdentiFace's retrieval step), else that
        candidate itself when the gallery keeps no readable image.
        """
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
            source = f"investigator pick {best.round}/{best.index}"
            face = best.image
        else:

            def key(c: Candidate) -> tuple[float, float, int]:
                top = c.matches[0].score if c.matches else 0.0
                return (c.consistency, top, -c.index)

            best = max(usable, key=key)
            source = f"candidate {best.round}/{best.index} (most evidence-consistent)"
            face = self._gallery_face(hits[best.index], notes) if hits[best.index] else None
            if face is None:
                face = best.image
            else:
                source += f", face image of gallery {hits[best.index][0].identity}"
        vector = vectors[best.index]
        weight = self.settings.gallery_reference_weight
        if weight > 0 and hits[best.index]:
            top = hits[best.index][0]
            with self._lock:
                gallery_vector = self._gallery_vector(top)
            if gallery_vector is None:
                notes.append(
                    "gallery face not blended into the reference: the gallery's encoder "
                    f"({self.components.gallery.encoder}) is not the generator's identity encoder"
                )
            else:
                vector = (1.0 - weight) * vector + weight * gallery_vector
                source += f" + gallery face of {top.identity} (weight {weight:g})"
        return Steering(_unit(vector), face), source, notes

    def _reference_condition(self, steering: Steering) -> Condition:
        from facefit.generator.conditions import reference_condition

        model = self.components.model
        dim = int(model.config.identity_dim)
        return reference_condition(steering.vector, steering.face, model.image_size, dim)

    def _gallery_face(self, hits: list[Any], notes: list[str]) -> np.ndarray | None:
        """The top gallery hit's photo, aligned, where the gallery kept a readable path."""
        from facefit.errors import InputError
        from facefit.imaging.images import load_image

        source = hits[0].faces[0].source if hits[0].faces else None
        if not source or not Path(source).is_file():
            return None
        reference = self.components.conditioners.get("reference")
        try:
            image = load_image(source)
            with self._lock:
                return reference.aligned(image) if reference is not None else None
        except InputError as exc:
            notes.append(f"gallery face {source} not used as the reference image: {exc}")
            return None

    # -- the loop -----------------------------------------------------------------------

    def prepare(self, evidence: Evidence) -> PreparedEvidence:
        """The evidence aligned to the generator's template (see :mod:`.evidence`)."""
        with self._lock:
            return prepare_evidence(
                evidence,
                detector=self.components.detector,
                image_size=self.components.model.image_size,
            )

    def _probe(self, evidence: Evidence) -> Probe:
        """Frame and encode the evidence (once per run)."""
        components = self.components
        quiet = contextlib.nullcontext() if self._loaded else quiet_loading()
        with self._lock, quiet:
            prepared = self.prepare(evidence)
            conditions = {m: c(prepared.evidence) for m, c in components.conditioners.items()}
            notes = list(evidence.notes) + list(prepared.notes)
            text = None
            texts = prepared.evidence.texts
            if texts:
                text, text_notes = texts_scorer(texts, components.identity_encoder)
                notes += text_notes
            text_conditions: tuple[Condition, ...] = ()
            if len(texts) > 1 and "text" in components.conditioners:
                encode = components.conditioners["text"]
                text_conditions = tuple(
                    encode(replace(prepared.evidence, text=t, extra_texts=())) for t in texts
                )
        reference = None
        if prepared.evidence.reference is not None:
            reference = conditions["reference"].tokens[0].numpy().astype(np.float32)
        ranker = None
        if components.gallery is None:
            notes.append("no gallery: candidates are generated and scored, nothing is ranked")
        else:
            ranker = self._ranker(prepared)
            notes += list(ranker.direct.notes)
        return Probe(prepared, conditions, reference, text, notes, ranker, text_conditions)

    def _ranker(self, prepared: PreparedEvidence) -> Ranker:
        """The evidence matched directly against the gallery, ready to fuse with rounds."""
        from facefit.fusion.model import encoder_id

        components, settings = self.components, self.settings
        with self._lock:
            direct = direct_scores(
                {m: prepared.checked(m) for m in ("sketch", "lq")},
                prepared.evidence.texts,
                detector=components.detector,
                gallery=components.gallery,
                encoder=components.face_encoder,
                sketch_gallery=self.sketch_gallery,
                sketch_encoder=self.sketch_encoder,
            )
        return Ranker(
            direct,
            self.fusion,
            encoder_id(components.face_encoder),
            settings.match_prior,
            settings.no_match_threshold,
        )

    def _sample(
        self,
        conditions: list[Condition],
        seed: int,
        on_step: Any,
        num_images: int | None = None,
    ) -> np.ndarray:
        settings = self.settings
        options = {"on_step": on_step} if on_step is not None else {}
        with self._sampling:
            return self.components.sampler.sample(
                self.components.backend,
                conditions,
                num_images=settings.candidates if num_images is None else num_images,
                steps=settings.steps,
                guidance=settings.guidance,
                seed=seed,
                **options,
            )

    def _rank(
        self, probe: Probe, images: np.ndarray
    ) -> tuple[np.ndarray, list[dict[str, float]], list[list[Any]]]:
        """Identity embeddings, evidence scores and gallery hits of a round's candidates."""
        components = self.components
        with self._lock:
            identity = self._embed(components.identity_encoder, images)
            retrieval = (
                identity
                if components.face_encoder is components.identity_encoder
                else self._embed(components.face_encoder, images)
            )
            scores = evidence_scores(
                images,
                probe.prepared,
                sketch_extractor=components.sketch_extractor,
                reference_vector=probe.reference_vector,
                identity_vectors=identity,
                text=probe.text,
            )
            hits = self._search(retrieval)
        return identity, scores, hits

    def run(
        self,
        evidence: Evidence,
        *,
        on_round: OnRound | None = None,
        rounds: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        """Run the loop on one probe's evidence and return its :class:`~facefit.types.Result`.

        ``on_round(trace)`` is called after each round with its
        :class:`~facefit.types.RoundTrace` and may return a
        :class:`~facefit.pipeline.Choice` (the investigator's pick, rejects or
        accept). ``rounds`` overrides the config's. ``progress`` is called with a
        :class:`~facefit.pipeline.Progress` at every stage and sampler step;
        ``cancel`` is a :class:`~facefit.pipeline.CancelToken` checked at the same
        points. A cancelled run raises :class:`~facefit.pipeline.Cancelled`, whose
        ``result`` holds the rounds completed before the cancel; so does a run
        whose ``progress`` or ``on_round`` raises ``Cancelled``.
        """
        start = time.perf_counter()
        settings = self.settings
        max_rounds = settings.rounds if rounds is None else int(rounds)
        if max_rounds < 1:
            raise InputError(f"rounds must be at least 1, got {max_rounds}")
        report = Reporter(
            progress,
            cancel,
            rounds=max_rounds,
            candidates=settings.candidates,
            steps=settings.steps,
        )
        state = RunState(max_rounds)
        try:
            report("prepare", 0)
            probe = self._probe(evidence)
            state.ranker = probe.ranker
            self._loaded = True
            self._loop(probe, state, report, on_round)
        except Cancelled as stop:
            where = f"{stop} after {len(state.traces)} complete round(s)"
            state.stopped = where.removeprefix("run ")
            raise Cancelled(where, state.result(settings.top_k, start)) from None
        result = state.result(settings.top_k, start)
        report.done(len(state.traces))
        return result

    def _loop(
        self, probe: Probe, state: RunState, report: Reporter, on_round: OnRound | None
    ) -> None:
        """Rounds until the last, a stable top identity or the investigator's accept."""
        steering: Steering | None = None
        reference_source = "evidence reference face" if probe.reference_vector is not None else None
        for r in range(state.max_rounds):
            done = self._sample_and_rank(r, probe, steering, report)
            state.seeds.append(done.seed)
            choice = None
            if on_round is not None:
                choice = on_round(self._trace(done, reference_source))
            if choice is not None:
                self._apply_choice(done, choice)
            next_steering, next_source, steer_notes = self._steer(
                done.candidates, done.identity, done.hits, choice
            )
            done.notes.extend(steer_notes)
            self._record(state, done, reference_source)
            report("rank", r, candidate=len(done.candidates))
            if next_steering is not None:
                steering, reference_source = next_steering, next_source
            if self._stops(state, choice, r):
                return

    def _sample_and_rank(
        self, r: int, probe: Probe, steering: Steering | None, report: Reporter
    ) -> _Round:
        """Round ``r``: sample the candidates from the evidence (and the steering), then
        score them against the evidence and search them in the gallery."""
        from facefit.generator.conditions import domain_condition

        settings = self.settings
        started = time.perf_counter()
        conditions = [
            c for m, c in probe.evidence_conditions.items() if m != "reference" or steering is None
        ]
        if steering is not None:
            conditions.append(self._reference_condition(steering))
        seed = round_seed(settings.seed, r)
        report("sample", r)
        hook = report.step_hook(r) if self._step_hook else None
        notes = list(probe.notes) if r == 0 else []
        if len(probe.text_conditions) > 1:
            images = self._sample_per_text(probe, conditions, seed, hook, notes)
        else:
            images = self._sample([*conditions, domain_condition("photo")], seed, hook)
        if hook is None:  # a sampler that does not report steps: report them at the end
            report("sample", r, step=settings.steps)
        report("rank", r)
        identity, scores, hits = self._rank(probe, images)
        matches = [tuple(h.to_match() for h in row) for row in hits]
        candidates = [
            Candidate(images[i], r, i, seed, scores[i], matches[i][: settings.top_k])
            for i in range(len(images))
        ]
        return _Round(
            r, seed, started, candidates, matches, round_scores(matches), identity, hits, notes
        )

    def _sample_per_text(
        self,
        probe: Probe,
        conditions: list[Condition],
        seed: int,
        hook: Any,
        notes: list[str],
    ) -> np.ndarray:
        """Several descriptions: description ``j`` of ``n`` conditions the ``j``-th equal
        block of the round's candidates (candidate ``i`` still starts from the noise of
        ``seed + i``); each round's notes say which block had which description. With
        fewer candidates than descriptions the last descriptions condition none."""
        from facefit.generator.conditions import domain_condition

        total, texts = self.settings.candidates, probe.text_conditions
        others = [c for c in conditions if c.modality != "text"]
        bounds = [-(-j * total // len(texts)) for j in range(len(texts) + 1)]  # ceil: first fed
        batches, shares = [], []
        for j, (start, stop) in enumerate(itertools.pairwise(bounds)):
            if stop == start:
                continue
            shares.append(f"{start}-{stop - 1} on description {j + 1}")
            batches.append(
                self._sample(
                    [*others, texts[j], domain_condition("photo")],
                    seed + start,
                    hook,
                    num_images=stop - start,
                )
            )
        used = len(batches)
        note = f"text: candidates {', '.join(shares)}"
        if used < len(texts):
            note += (
                f" ({len(texts) - used} description(s) condition no candidate: too few candidates)"
            )
        notes.append(note)
        return np.concatenate(batches)

    @staticmethod
    def _apply_choice(done: _Round, choice: Choice) -> None:
        """Mark the rejected candidates, rank without them, and note the choice."""
        choice.check(len(done.candidates))
        if choice.reject:
            done.candidates = [
                replace(c, rejected=c.index in choice.reject) for c in done.candidates
            ]
            done.stats = round_scores(
                [m for i, m in enumerate(done.matches) if i not in choice.reject]
            )
        done.notes.append(f"investigator: {choice.to_dict()}")

    def _trace(
        self, done: _Round, reference_source: str | None, fused: tuple[Match, ...] = ()
    ) -> RoundTrace:
        """The round as the caller sees it (``on_round``, :attr:`Result.rounds`); ``fused``
        is the ranking after it, once the round is recorded."""
        stats = done.stats
        return RoundTrace(
            done.index,
            tuple(done.candidates),
            stats.ranked(self.settings.top_k) if stats else (),
            reference_source,
            time.perf_counter() - done.started,
            tuple(done.notes),
            fused,
        )

    def _record(self, state: RunState, done: _Round, reference_source: str | None) -> None:
        state.per_round.append(done.stats)
        state.tops.append(done.stats.ranked(1)[0].identity if done.stats else None)
        fused, _ = state.ranking(self.settings.top_k)  # the direct evidence and rounds 0..r
        state.traces.append(self._trace(done, reference_source, fused))

    def _stops(self, state: RunState, choice: Choice | None, r: int) -> bool:
        """Whether the loop ends after round ``r`` (and why, in ``state.stopped``)."""
        if choice is not None and choice.accept:
            state.stopped = f"investigator accepted round {r}"
            return True
        streak = top_identity_streak(state.tops)
        stable = self.settings.stop_when_stable
        if stable and streak >= stable:
            state.stopped = f"top identity {state.tops[-1]!r} stable for {streak} rounds"
            return True
        return False


def matches_to_dicts(matches: tuple[Match, ...]) -> list[dict[str, Any]]:
    return [
        {"rank": m.rank, "identity": m.identity, "score": m.score, "image": m.image_id}
        for m in matches
    ]
