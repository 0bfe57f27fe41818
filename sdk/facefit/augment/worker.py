"""Making one shard: align the mugshots, generate the sketches in batches, filter, write.

:class:`ShardRunner` holds the loaded parts (generator, detector, encoders, text
conditioner, denoiser backend, sampler) and is reused for every shard a process
makes. :func:`sample_batch` is the sampler loop of :mod:`facefit_plugins.samplers`
with one piece of evidence *per image* instead of one per call, so the sketches of
several mugshots, in several styles, come from one batched denoiser call per step;
image ``i`` starts from the noise of its own seed, as in the samplers.

The conditions of a sketch are the mugshot's identity embedding and, for a
generator that takes a reference image (v2), the mugshot's aligned crop as that
image (:func:`facefit.generator.conditions.reference_condition`, as the loop's
steering passes a face), plus the style (domain) and any prompt. Guidance is
against the same evidence with the reference and the text removed (the style stays).
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.augment.plan import (
    Job,
    Shard,
    Variant,
    generator_conditions,
    identity_samples,
    style_number,
)
from facefit.augment.store import OutputFolder
from facefit.errors import InputError
from facefit.types import MODALITIES, Condition, Evidence

if TYPE_CHECKING:
    from facefit.generator.conditions import ConditionTensors

__all__ = ["ShardRunner", "sample_batch", "sketch_for_encoder"]

log = logging.getLogger(__name__)


def sample_batch(
    model: Any,
    backend: Any,
    sampler: Any,
    cond: ConditionTensors,
    null: ConditionTensors | None,
    seeds: list[int],
    *,
    steps: int,
    guidance: float,
) -> np.ndarray:
    """One image per item of ``cond`` → ``(N, S, S, 3)`` uint8, item ``i`` from ``seeds[i]``.

    ``null`` is the guidance baseline of every item (None when ``guidance`` is 1).
    ``sampler`` is a diffusers-based sampler plugin (``ddim``, ``ddpm``,
    ``dpm-solver``): its step loop (``denoise``) runs the batch. Stochastic samplers
    draw their step noise from ``seeds[0]``, so a batch is reproducible as a whole.
    Gives the same images as ``sampler.sample`` for one piece of evidence repeated
    (an image's tokens never depend on the batch; the denoiser's arithmetic may, in
    the last bits, with the batch size).
    """
    import torch

    from facefit.generator.conditions import ConditionTensors, tensor_to_images

    if not sampler.batches:
        raise InputError(
            f"sampler {sampler.name!r} cannot run batches of different evidence "
            "(it does not declare `batches`); use ddim, ddpm or dpm-solver"
        )
    n = cond.batch_size
    if len(seeds) != n:
        raise ValueError(f"{n} items but {len(seeds)} seeds")
    guided = float(guidance) != 1.0
    if guided and (null is None or null.batch_size != n):
        raise ValueError("guidance needs a null condition for every item")
    size = model.image_size
    with torch.inference_mode():
        halves = 2 if guided else 1
        # each item's evidence is encoded as the sampler encodes one piece of evidence
        # (conditional and null together), so its tokens do not depend on the batch
        encoded = [
            model.encode_conditions(
                ConditionTensors.cat(
                    [_item(cond, i), _item(null, i)] if guided else [_item(cond, i)]
                )
            )
            for i in range(n)
        ]
        spatial = torch.cat([e[0][h : h + 1] for h in range(halves) for e in encoded])
        tokens = torch.cat([e[1][h : h + 1] for h in range(halves) for e in encoded])
        noise = torch.empty((n, 3, size, size))
        for i, seed in enumerate(seeds):
            noise[i] = torch.randn((3, size, size), generator=torch.Generator().manual_seed(seed))
        x = sampler.denoise(
            backend,
            spatial,
            tokens,
            noise.to(model.device),
            steps=steps,
            guidance=guidance,
            seed=int(seeds[0]),
        )
    return tensor_to_images(x)


def _item(batch: ConditionTensors, index: int) -> ConditionTensors:
    from dataclasses import fields

    from facefit.generator.conditions import ConditionTensors

    return ConditionTensors(
        **{f.name: getattr(batch, f.name)[index : index + 1] for f in fields(batch)}
    )


def sketch_for_encoder(sketches: np.ndarray, size: int) -> np.ndarray:
    """Generated sketches ``(N, S, S, 3)`` → grey copied to 3 channels, ``size``×``size``.

    The generator's crops use the encoder's 5-point template scaled to ``S``, so a
    plain resize gives the encoder's aligned crop.
    """
    from facefit.imaging.faces import resize_aligned
    from facefit.imaging.sketch import to_grey

    out = np.empty((len(sketches), size, size, 3), np.uint8)
    for i, sketch in enumerate(sketches):
        out[i] = resize_aligned(to_grey(sketch), size)[..., None]
    return out


def _safe(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "x"


def output_name(identity: str, key: str) -> str:
    """A file-name stem for a mugshot's outputs: readable, and unique by a short hash."""
    digest = hashlib.sha256(f"{identity}\0{key}".encode()).hexdigest()[:8]
    return f"{_safe(identity)}_{_safe(Path(key).stem)}_{digest}"


@dataclass
class _Face:
    mugshot: Any
    photo: np.ndarray  # aligned crop at the generator's size
    filter_vector: np.ndarray
    identity_vector: np.ndarray
    alignment: str


class ShardRunner:
    """The parts that make a job's shards, loaded once per process.

    ``registry`` defaults to the installed plugins. ``threads`` (when > 0) sets
    torch's CPU threads.
    """

    def __init__(self, job: Job, *, registry: Any = None, threads: int = 0) -> None:
        import torch

        from facefit.devices import resolve_device
        from facefit.generator.loading import load_generator
        from facefit.imaging.faces import FaceEmbedder

        if registry is None:
            from facefit.registry import Registry

            registry = Registry.load()
        if threads > 0:
            torch.set_num_threads(threads)
        settings = job.settings
        self.job = job
        self.device = resolve_device(settings.device)
        self.model = load_generator(job.model_dir, device=self.device)
        model_config = self.model.config
        self.embedder = FaceEmbedder.from_registry(
            registry, detector=settings.detector, encoder=settings.filter_encoder
        )
        name = job.identity_encoder
        if name == settings.filter_encoder:
            self.identity_encoder = self.embedder.encoder
        elif name == "clip":
            self.identity_encoder = registry.create(
                "face_encoder", "clip", checkpoint=settings.clip
            )
        else:
            self.identity_encoder = registry.create("face_encoder", name)
        if int(self.identity_encoder.dim) != int(model_config.identity_dim):
            raise InputError(
                f"the generator {job.model_dir} takes {model_config.identity_dim}-d identity "
                f"embeddings but {name!r} gives {self.identity_encoder.dim}-d"
            )
        self.text = None
        if settings.style_prompts:
            self.text = registry.create(
                "conditioner",
                "text",
                encoder=model_config.text_encoder,
                registry=registry,
                image_size=self.model.image_size,
            )
        self.backend = self._backend(registry, threads)
        self.sampler = registry.create_hosted(
            "sampler", settings.sampler, {"generator": self.model}
        )
        self.uses_reference_image = "reference_image" in generator_conditions(
            dict(model_config), settings
        )
        self._prompt_conditions: dict[str, Condition] = {}

    def _backend(self, registry: Any, threads: int) -> Any:
        """The job's denoiser backend; ONNX Runtime exported for this job's batch size
        (the conditional and null halves together) into the engine cache, once."""
        name = self.job.settings.backend
        options: dict[str, Any] = {}
        if name == "onnxruntime":
            largest = self.job.settings.batch_size * (2 if self.job.settings.guidance != 1 else 1)
            options["batch"] = (1, largest, largest)
            if threads > 0:
                options["threads"] = threads
        return registry.create_hosted(
            "denoiser_backend", name, {"model": self.model.denoiser}, **options
        )

    # -- conditions -----------------------------------------------------------------------

    def _conditions(self, face: _Face, variant: Variant) -> list[Condition]:
        from facefit.generator.conditions import domain_condition, reference_condition

        image = face.photo if self.uses_reference_image else None
        dim = int(self.model.config.identity_dim)
        conditions = [reference_condition(face.identity_vector, image, self.model.image_size, dim)]
        if variant.prompt is not None:
            if variant.prompt not in self._prompt_conditions:
                assert self.text is not None
                evidence = Evidence(text=variant.prompt)
                self._prompt_conditions[variant.prompt] = self.text(evidence)
            conditions.append(self._prompt_conditions[variant.prompt])
        conditions.append(domain_condition(variant.domain))
        return conditions

    def _tensors(self, items: list[tuple[_Face, Variant]]):
        from facefit.generator.conditions import ConditionTensors

        cond, null = [], []
        for face, variant in items:
            conditions = self._conditions(face, variant)
            cond.append(self.model.conditions_to_tensors(conditions))
            nulled = [c.null() if c.modality in MODALITIES else c for c in conditions]
            null.append(self.model.conditions_to_tensors(nulled))
        return ConditionTensors.cat(cond), ConditionTensors.cat(null)

    # -- faces ----------------------------------------------------------------------------

    def _faces(self, shard: Shard, skipped: list[dict[str, str]]) -> list[_Face]:
        from facefit.imaging.faces import align_landmarks
        from facefit.imaging.images import load_image

        found = []
        for mugshot in shard.mugshots:
            try:
                image = load_image(mugshot.path, max_pixels=self.embedder.max_pixels)
                face = self.embedder.locate(image, source=mugshot.key)
            except InputError as exc:
                reason = "no face found" if "no face" in str(exc) else str(exc)
                skipped.append({"key": mugshot.key, "identity": mugshot.identity, "reason": reason})
                continue
            photo = align_landmarks(image, face.landmarks, self.model.image_size)
            identity_crop = None
            if self.identity_encoder is not self.embedder.encoder:
                size = self.identity_encoder.input_size
                identity_crop = align_landmarks(image, face.landmarks, size)
            found.append((mugshot, photo, face.crop, identity_crop, face.alignment))
        if not found:
            return []
        filter_vectors = self.embedder.embed_aligned(np.stack([f[2] for f in found]))
        if self.identity_encoder is self.embedder.encoder:
            identity_vectors = filter_vectors
        else:
            identity_vectors = self.identity_encoder.embed(np.stack([f[3] for f in found]))
        return [
            _Face(m, photo, fv, iv.astype(np.float32), alignment)
            for (m, photo, _, _, alignment), fv, iv in zip(found, filter_vectors, identity_vectors)
        ]

    # -- a shard --------------------------------------------------------------------------

    def run(
        self,
        shard: Shard,
        out: OutputFolder,
        on_sketches: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Make ``shard`` and commit it to ``out``; returns its unit (records, drops, skips).

        ``on_sketches`` is called with the number of sketches of each sampler call as
        it finishes (a progress bar).
        """
        settings = self.job.settings
        start = time.perf_counter()
        skipped: list[dict[str, str]] = []
        faces = self._faces(shard, skipped)
        aligned = time.perf_counter()
        by_identity: dict[str, list[_Face]] = {}
        for face in faces:
            by_identity.setdefault(face.mugshot.identity, []).append(face)
        work = []  # (face, variant, sample, seed), in shard order
        for identity in shard.identities:
            usable = by_identity.get(identity, [])
            keys = [face.mugshot.key for face in usable]
            for s in identity_samples(settings, identity, keys):
                work.append((usable[s.mugshot], s.variant, s.number, s.seed))

        images = []
        for begin in range(0, len(work), settings.batch_size):
            chunk = work[begin : begin + settings.batch_size]
            cond, null = self._tensors([(face, variant) for face, variant, _, _ in chunk])
            images.append(
                sample_batch(
                    self.model,
                    self.backend,
                    self.sampler,
                    cond,
                    null,
                    [seed for _, _, _, seed in chunk],
                    steps=settings.steps,
                    guidance=settings.guidance,
                )
            )
            if on_sketches is not None:
                on_sketches(len(chunk))
        generated = time.perf_counter()
        sketches = np.concatenate(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
        cosines = np.zeros(len(work), np.float32)
        if len(work):
            size = self.embedder.encoder.input_size
            vectors = self.embedder.embed_aligned(sketch_for_encoder(sketches, size))
            references = np.stack([face.filter_vector for face, _, _, _ in work])
            cosines = np.sum(vectors * references, axis=1)

        records, dropped, files = [], [], {}
        photos_written: set[str] = set()
        for (face, variant, k, seed), sketch, cosine in zip(work, sketches, cosines):
            mugshot = face.mugshot
            name = output_name(mugshot.identity, mugshot.key)
            common = {
                "identity": mugshot.identity,
                "seed": int(seed),
                "identity_cosine": round(float(cosine), 6),
                "source": mugshot.key,
                "sample": k,
                "style": style_number(variant.domain),
                "domain": variant.domain,
                "prompt": variant.prompt,
            }
            if float(cosine) < settings.min_identity_cosine:
                dropped.append(common)
                continue
            photo = f"photo/{name}.png"
            if photo not in photos_written:
                files[photo] = out.write_image(photo, face.photo)
                photos_written.add(photo)
            sketch_path = f"sketch/{name}_{k}.png"
            files[sketch_path] = out.write_image(sketch_path, sketch)
            records.append(
                {
                    "id": f"{name}_{k}",
                    "photo": photo,
                    "sketch": sketch_path,
                    "style": common.pop("style"),
                    **common,
                }
            )
        end = time.perf_counter()
        unit = {
            "records": records,
            "dropped": dropped,
            "skipped": skipped,
            "aligned": {f.mugshot.key: f.alignment for f in faces},
            "files": files,
            "device": self.device,
            "backend": self.job.settings.backend,
            "host": socket.gethostname(),
            "seconds": {
                "align_embed": round(aligned - start, 3),
                "generate": round(generated - aligned, 3),
                "filter_write": round(end - generated, 3),
                "total": round(end - start, 3),
            },
        }
        return out.write_unit(shard, self.job.fingerprint, unit)
