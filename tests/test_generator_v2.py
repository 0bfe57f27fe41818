"""Generator v2: global evidence through adaptive group norm, and the reference face image."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from facefit.errors import InputError
from facefit.generator import FaceGenerator
from facefit.generator.conditions import conditions_to_tensors, empty_conditions
from facefit.generator.noise import noise_scheduler, training_target
from facefit.text_agreement import ATTRIBUTE_FEATURES, attribute_features, parse_description
from facefit.types import Condition
from tests.generator_helpers import TINY, single_thread, tiny_generator  # noqa: F401 (autouse)

V2 = {"conditioning": "adanorm", "reference_image": True, "prediction_type": "v_prediction"}


def _sizes(model):
    return model.condition_sizes()


def _one_hot(classes: torch.Tensor, dim: int) -> torch.Tensor:
    vectors = torch.zeros(len(classes), dim)
    vectors[torch.arange(len(classes)), classes] = 1.0
    return vectors


def _colour_batch(classes: torch.Tensor, size: int, identity_dim: int, embed=_one_hot):
    """Class 0 → red images, class 1 → blue; the class is given only as the identity vector."""
    x0 = -torch.ones(len(classes), 3, size, size)
    x0[classes == 0, 0] = 1.0
    x0[classes == 1, 2] = 1.0
    return x0, embed(classes, identity_dim)


def _as_identity(cond, vectors):
    n = len(vectors)
    return replace(cond, reference=vectors, reference_present=torch.ones(n))


def _as_stated_attributes(cond, vectors):
    n = len(vectors)
    return replace(cond, text_attributes=vectors, text_present=torch.ones(n))


def _train_colour(model, steps: int, cut: bool, embed=_one_hot, put=_as_identity) -> float:
    """Train on class → colour; return how far apart the two classes' x̂₀ are (red − blue)."""
    torch.manual_seed(0)
    noise = noise_scheduler(model)
    sizes = _sizes(model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        classes = torch.randint(0, 2, (16,))
        x0, vectors = _colour_batch(classes, sizes["image_size"], sizes["identity_dim"], embed)
        cond = empty_conditions(16, **sizes)
        if not cut:
            cond = put(cond, vectors)
        eps = torch.randn_like(x0)
        t = torch.randint(0, 1000, (16,))
        target = training_target(noise, x0, eps, t)
        loss = torch.nn.functional.mse_loss(model(noise.add_noise(x0, eps, t), t, cond), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    # sample both classes from the same noise: only the condition can tell them apart
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(**model.scheduler_config, timestep_spacing="trailing")
    scheduler.set_timesteps(10)
    classes = torch.tensor([0] * 4 + [1] * 4)
    _, vectors = _colour_batch(classes, sizes["image_size"], sizes["identity_dim"], embed)
    cond = put(empty_conditions(8, **sizes), vectors)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, sizes["image_size"], sizes["image_size"], generator=g).repeat(2, 1, 1, 1)
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t.repeat(8), cond), t, x).prev_sample
    red_minus_blue = (x[:, 0] - x[:, 2]).clamp(-2, 2).mean(dim=(1, 2))
    return float(red_minus_blue[:4].mean() - red_minus_blue[4:].mean())


@pytest.mark.parametrize("cut", [False, True], ids=["condition path", "path cut"])
def test_tiny_model_learns_a_global_condition_and_not_without_its_path(cut):
    model = tiny_generator(**V2)
    gap = _train_colour(model, steps=150, cut=cut)
    if cut:
        assert abs(gap) < 0.2, gap
    else:
        assert gap > 2.0, gap  # red items come out red, blue ones blue (at most 4)


@pytest.mark.parametrize("path", [True, False], ids=["attribute path", "no attribute path"])
def test_tiny_model_learns_stated_attributes_and_not_without_their_path(path):
    """Class 0 is stated "female", class 1 "not female"; the sentence says nothing."""
    model = tiny_generator(**V2, text_attributes=path)

    def stated(classes, _dim):
        return _one_hot(classes, len(ATTRIBUTE_FEATURES))

    gap = _train_colour(model, steps=150, cut=False, embed=stated, put=_as_stated_attributes)
    if path:
        assert gap > 2.0, gap
    else:
        assert abs(gap) < 0.2, gap


def test_text_condition_carries_the_stated_attributes_to_the_model():
    model = tiny_generator(**V2, text_attributes=True)
    sizes = _sizes(model)
    words = {"tokens": torch.randn(sizes["text_tokens"], sizes["text_dim"])}
    stated = torch.from_numpy(attribute_features(parse_description("a woman with red hair")))
    cond = Condition("text", vector=stated, **words)
    tensors = conditions_to_tensors([cond], **sizes)
    assert torch.equal(tensors.text_attributes[0], stated) and tensors.text_present[0] == 1
    assert not conditions_to_tensors([cond.null()], **sizes).text_attributes.any()
    assert not tensors.drop("text", torch.tensor([True])).text_attributes.any()
    with pytest.raises(InputError, match="stated-attribute vector"):
        conditions_to_tensors([Condition("text", vector=torch.ones(3), **words)], **sizes)
    # the stated attributes move the prediction; a model without the path ignores them
    with torch.no_grad():  # as if trained: the zero-initialised layers let the evidence in
        for p in model.parameters():
            if not p.any():
                p.normal_()
    x, t = torch.randn(1, 3, model.image_size, model.image_size), torch.tensor([900])
    unstated = replace(tensors, text_attributes=torch.zeros_like(tensors.text_attributes))
    assert not torch.allclose(model(x, t, tensors), model(x, t, unstated))
    plain = tiny_generator(**V2)
    with torch.no_grad():
        for p in plain.parameters():
            if not p.any():
                p.normal_()
    assert torch.equal(plain(x, t, tensors), plain(x, t, unstated))
    with pytest.raises(ValueError, match="adanorm"):
        tiny_generator(text_attributes=True)


def test_v2_has_no_cross_attention_and_one_global_token():
    model = tiny_generator(**V2)
    names = [n for n, _ in model.named_modules()]
    assert not any("attn" in n for n in names)
    assert model.denoiser.num_tokens == 1
    assert model.denoiser.in_channels == 3 + 2 + 4 + 4  # image, sketch, lq, reference image


def test_dropping_the_reference_image_gives_exactly_the_null_condition():
    model = tiny_generator(**V2)
    size = model.image_size
    vector = torch.randn(1, TINY["identity_dim"])
    face = torch.rand(3, size, size) * 2 - 1
    with_face = Condition("reference", tokens=vector, spatial=face)
    null = model.conditions_to_tensors([with_face.null()])
    empty = model.conditions_to_tensors([])
    for a, b in zip(model.encode_conditions(null), model.encode_conditions(empty)):
        assert torch.equal(a, b)
    given = model.conditions_to_tensors([with_face])
    assert given.reference_image_present.item() == 1.0
    dropped = given.drop("reference_image", torch.tensor([True])).drop(
        "reference", torch.tensor([True])
    )
    for a, b in zip(model.encode_conditions(dropped), model.encode_conditions(empty)):
        assert torch.equal(a, b)


def test_reference_image_reaches_the_prediction():
    model = tiny_generator(**V2)
    size = model.image_size
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised layers would hide any effect
            p.add_(torch.randn_like(p) * 0.05)
    vector = torch.randn(1, TINY["identity_dim"])
    a = model.conditions_to_tensors(
        [Condition("reference", tokens=vector, spatial=torch.ones(3, size, size))]
    )
    b = model.conditions_to_tensors(
        [Condition("reference", tokens=vector, spatial=-torch.ones(3, size, size))]
    )
    x = torch.randn(1, 3, size, size)
    t = torch.tensor([500])
    with torch.no_grad():
        assert not torch.allclose(model(x, t, a), model(x, t, b))


def test_v2_round_trips_through_save_and_load(tmp_path):
    model = tiny_generator(**V2)
    model.save_pretrained(tmp_path / "v2")
    loaded = FaceGenerator.from_pretrained(tmp_path / "v2")
    assert loaded.adanorm and loaded.config.reference_image
    cond = model.conditions_to_tensors([])
    x, t = torch.randn(1, 3, model.image_size, model.image_size), torch.tensor([10])
    with torch.no_grad():
        assert torch.allclose(model(x, t, cond), loaded(x, t, cond), atol=1e-5)


def test_old_cross_attention_model_ignores_the_reference_image():
    model = tiny_generator()
    assert not model.adanorm
    size = model.image_size
    vector = torch.randn(1, TINY["identity_dim"])
    a = model.conditions_to_tensors([Condition("reference", tokens=vector)])
    b = model.conditions_to_tensors(
        [Condition("reference", tokens=vector, spatial=torch.ones(3, size, size))]
    )
    x, t = torch.randn(1, 3, size, size), torch.tensor([500])
    with torch.no_grad():
        assert torch.equal(model(x, t, a), model(x, t, b))


# -- the loop steers v2 models with a reference face image ---------------------------------


@pytest.fixture(scope="module")
def v2_pipeline_parts(tmp_path_factory):
    from tests.pipeline_helpers import toy_config, toy_registry

    directory = tmp_path_factory.mktemp("v2") / "tiny-v2"
    model = tiny_generator(**V2)
    with torch.no_grad():  # zero-initialised layers would hide the evidence
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(directory)
    return toy_config, directory, toy_registry()


def _v2_pipeline(parts, gallery, **settings):
    from facefit.pipeline import Pipeline

    toy_config, directory, registry = parts
    config = toy_config(directory, rounds=2, stop_when_stable=0, **settings)
    return Pipeline(config, registry=registry, gallery=gallery)


def _recorded_faces(pipeline, monkeypatch):
    faces = []
    original = type(pipeline)._reference_condition

    def record(self, steering):
        faces.append(steering.face)
        return original(self, steering)

    monkeypatch.setattr(type(pipeline), "_reference_condition", record)
    return faces


def test_investigator_pick_is_the_next_rounds_reference_image(v2_pipeline_parts, monkeypatch):
    from facefit.pipeline import Choice
    from facefit.types import Evidence
    from tests.pipeline_helpers import toy_gallery, toy_sketch

    registry = v2_pipeline_parts[2]
    pipeline = _v2_pipeline(v2_pipeline_parts, toy_gallery(registry))
    faces = _recorded_faces(pipeline, monkeypatch)
    result = pipeline.run(
        Evidence(sketch=toy_sketch(), text="a man"),
        on_round=lambda trace: Choice(pick=1) if trace.round == 0 else None,
    )
    assert len(faces) == 1
    assert np.array_equal(faces[0], result.rounds[0].candidates[1].image)


def test_loop_steers_with_the_top_gallery_face_image(v2_pipeline_parts, monkeypatch, tmp_path):
    from facefit.gallery import GalleryIndex
    from facefit.imaging.images import load_image, save_image
    from facefit.types import Evidence
    from tests.pipeline_helpers import toy_sketch

    registry = v2_pipeline_parts[2]
    encoder = registry.create_face_encoder("tiny-face")
    gallery = GalleryIndex.create(encoder, retriever="exact", registry=registry)
    rng = np.random.default_rng(3)
    for i in range(3):
        face = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
        path = tmp_path / f"person{i}.png"
        save_image(path, face)
        gallery.add(encoder.embed(face[None]), f"person{i}", sources=[str(path)])
    pipeline = _v2_pipeline(v2_pipeline_parts, gallery)
    faces = _recorded_faces(pipeline, monkeypatch)
    result = pipeline.run(Evidence(sketch=toy_sketch(), text="a man"))
    reference = result.rounds[1].reference
    assert "face image of gallery person" in reference
    identity = reference.split("face image of gallery ")[1].split()[0]
    expected = load_image(tmp_path / f"{identity}.png")
    assert faces[0].shape == (16, 16, 3) and np.array_equal(faces[0], expected)


def test_loop_falls_back_to_the_candidate_when_the_gallery_keeps_no_image(
    v2_pipeline_parts, monkeypatch
):
    from facefit.types import Evidence
    from tests.pipeline_helpers import toy_gallery, toy_sketch

    registry = v2_pipeline_parts[2]
    pipeline = _v2_pipeline(v2_pipeline_parts, toy_gallery(registry))  # sources are not files
    faces = _recorded_faces(pipeline, monkeypatch)
    result = pipeline.run(Evidence(sketch=toy_sketch(), text="a man"))
    best = int(result.rounds[1].reference.split("candidate 0/")[1].split()[0])
    assert np.array_equal(faces[0], result.rounds[0].candidates[best].image)


def test_input_norm_gives_a_unit_norm_identity_its_share_of_the_global_vector():
    """A unit-norm 128-d embedding (0.09 per dimension, like SFace's) barely varies the
    global vector at initialisation; layer-normalized, it varies it as the domain does."""
    spread = {}
    for norm in (False, True):
        model = tiny_generator(**V2, identity_dim=128, global_input_norm=norm)
        vectors = torch.nn.functional.normalize(torch.randn(64, 128), dim=1)
        cond = empty_conditions(64, **model.condition_sizes())
        cond = cond.__class__(
            **{**cond.__dict__, "reference": vectors, "reference_present": torch.ones(64)}
        )
        with torch.no_grad():
            _, tokens = model.encode_conditions(cond)
        d = model.config.cross_attention_dim
        spread[norm] = float(tokens[:, 0, d : 2 * d].std(0).mean())  # the identity's part
    assert spread[True] > 0.1 and spread[True] > 5 * spread[False], spread  # 0.17 vs 0.014
