"""Conformance tests a plugin author runs on their implementation.

Subclass the mixin for your kind of plugin in a pytest test module and say how
to make your implementation; pytest then runs every check on it. There is one
kit per kind of :data:`facefit.kinds.KINDS`, named after its interface
(``FaceDetectorTests``, ``FaceEncoderTests``, ``SamplerTests``…)::

    from facefit.testing import FaceEncoderTests

    class TestMyEncoder(FaceEncoderTests):
        plugin_name = "my-encoder"          # checked against the installed registry

        def make(self):
            return MyEncoder()

The mixins are not collected by themselves (their names do not start with
``Test``). Each check is small and says what it expects, like diffusers' tester
mixins. :func:`fake_distribution` lets a test make an installed-looking package
with entry points, to check discovery without ``pip install``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from facefit import interfaces
from facefit.errors import InputError, PluginError
from facefit.kinds import kind as find_kind
from facefit.plugins import ENTRY_POINT_GROUP
from facefit.types import Evidence

__all__ = [
    "ConditionerTests",
    "DenoiserBackendTests",
    "FaceDetectorTests",
    "FaceEncoderTests",
    "LossTests",
    "RetrieverTests",
    "SamplerTests",
    "SketchExtractorTests",
    "TextEncoderTests",
    "fake_distribution",
    "random_faces",
    "tiny_generator",
]


def random_faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` smooth random uint8 RGB images of ``size``×``size``, distinct per index."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 8, 8, 3)).astype(np.float32)
    reps = -(-size // 8)
    images = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :size, :size]
    noise = rng.normal(0, 8, size=images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


def fake_distribution(site: Path, name: str, version: str, entry_points: dict[str, str]) -> Path:
    """Write a ``NAME-VERSION.dist-info`` with ``facefit`` entry points into ``site``.

    Put ``site`` (and the plugin's source folder) on ``sys.path`` and
    :func:`importlib.metadata.entry_points` finds the package as if installed.
    """
    dist = Path(site) / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dist


class _PluginTests:
    """Checks every kind shares: class attributes, host options and registration by name."""

    interface: ClassVar[type]
    kind: ClassVar[str]
    plugin_name: ClassVar[str | None] = None
    """The name your plugin registers; when set, it must be found in the registry."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.interface = find_kind(cls.kind).interface  # one table: facefit.kinds

    def make(self) -> Any:
        """Return an instance of the implementation under test."""
        raise NotImplementedError("define make() in your test class")

    @pytest.fixture
    def impl(self) -> Any:
        return self.make()

    def test_is_an_implementation_of_the_interface(self, impl: Any) -> None:
        assert isinstance(impl, self.interface)
        assert isinstance(type(impl).name, str) and type(impl).name

    def test_declares_only_host_options_its_kind_is_offered(self, impl: Any) -> None:
        offered = find_kind(self.kind).host_options
        declared = tuple(getattr(type(impl), "host_options", ()))
        assert set(declared) <= set(offered), (
            f"host_options {declared} names options facefit does not offer a {self.kind} "
            f"(offered: {sorted(offered)})"
        )

    def test_registered_under_its_name(self) -> None:
        if self.plugin_name is None:
            pytest.skip("set plugin_name to check registration")
        from facefit.registry import Registry

        registry = Registry.load()
        assert self.plugin_name in registry.list(self.kind), (
            f"{self.plugin_name!r} is not registered as a {self.kind}; "
            f"check your entry point in the {ENTRY_POINT_GROUP!r} group "
            f"(failures: {[str(f) for f in registry.failures]})"
        )


class FaceDetectorTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.FaceDetector`.

    Define ``make()`` and ``face_image()``: an ``(H, W, 3)`` uint8 RGB image in which
    your detector finds exactly one face.
    """

    kind = "face_detector"

    def face_image(self) -> np.ndarray:
        raise NotImplementedError("define face_image() returning an RGB image with one face")

    def test_finds_the_face_with_five_landmarks_inside_its_box(self, impl) -> None:
        image = self.face_image()
        found = impl.detect(image)
        assert len(found) == 1, f"expected one face, found {len(found)}"
        face = found[0]
        assert isinstance(face, interfaces.Detection)
        assert np.asarray(face.landmarks).shape == (5, 2)
        x, y, w, h = face.box
        assert w > 0 and h > 0 and 0.0 <= face.score <= 1.0
        inside = (face.landmarks >= [x, y]) & (face.landmarks <= [x + w, y + h])
        assert inside.all(), "landmarks must lie inside the face's box"

    def test_a_blank_image_has_no_face(self, impl) -> None:
        assert impl.detect(np.full((128, 128, 3), 128, np.uint8)) == []

    def test_faces_are_sorted_best_first(self, impl) -> None:
        image = self.face_image()
        twice = np.concatenate([image, image[:, ::-1]], axis=1)
        scores = [d.score for d in impl.detect(np.ascontiguousarray(twice))]
        assert scores == sorted(scores, reverse=True)


class FaceEncoderTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.FaceEncoder`."""

    kind = "face_encoder"
    atol: ClassVar[float] = 1e-4

    def test_attributes(self, impl: interfaces.FaceEncoder) -> None:
        assert isinstance(impl.dim, int) and impl.dim > 0
        assert isinstance(impl.input_size, int) and impl.input_size >= 16
        assert isinstance(impl.version, str) and impl.version

    def test_embeddings_are_normalized_with_the_declared_shape(self, impl) -> None:
        vectors = impl.embed(random_faces(3, impl.input_size))
        assert vectors.shape == (3, impl.dim) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_deterministic_and_batch_independent(self, impl) -> None:
        faces = random_faces(4, impl.input_size, seed=1)
        batch = impl.embed(faces)
        np.testing.assert_allclose(impl.embed(faces), batch, atol=self.atol)
        single = np.concatenate([impl.embed(f) for f in faces])
        np.testing.assert_allclose(single, batch, atol=self.atol)

    def test_different_faces_give_different_embeddings(self, impl) -> None:
        a, b = impl.embed(random_faces(2, impl.input_size, seed=2))
        assert float(a @ b) < 0.9999

    def test_wrong_crop_size_is_a_clear_error(self, impl) -> None:
        with pytest.raises(InputError, match=str(impl.input_size)):
            impl.embed(random_faces(1, impl.input_size + 8))


class TextEncoderTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.TextEncoder`."""

    kind = "text_encoder"

    def test_fixed_token_shape_and_pooled_norm(self, impl) -> None:
        out = impl.encode(["a man with glasses", "a smiling young woman with long golden hair"])
        assert out.tokens.shape == (2, impl.num_tokens, impl.dim)
        assert out.mask.shape == (2, impl.num_tokens) and out.mask.dtype == bool
        assert out.mask[:, 0].all()
        np.testing.assert_allclose(np.linalg.norm(out.pooled, axis=1), 1.0, atol=1e-4)

    def test_long_text_is_truncated_to_num_tokens(self, impl) -> None:
        out = impl.encode([" ".join(["face"] * (impl.num_tokens * 4))])
        assert out.tokens.shape[1] == impl.num_tokens


class SketchExtractorTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.SketchExtractor`."""

    kind = "sketch_extractor"

    def test_grey_drawing_of_the_same_size(self, impl) -> None:
        photo = random_faces(1, 64)[0]
        drawing = impl.extract(photo)
        assert drawing.shape == (64, 64) and drawing.dtype == np.uint8

    def test_flat_image_is_mostly_white_paper(self, impl) -> None:
        drawing = impl.extract(np.full((64, 64, 3), 128, np.uint8))
        assert drawing.mean() > 200


class ConditionerTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.Conditioner`.

    Define ``make()`` and ``evidence()`` (an :class:`Evidence` with the modality).
    """

    kind = "conditioner"

    def evidence(self) -> Evidence:
        raise NotImplementedError("define evidence() returning Evidence with your modality")

    def test_present_condition_has_declared_shapes(self, impl) -> None:
        cond = impl(self.evidence())
        assert cond.present and cond.modality == impl.modality
        if impl.num_tokens:
            assert tuple(cond.tokens.shape) == (impl.num_tokens, impl.dim)
        if impl.channels:
            assert tuple(cond.spatial.shape) == (impl.channels, impl.image_size, impl.image_size)

    def test_a_reference_conditioner_declares_its_encoder_and_aligns(self, impl) -> None:
        if impl.modality != "reference":
            pytest.skip("only a reference conditioner embeds faces for the pipeline")
        assert isinstance(impl.encoder, interfaces.FaceEncoder), (
            "set .encoder: the pipeline embeds the candidates that guide the next round with it"
        )
        size = impl.encoder.input_size
        crop = impl.aligned(random_faces(1, 2 * size)[0])  # a square image: an aligned crop
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8

    def test_missing_modality_gives_the_null_condition(self, impl) -> None:
        other = "text" if impl.modality != "text" else "sketch"
        evidence = (
            Evidence(text="a face")
            if other == "text"
            else Evidence(sketch=np.full((64, 64), 255, np.uint8))
        )
        cond = impl(evidence)
        null = impl.null()
        assert not cond.present and not null.present
        for a, b in ((cond.tokens, null.tokens), (cond.spatial, null.spatial)):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.shape == b.shape and not a.any()


class RetrieverTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.Retriever`; ``make()`` gets no data.

    A persistent gallery (``facefit gallery build``) needs every optional ability:
    ``len``, ``remove``, ``get_vectors``, ``params`` and ``save``/``load``, so they are
    checked too. Set ``persistent = False`` for a retriever meant for in-memory
    search only: those checks are then skipped, and galleries refuse to save it.
    """

    kind = "retriever"
    dim: ClassVar[int] = 16
    persistent: ClassVar[bool] = True

    def _data(self, n: int = 200) -> np.ndarray:
        rng = np.random.default_rng(0)
        v = rng.normal(size=(n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _filled(self, impl: Any, n: int = 200) -> np.ndarray:
        data = self._data(n)
        impl.add(np.arange(len(data)), data)
        return data

    def _needs_persistence(self) -> None:
        if not self.persistent:
            pytest.skip("persistent = False: this retriever cannot back a saved gallery")

    def test_finds_each_item_as_its_own_nearest_neighbour(self, impl) -> None:
        data = self._filled(impl)
        scores, labels = impl.search(data[:20], k=5)
        assert scores.shape == labels.shape == (20, 5)
        assert (labels[:, 0] == np.arange(20)).all()
        assert (np.diff(scores, axis=1) <= 1e-6).all(), "scores must be best first"

    def test_wrong_dimension_is_a_clear_error(self, impl) -> None:
        with pytest.raises(InputError, match=str(self.dim)):
            impl.add(np.arange(2), np.zeros((2, self.dim + 1), np.float32))

    def test_search_breadth_is_declared_and_settable(self, impl) -> None:
        spec = impl.search_breadth
        if spec is None:
            assert impl.breadth is None
            with pytest.raises(PluginError):
                impl.set_breadth(1)
            return
        assert spec.scale in ("count", "share")
        current = impl.breadth
        assert isinstance(current, (int, float)), f"{spec.option} must be a number"
        impl.set_breadth(current)
        assert impl.breadth == current
        assert spec.option in impl.params(), "the breadth must be kept when a gallery is saved"

    def test_len_counts_the_items(self, impl) -> None:
        self._needs_persistence()
        assert len(impl) == 0
        self._filled(impl, 50)
        assert len(impl) == 50

    def test_get_vectors_returns_what_was_added(self, impl) -> None:
        self._needs_persistence()
        data = self._filled(impl, 50)
        got = impl.get_vectors(np.array([3, 0, 49]))
        np.testing.assert_allclose(got, data[[3, 0, 49]], atol=1e-3)

    def test_removed_items_are_never_found(self, impl) -> None:
        self._needs_persistence()
        data = self._filled(impl, 50)
        impl.remove(np.array([0, 7]))
        assert len(impl) == 48
        _, labels = impl.search(data[[0, 7]], k=5)
        assert not np.isin(labels, [0, 7]).any()
        with pytest.raises(InputError):
            impl.remove(np.array([0]))  # already gone: an unknown label

    def test_params_are_plain_json_values(self, impl) -> None:
        self._needs_persistence()
        import json

        params = impl.params()
        assert json.loads(json.dumps(params)) == params, "params() goes into manifest.json"

    def test_save_and_load_search_the_same(self, impl, tmp_path: Path) -> None:
        self._needs_persistence()
        data = self._filled(impl)
        before = impl.search(data[:10], k=5)
        names = impl.save(tmp_path, "index")
        assert names and all((tmp_path / n).is_file() for n in names)
        assert all(n.startswith("index") for n in names), "files must be named stem.*"
        fresh = self.make()
        fresh.load(tmp_path, "index")
        after = fresh.search(data[:10], k=5)
        assert len(fresh) == len(impl)
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_allclose(after[0], before[0], atol=1e-5)

    def test_a_gallery_saves_and_reopens_it(self, impl, tmp_path: Path) -> None:
        """What ``facefit gallery build`` does with a retriever, end to end."""
        self._needs_persistence()
        from facefit.gallery import EncoderInfo, GalleryIndex

        gallery = GalleryIndex.create(EncoderInfo("test-encoder", "1", self.dim), retriever=impl)
        data = self._data(20)
        gallery.add(data, [f"person{i // 2}" for i in range(20)])
        gallery.save(tmp_path / "g")
        plugin = self.plugin_name
        if plugin is None:
            pytest.skip("set plugin_name: reopening creates the retriever by its plugin name")
        reopened = GalleryIndex.load(tmp_path / "g")
        assert reopened.search(data[4], k=1)[0].identity == "person2"


class DenoiserBackendTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.DenoiserBackend`.

    Define ``make()`` and ``reference()``: the eager callable to compare with, and
    ``inputs()`` returning ``(sample, timestep, encoder_hidden_states)``.
    """

    kind = "denoiser_backend"
    atol: ClassVar[float] = 1e-4

    def reference(self) -> Any:
        raise NotImplementedError("define reference() returning the eager model")

    def inputs(self) -> tuple[Any, Any, Any]:
        raise NotImplementedError("define inputs() returning (sample, timestep, tokens)")

    def test_matches_the_eager_model(self, impl) -> None:
        import torch

        sample, timestep, tokens = self.inputs()
        with torch.no_grad():
            expected = self.reference()(sample, timestep, encoder_hidden_states=tokens)
            expected = getattr(expected, "sample", expected)
            got = impl(sample, timestep, tokens)
        # the prediction has the model's output channels: a denoiser that takes spatial
        # evidence concatenated to the sample returns fewer channels than it takes
        assert got.shape == expected.shape
        assert float((got - expected).abs().max()) <= self.atol

    def test_close_twice_is_safe(self, impl) -> None:
        impl.close()
        impl.close()


def tiny_generator(seed: int = 0) -> Any:
    """A tiny random :class:`~facefit.generator.FaceGenerator` (16×16): a sampler's test model."""
    import torch

    from facefit.generator import FaceGenerator

    torch.manual_seed(seed)
    return FaceGenerator(
        image_size=16,
        block_out_channels=(8, 16),
        attention_levels=(False, True),
        cross_attention_dim=16,
        attention_heads=2,
        norm_num_groups=4,
        identity_dim=8,
        identity_tokens=2,
        text_tokens=4,
        text_dim=12,
    ).eval()


class _CountingDenoiser(interfaces.DenoiserBackend):
    name = "counting"

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def __call__(self, sample: Any, timestep: Any, encoder_hidden_states: Any) -> Any:
        self.calls += 1
        return self.inner(sample, timestep, encoder_hidden_states)


class SamplerTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.Sampler`.

    Define ``make()`` returning your sampler bound to ``self.generator()`` (a tiny
    random model, :func:`tiny_generator`, unless you override it). ``denoiser()``
    (default: the eager backend of that model) and ``conditions()`` (default: the
    photo domain only) may be overridden too. The checks include the ``on_step``
    contract the pipeline's progress and cancellation rely on.
    """

    kind = "sampler"
    steps: ClassVar[int] = 3

    def generator(self) -> Any:
        if getattr(self, "_generator", None) is None:
            self._generator = tiny_generator()
        return self._generator

    def denoiser(self) -> Any:
        from facefit.registry import Registry

        model = self.generator()
        return Registry.load().create_hosted("denoiser_backend", "eager", {"model": model.denoiser})

    def conditions(self) -> list[Any]:
        from facefit.generator.conditions import domain_condition

        return [domain_condition("photo")]

    def _sample(self, impl: Any, **changes: Any) -> np.ndarray:
        options = {"num_images": 2, "steps": self.steps, "guidance": 2.0, "seed": 0, **changes}
        return impl.sample(self.denoiser(), self.conditions(), **options)

    def test_images_of_the_generator_size(self, impl) -> None:
        images = self._sample(impl)
        size = self.generator().image_size
        assert images.shape == (2, size, size, 3) and images.dtype == np.uint8

    def test_same_seed_same_images_other_seed_other_images(self, impl) -> None:
        a, b = self._sample(impl), self._sample(impl)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, self._sample(impl, seed=1))

    def _needs_step_reports(self, impl: Any) -> None:
        if not impl.reports_steps:
            pytest.skip("the sampler does not declare reports_steps (no on_step)")

    def test_on_step_follows_every_step(self, impl) -> None:
        self._needs_step_reports(impl)
        done: list[int] = []
        self._sample(impl, on_step=done.append)
        assert done == list(range(1, self.steps + 1)), (
            "call on_step(n) after step n: the pipeline's progress and cancel use it"
        )

    def test_raising_from_on_step_stops_sampling_within_one_step(self, impl) -> None:
        self._needs_step_reports(impl)
        counting = _CountingDenoiser(self.denoiser())

        def stop(done: int) -> None:
            raise KeyboardInterrupt(f"stop after step {done}")

        with pytest.raises(KeyboardInterrupt, match="stop after step 1"):
            impl.sample(
                counting,
                self.conditions(),
                num_images=1,
                steps=self.steps,
                guidance=2.0,
                seed=0,
                on_step=stop,
            )
        assert counting.calls == 1, "sampling went on after on_step raised"

    def test_no_steps_is_a_clear_error(self, impl) -> None:
        with pytest.raises(InputError):
            self._sample(impl, steps=0)

    def test_denoise_runs_a_batch_when_declared_else_refuses(self, impl) -> None:
        import torch

        from facefit.generator.conditions import ConditionTensors

        model = self.generator()
        size = model.image_size
        with torch.inference_mode():
            tensors = model.conditions_to_tensors(self.conditions())
            spatial, tokens = model.encode_conditions(ConditionTensors.cat([tensors, tensors]))
            noise = torch.randn((2, 3, size, size), generator=torch.Generator().manual_seed(0))
            call = lambda: impl.denoise(  # noqa: E731
                self.denoiser(), spatial, tokens, noise, steps=self.steps, guidance=1.0, seed=0
            )
            if not impl.batches:
                with pytest.raises(PluginError):
                    call()
                return
            x = call()
        assert tuple(x.shape) == (2, 3, size, size) and torch.isfinite(x).all()


class LossTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.Loss`.

    Define ``make()``; override ``inputs()`` when your loss needs more than random
    ``(4, 3, 16, 16)`` prediction, target, x0 and x0_pred tensors and timesteps. A
    loss that keeps running statistics (a ``torch.nn.Module`` whose buffers move in
    training mode, like AdaFace's norm statistics) is returned by ``make()`` in eval
    mode: the same inputs must then give the same loss.
    """

    kind = "loss"

    def inputs(self) -> interfaces.LossInputs:
        import torch

        g = torch.Generator().manual_seed(0)
        shape = (4, 3, 16, 16)
        prediction = torch.randn(shape, generator=g, requires_grad=True)
        x0_pred = torch.rand(shape, generator=g).mul(2).sub(1).requires_grad_()
        return interfaces.LossInputs(
            prediction=prediction,
            target=torch.randn(shape, generator=g),
            x0=torch.rand(shape, generator=g).mul(2).sub(1),
            x0_pred=x0_pred,
            timesteps=torch.randint(0, 1000, (4,), generator=g),
        )

    def test_a_finite_scalar(self, impl) -> None:
        import torch

        value = impl(self.inputs())
        assert isinstance(value, torch.Tensor) and value.dim() == 0
        assert torch.isfinite(value)

    def test_deterministic(self, impl) -> None:
        assert impl(self.inputs()).item() == impl(self.inputs()).item()

    def test_gradients_reach_the_model_output(self, impl) -> None:
        inputs = self.inputs()
        impl(inputs).backward()
        grads = [t.grad for t in (inputs.prediction, inputs.x0_pred) if t is not None]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), (
            "the loss must be differentiable in prediction or x0_pred"
        )
