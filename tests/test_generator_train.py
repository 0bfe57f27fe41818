"""Training on a small generated pack: loss falls, runs resume exactly, files come out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from facefit.errors import ConfigError, InputError
from facefit.generator import load_generator
from facefit.generator.training.data import (
    Augmentation,
    TrainingBatches,
    TrainingPack,
    synthetic_pack,
)
from facefit.generator.training.trainer import TrainConfig, Trainer, load_train_config
from tests.generator_helpers import single_thread  # noqa: F401 (autouse fixture)

ARCHITECTURE = {
    "block_out_channels": [8, 16],
    "attention_levels": [False, True],
    "cross_attention_dim": 16,
    "attention_heads": 2,
    "norm_num_groups": 4,
    "identity_tokens": 2,
}


class TinyRecognizer(nn.Module):
    """A fixed random conv net standing in for SFace (takes 0–255 RGB)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.1)
        self.requires_grad_(False)

    def forward(self, x):
        return self.conv(x / 127.5 - 1).flatten(1)


@pytest.fixture(scope="module")
def pack():
    return synthetic_pack(n=24, image_size=16, identity_dim=8, text_tokens=4, text_dim=12)


def _config(tmp_path, **changes) -> TrainConfig:
    base = TrainConfig(
        pack=str(tmp_path / "pack.npz"),
        out=str(tmp_path / "run"),
        steps=4,
        batch_size=8,
        lr=3e-3,
        warmup_steps=1,
        device="cpu",
        checkpoint_every=1000,
        sample_every=1000,
        sample_steps=2,
        sample_count=2,
        model=dict(ARCHITECTURE),
        identity={"weight": 0.1, "threshold": 0.385, "alpha": 10.0, "t_limit": 200},
    )
    return dataclasses.replace(base, **changes)


def _trainer(tmp_path, pack, **changes) -> Trainer:
    torch.manual_seed(0)  # the recognizer's random weights must not depend on test order
    return Trainer(_config(tmp_path, **changes), pack=pack, recognizer=TinyRecognizer())


def test_loss_falls_on_generated_data(tmp_path, pack):
    trainer = _trainer(tmp_path, pack, steps=15, lr=5e-3)
    # a fixed evaluation batch, drawn from its own generators
    x0, cond = trainer.batches(16, torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(x0.shape, generator=g)
    timesteps = torch.randint(0, 1000, (16,), generator=g)

    def evaluate() -> float:
        with torch.no_grad():
            return float(trainer.compute_losses(x0, cond, noise, timesteps)["diffusion"])

    before = evaluate()
    last = trainer.fit(progress=False)
    after = evaluate()
    assert after < 0.7 * before, (before, after)
    assert np.isfinite(last["identity"]) and last["identity"] >= 0
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2  # steps 10, 15


def test_identity_loss_gradient_reaches_the_model(tmp_path, pack):
    trainer = _trainer(tmp_path, pack, identity={"weight": 1.0, "t_limit": 1000})
    x0, cond, noise, _ = trainer.draw()
    losses = trainer.compute_losses(x0, cond, noise, torch.full((8,), 50))
    losses["identity"].backward()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_an_interrupted_run_resumes_bit_exactly(tmp_path, pack):
    straight = _trainer(tmp_path / "a", pack, steps=4)
    straight.fit(progress=False)

    first = _trainer(tmp_path / "b", pack, steps=2)
    first.fit(progress=False)  # saves a checkpoint at the end
    second = _trainer(tmp_path / "b", pack, steps=4)
    assert second.resume() and second.step == 2
    second.fit(progress=False)

    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ema_a, ema_b = straight.ema_model().state_dict(), second.ema_model().state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_a_run_can_start_from_exported_weights(tmp_path, pack):
    first = _trainer(tmp_path / "a", pack, steps=2, export_fp16=False)
    first.fit(progress=False)
    exported = first.export()
    second = _trainer(tmp_path / "b", pack, steps=4)
    assert not second.resume()
    second.init_from(exported)
    assert second.step == 2
    ema = first.ema_model().state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in second.model.state_dict().items())
    second.fit(progress=False)
    assert second.step == 4
    other = _trainer(tmp_path / "c", pack, model={**ARCHITECTURE, "identity_tokens": 3})
    with pytest.raises(ConfigError, match="another configuration"):
        other.init_from(exported)


def test_a_run_can_add_the_stated_attributes_to_exported_weights(tmp_path, pack):
    """text_attributes may be switched on over weights trained without it: the new
    layer starts at zero, so the model starts exactly where the exported one was."""
    v2 = {**ARCHITECTURE, "conditioning": "adanorm", "prediction_type": "v_prediction"}
    first = _trainer(tmp_path / "a", pack, steps=2, export_fp16=False, model=v2)
    first.fit(progress=False)
    exported = first.export()
    grown = _trainer(tmp_path / "b", pack, steps=3, model={**v2, "text_attributes": True})
    grown.init_from(exported)
    assert not grown.model.attribute_proj.weight.any()
    x0, cond = grown.batches(4, torch.Generator().manual_seed(0))
    assert cond.text_attributes[cond.text_present > 0].any()  # the pack's sentences state some
    t = torch.full((4,), 900)
    with torch.no_grad():
        assert torch.equal(first.ema_model()(x0, t, cond), grown.model(x0, t, cond))
    grown.fit(progress=False)
    assert grown.model.attribute_proj.weight.any()  # and it learns
    # other settings still have to match
    other = _trainer(
        tmp_path / "c", pack, model={**v2, "text_attributes": True, "layers_per_block": 2}
    )
    with pytest.raises(ConfigError, match="another configuration"):
        other.init_from(exported)


def test_a_checkpoint_saved_before_a_model_setting_existed_resumes(tmp_path, pack):
    first = _trainer(tmp_path, pack, steps=2)
    first.fit(progress=False)
    path = first.latest_checkpoint()
    state = torch.load(path, weights_only=True)
    del state["model_config"]["global_input_norm"]  # added to the model after this run began
    torch.save(state, path)
    assert _trainer(tmp_path, pack, steps=4).resume() is True


def test_resume_refuses_another_architecture(tmp_path, pack):
    _trainer(tmp_path, pack, steps=1).fit(progress=False)
    other = _trainer(tmp_path, pack, model={**ARCHITECTURE, "identity_tokens": 3})
    with pytest.raises(ConfigError, match="different model configuration"):
        other.resume()


def test_export_loads_samples_and_draws_a_grid(tmp_path, pack):
    trainer = _trainer(tmp_path, pack, steps=2, export_fp16=True)
    trainer.fit(progress=False)
    directory = trainer.export()
    model = load_generator(directory)
    expected = {k: v.half().float() for k, v in trainer.ema_model().state_dict().items()}
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    card = (directory / "README.md").read_text()
    assert "steps: 2" in card and "CelebA (non-commercial research use only)" in card
    grid = trainer.sample_grid(tmp_path / "grid.png", model=model)
    from PIL import Image

    assert Image.open(grid).size == (4 * 16 * 2, 2 * 16 * 2)


def test_pack_round_trip_and_version_check(tmp_path, pack):
    path = pack.save(tmp_path / "p.npz")
    loaded = TrainingPack.load(path)
    names = ("photos", "sketches", "embeddings", "text_tokens", "sentences", "sources", "styles")
    for name in names:
        assert np.array_equal(getattr(loaded, name), getattr(pack, name)), name
    assert loaded.meta["synthetic"] is True
    older = dict(np.load(path))
    del older["styles"]  # packs from before sketch styles
    np.savez(tmp_path / "nostyles.npz", **older)
    assert (TrainingPack.load(tmp_path / "nostyles.npz").styles == -1).all()
    broken = dict(np.load(path))
    broken["meta"] = np.array('{"version": 99}')
    np.savez(tmp_path / "old.npz", **broken)
    with pytest.raises(InputError, match="rebuild it"):
        TrainingPack.load(tmp_path / "old.npz")


def test_batches_are_reproducible_and_drop_to_null(pack):
    batches = TrainingBatches(pack)
    x_a, c_a = batches(6, torch.Generator().manual_seed(1))
    x_b, c_b = batches(6, torch.Generator().manual_seed(1))
    assert x_a.shape == (6, 3, 16, 16) and torch.equal(x_a, x_b)
    assert all(torch.equal(getattr(c_a, k), getattr(c_b, k)) for k in c_a.__dict__)

    drop_all = Augmentation(drop={m: 1.0 for m in ("sketch", "lq", "text", "reference")})
    _, cond = TrainingBatches(pack, drop_all)(6, torch.Generator().manual_seed(2))
    for m in ("sketch", "lq", "text", "reference"):
        assert not getattr(cond, m).any() and not cond.present(m).any()


def test_sketch_domain_items_render_the_artist_sketch(pack):
    aug = Augmentation(sketch_domain=1.0, flip=0.0, drop={}, style_drop=0.0)
    x0, cond = TrainingBatches(pack, aug)(32, torch.Generator().manual_seed(3))
    to_sketch = cond.domain >= 1
    assert to_sketch.any() and (~to_sketch).any()
    assert not cond.sketch_present[to_sketch].any() and not cond.lq_present[to_sketch].any()
    assert torch.equal(x0[to_sketch][:, 0], x0[to_sketch][:, 1])  # grey target
    # every artist sketch of the synthetic pack has a style: its token is 2 + style
    assert (cond.domain[to_sketch] >= 2).all()


def test_sketch_targets_can_keep_their_reference_photo_more_often(pack):
    """``sketch_reference_image_drop`` sets the reference-image drop of sketch targets
    alone; photo targets keep ``drop["reference_image"]``; ``None`` changes nothing."""
    aug = dict(sketch_domain=0.5, flip=0.0, lookalike=0.0, style_drop=0.0)
    g = torch.Generator().manual_seed(5)
    _, cond = TrainingBatches(
        pack,
        Augmentation(**aug, drop={"reference_image": 1.0}, sketch_reference_image_drop=0.0),
    )(64, g)
    to_sketch = cond.domain >= 1
    assert to_sketch.any() and (~to_sketch).any()
    assert cond.reference_image_present[to_sketch].all()
    assert not cond.reference_image_present[~to_sketch].any()
    # None: the same draws, so the same batch as without the field
    same = [
        TrainingBatches(pack, Augmentation(**aug, drop={"reference_image": 0.5}, **extra))(
            16, torch.Generator().manual_seed(6)
        )[1]
        for extra in ({}, {"sketch_reference_image_drop": None})
    ]
    assert torch.equal(same[0].reference_image_present, same[1].reference_image_present)
    with pytest.raises(InputError, match="sketch_reference_image_drop"):
        Augmentation(sketch_reference_image_drop=1.5)


def test_text_only_items_keep_the_description_alone(pack):
    """``text_only`` turns photo targets with a description into words-alone items;
    sketch targets and items without text are untouched; 0 changes nothing."""
    aug = dict(sketch_domain=0.5, flip=0.0, style_drop=0.0, drop={})
    _, cond = TrainingBatches(pack, Augmentation(**aug, text_only=1.0))(
        64, torch.Generator().manual_seed(7)
    )
    photo_text = (cond.domain == 0) & (cond.text_present > 0)
    others = ~photo_text
    assert photo_text.any() and others.any()
    for modality in ("sketch", "lq", "reference", "reference_image"):
        present = getattr(cond, f"{modality}_present")
        assert not present[photo_text].any(), modality
    assert (cond.reference_present[others] > 0).all()  # drop={}: everything else kept
    assert (cond.reference_image_present[cond.domain >= 1] > 0).all()
    # 0: the same draws, so the same batch as without the field
    same = [
        TrainingBatches(pack, Augmentation(**aug, **extra))(16, torch.Generator().manual_seed(8))[1]
        for extra in ({}, {"text_only": 0.0})
    ]
    assert torch.equal(same[0].lq_present, same[1].lq_present)
    assert torch.equal(same[0].reference, same[1].reference)
    with pytest.raises(InputError, match="text_only"):
        Augmentation(text_only=-0.1)


def test_sketch_style_token_follows_the_pack_and_can_be_dropped(pack):
    from facefit.generator.conditions import DOMAINS, domain_condition, sketch_domain

    g = torch.Generator().manual_seed(4)
    batches = TrainingBatches(pack, Augmentation(sketch_domain=1.0, drop={}, style_drop=0.0))
    seen = set()
    for _ in range(4):
        idx_g = g.get_state()
        _, cond = batches(16, g)
        g2 = torch.Generator()
        g2.set_state(idx_g)
        idx = torch.multinomial(batches._weights, 16, replacement=True, generator=g2)
        styles = torch.from_numpy(pack.styles.astype(np.int64))[idx]
        real = torch.from_numpy(pack.real_sketch)[idx]
        assert torch.equal(cond.domain, torch.where(real, 2 + styles.clamp(min=0), 0))
        seen |= set(cond.domain.tolist())
    assert {2, 3, 4} <= seen
    plain = TrainingBatches(pack, Augmentation(sketch_domain=1.0, drop={}, style_drop=1.0))
    assert set(plain(16, g)[1].domain.tolist()) <= {0, 1}
    assert DOMAINS[2 + 1] == sketch_domain(1) == "sketch-style1"
    assert domain_condition(sketch_domain(2)).tokens[0, 4] == 1
    with pytest.raises(InputError, match="sketch style"):
        sketch_domain(3)


def test_train_config_file_and_cli(tmp_path, pack):
    from click.testing import CliRunner

    from facefit.cli import main

    pack.save(tmp_path / "pack.npz")
    (tmp_path / "train.toml").write_text(
        """
[train]
pack = "pack.npz"
out = "run"
steps = 2
batch_size = 4
sample_steps = 2
sample_count = 1
device = "cpu"

[model]
block_out_channels = [8, 16]
attention_levels = [false, true]
cross_attention_dim = 16
attention_heads = 2
norm_num_groups = 4

[data]
lq_sizes = [4, 8]

[loss.identity]
weight = 0.0
"""
    )
    config = load_train_config(tmp_path / "train.toml")
    assert config.pack == str(tmp_path / "pack.npz") and config.data.lq_sizes == (4, 8)
    result = CliRunner().invoke(main, ["train", str(tmp_path / "train.toml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    assert list((tmp_path / "run" / "samples").glob("step-*.png"))

    exported = CliRunner().invoke(
        main, ["train", "export", str(tmp_path / "train.toml"), "--out", str(tmp_path / "exp")]
    )
    assert exported.exit_code == 0 and "step 2 exported" in exported.output, exported.output
    from facefit.generator.model import FaceGenerator

    final = FaceGenerator.from_pretrained(tmp_path / "run" / "model").state_dict()
    again = FaceGenerator.from_pretrained(tmp_path / "exp").state_dict()
    assert all(torch.equal(final[k], again[k]) for k in final)
    kept = CliRunner().invoke(
        main, ["train", "export", str(tmp_path / "train.toml"), "--out", str(tmp_path / "exp")]
    )
    assert kept.exit_code != 0 and "--force" in kept.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exp.")]  # no staging left

    timed = CliRunner().invoke(main, ["train", str(tmp_path / "train.toml"), "--benchmark", "1"])
    assert timed.exit_code == 0 and "s/step" in timed.output, timed.output

    (tmp_path / "bad.toml").write_text('[train]\npack = "p"\nout = "o"\nstep = 3\n')
    bad = CliRunner().invoke(main, ["train", str(tmp_path / "bad.toml")])
    assert bad.exit_code == 2 and "unknown [train] key(s) step" in bad.output


def test_model_table_may_not_contradict_the_pack(tmp_path, pack):
    with pytest.raises(ConfigError, match="must match the training pack"):
        _trainer(tmp_path, pack, model={**ARCHITECTURE, "text_tokens": 9})


@pytest.mark.shared_data
@pytest.mark.slow
def test_pack_from_the_shared_data_leaves_out_the_development_split(tmp_path, shared_data):
    from facefit.datasets.splits import celeba_split, dev_persons
    from facefit.errors import WeightsNotFoundError
    from facefit.generator.training.pack import build_pack

    try:
        built = build_pack(shared_data, tmp_path / "p.npz", limit=3, progress=False)
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed: {exc}")
    # identities are persons, and none of them is held out
    assert not dev_persons(shared_data) & set(built.identities.tolist())
    assert built.meta["celeba_dev_fingerprint"] == celeba_split(shared_data).fingerprint
    assert built.photos.shape[1:] == (64, 64, 3) and built.sketches.shape[1:] == (64, 64)
    assert built.text_shape == (48, 384) and built.identity_dim == 128
    counts = TrainingPack.load(tmp_path / "p.npz").meta["counts"]
    assert counts["fs2k"] + counts["celeba"] == len(built) > 0


def test_example_recipes_parse_and_the_gpu_model_fits_40_mb():
    from pathlib import Path

    from facefit.generator import FaceGenerator

    recipes = Path(__file__).resolve().parents[1] / "examples" / "train"
    for name in ("cpu-small", "cpu-tiny", "gpu-64"):
        config = load_train_config(recipes / f"{name}.toml")
        assert config.pack.endswith("out/pack-64.npz") and config.identity["t_limit"] == 200
    gpu = FaceGenerator(**load_train_config(recipes / "gpu-64.toml").model)
    assert gpu.parameter_count() * 2 <= 40e6  # fp16 bytes of the shipped EMA weights


def test_the_v2_recipes_differ_only_where_their_comments_say():
    """cpu-v2n = cpu-v2 + input norm + more spatial dropout; cpu-v2v = cpu-v2n + plain v loss;
    cpu-v2s = cpu-v2v + more mugshot -> sketch items; cpu-v2t = cpu-v2s + stated attributes."""
    from pathlib import Path

    recipes = Path(__file__).resolve().parents[1] / "examples" / "train"
    v2, v2n, v2v = (load_train_config(recipes / f"cpu-{n}.toml") for n in ("v2", "v2n", "v2v"))
    assert v2n.model == {**v2.model, "global_input_norm": True}
    assert v2n.data.drop == {**v2.data.drop, "sketch": 0.7, "lq": 0.8, "reference_image": 0.7}
    assert (v2.snr_gamma, v2n.snr_gamma, v2v.snr_gamma) == (5.0, 5.0, 0.0)
    assert v2v.model == v2n.model and v2v.data == v2n.data
    assert len({v2.out, v2n.out, v2v.out}) == 3 and v2v.pack == v2n.pack == v2.pack
    # cpu-v2s = cpu-v2v + the mugshot -> sketch task more often
    v2s = load_train_config(recipes / "cpu-v2s.toml")
    assert v2s.model == v2v.model and v2s.snr_gamma == v2v.snr_gamma and v2s.pack == v2v.pack
    assert v2s.data == dataclasses.replace(
        v2v.data, sketch_domain=0.4, sketch_reference_image_drop=0.05
    )
    assert v2s.out != v2v.out
    # cpu-v2t = cpu-v2s + the stated attributes
    v2t = load_train_config(recipes / "cpu-v2t.toml")
    assert v2t.model == {**v2s.model, "text_attributes": True}
    assert v2t.data == v2s.data and v2t.snr_gamma == v2s.snr_gamma and v2t.pack == v2s.pack
    assert len({v2s.out, v2t.out, v2v.out}) == 3
    # cpu-v2u = cpu-v2t + words-alone items
    v2u = load_train_config(recipes / "cpu-v2u.toml")
    assert v2u.model == v2t.model and v2u.snr_gamma == v2t.snr_gamma and v2u.pack == v2t.pack
    assert v2u.data == dataclasses.replace(v2t.data, text_only=0.3) and v2u.out != v2t.out


def test_command_line_paths_are_relative_to_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "t.toml").write_text('[train]\npack = "p.npz"\nout = "o"\n')
    monkeypatch.chdir(tmp_path)
    config = load_train_config("cfg/t.toml", pack="elsewhere.npz")
    assert config.pack == str(tmp_path / "elsewhere.npz")
    assert config.out == str(tmp_path / "cfg" / "o")
