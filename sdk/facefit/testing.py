"""Conformance tests a plugin author runs on their implementation.

Subclass the mixin for your kind of plugin in a pytest test module and say how
to make your implementation; pytest then runs every check on it::

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
from facefit.errors import InputError
from facefit.plugins import ENTRY_POINT_GROUP
from facefit.types import Evidence

__all__ = [
    "ConditionerTests",
    "DenoiserBackendTests",
    "FaceEncoderTests",
    "RetrieverTests",
    "SketchExtractorTests",
    "TextEncoderTests",
    "fake_distribution",
    "random_faces",
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
    """Checks every kind shares: class attributes and registration by name."""

    interface: ClassVar[type]
    kind: ClassVar[str]
    plugin_name: ClassVar[str | None] = None
    """The name your plugin registers; when set, it must be found in the registry."""

    def make(self) -> Any:
        """Return an instance of the implementation under test."""
        raise NotImplementedError("define make() in your test class")

    @pytest.fixture
    def impl(self) -> Any:
        return self.make()

    def test_is_an_implementation_of_the_interface(self, impl: Any) -> None:
        assert isinstance(impl, self.interface)
        assert isinstance(type(impl).name, str) and type(impl).name

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


class FaceEncoderTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.FaceEncoder`."""

    interface = interfaces.FaceEncoder
    kind = "face_encoder"
    atol: ClassVar[float] = 1e-4

    def test_attributes(self, impl: interfaces.FaceEncoder) -> None:
        assert isinstance(impl.dim, int) and impl.dim > 0
        assert isinstance(impl.input_size, int) and impl.input_size >= 16
        assert isinstance(impl.version, str) and impl.version

    def test_embeddings_are_normalised_with_the_declared_shape(self, impl) -> None:
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

    interface = interfaces.TextEncoder
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

    interface = interfaces.SketchExtractor
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

    interface = interfaces.Conditioner
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
    """Conformance checks for :class:`facefit.interfaces.Retriever`; ``make()`` gets no data."""

    interface = interfaces.Retriever
    kind = "retriever"
    dim: ClassVar[int] = 16

    def _data(self, n: int = 200) -> np.ndarray:
        rng = np.random.default_rng(0)
        v = rng.normal(size=(n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def test_finds_each_item_as_its_own_nearest_neighbour(self, impl) -> None:
        data = self._data()
        impl.add(np.arange(len(data)), data)
        scores, labels = impl.search(data[:20], k=5)
        assert scores.shape == labels.shape == (20, 5)
        assert (labels[:, 0] == np.arange(20)).all()
        assert (np.diff(scores, axis=1) <= 1e-6).all(), "scores must be best first"

    def test_wrong_dimension_is_a_clear_error(self, impl) -> None:
        with pytest.raises(InputError, match=str(self.dim)):
            impl.add(np.arange(2), np.zeros((2, self.dim + 1), np.float32))


class DenoiserBackendTests(_PluginTests):
    """Conformance checks for :class:`facefit.interfaces.DenoiserBackend`.

    Define ``make()`` and ``reference()``: the eager callable to compare with, and
    ``inputs()`` returning ``(sample, timestep, encoder_hidden_states)``.
    """

    interface = interfaces.DenoiserBackend
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
