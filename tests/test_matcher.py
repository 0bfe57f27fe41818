"""The sketch matcher: graph split, training, export, the plugin and the eval mode.

Everything runs on a tiny SFace-shaped ONNX graph and small generated faces; the one
test on real data skips when ``../shared/data`` is absent.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from facefit import Registry
from facefit.datasets.persons import Persons
from facefit.errors import InputError, WeightsNotFoundError
from facefit.matcher.card import model_card
from facefit.matcher.data import (
    AlignedPairs,
    DevExclusions,
    Pair,
    SourcePersons,
    fs2k_training_pairs,
    synthetic_pairs,
)
from facefit.matcher.files import (
    export_onnx,
    load_matcher_onnx,
    load_matcher_torch,
    read_config,
    resolve_matcher_dir,
    save_matcher,
)
from facefit.matcher.model import GraphTail, graph_prefix, load_base, run_prefix
from facefit.matcher.train import (
    TrainSettings,
    class_labels,
    fit,
    rank_metrics,
    split_validation,
)
from facefit.testing import FaceEncoderTests, random_faces
from facefit_plugins.face_encoders.matcher import SketchMatcherEncoder
from tests.sface_helpers import write_tiny_sface as write_tiny_sface_graph

DIM = 32
SPLIT = "p"


def write_tiny_sface(path, seed: int = 0) -> None:
    """A small SFace-shaped base: its PReLU output ``SPLIT`` is where the tail starts."""
    write_tiny_sface_graph(
        path, dim=DIM, seed=seed, first_stride=4, asymmetric_pad=False, weights_as_inputs=False
    )


def _ort(model, faces: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    blob = np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32)
    return session.run(None, {session.get_inputs()[0].name: blob})[0]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny_base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny_sface.onnx"
    write_tiny_sface(path)
    return path


@pytest.fixture(scope="module")
def tiny_matcher(tiny_base_path, tmp_path_factory):
    """A saved matcher whose tail weights differ from the base's."""
    base = load_base(tiny_base_path)
    tail = GraphTail(base, SPLIT)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in tail.trainable():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    config = {
        "name": "sketch-matcher",
        "dim": DIM,
        "input_size": 112,
        "split": SPLIT,
        "trained": tail.trainable_names(),
    }
    directory = tmp_path_factory.mktemp("matcher") / "tiny"
    save_matcher(directory, export_onnx(base, tail.onnx_weights()), config, card=model_card(config))
    return directory


def _face_data(n: int, seed: int = 0, source: str = "fs2k") -> AlignedPairs:
    """``n`` identities: a smooth random photo and a "sketch" (grey, inverted, noisy)."""
    rng = np.random.default_rng(seed)
    photos = random_faces(n, 112, seed=seed)
    grey = photos.mean(axis=3, keepdims=True).repeat(3, axis=3)
    sketches = np.clip(255 - grey + rng.normal(0, 12, grey.shape), 0, 255).astype(np.uint8)
    pairs = [Pair(f"{source}/{i}", f"{source}/{i}", None, None, source) for i in range(n)]
    return AlignedPairs(pairs, photos, sketches, ["detected"] * n)


# -- the graph split -------------------------------------------------------------------------


def test_trunk_plus_tail_is_the_whole_graph(tiny_base_path):
    base = load_base(tiny_base_path)
    faces = random_faces(5, 112, seed=4)
    features = run_prefix(graph_prefix(base, SPLIT), faces, batch_size=2)
    assert features.shape == (5, 8, 28, 28) and features.dtype == np.float16
    tail = GraphTail(base, SPLIT).eval()
    with torch.no_grad():
        got = tail(torch.from_numpy(features.astype(np.float32))).numpy()
    expected = _ort(base, faces)
    # the trunk's output is stored as float16: compare directions, not digits
    assert (np.sum(_unit(got) * _unit(expected), axis=1) > 0.999).all()
    # BatchNormalization's statistics (f_m, f_v) stay fixed; everything else after the split trains
    assert set(tail.trainable_names()) == {"dw_w", "c2_w", "c2_b", "fc_w", "fc_b", "f_g", "f_b"}


def test_split_errors_name_the_problem(tiny_base_path):
    base = load_base(tiny_base_path)
    with pytest.raises(InputError, match="not an inner node output"):
        GraphTail(base, "no_such_tensor")
    with pytest.raises(InputError, match="not an inner node output"):
        GraphTail(base, "fc1")  # the output itself leaves nothing to train
    skip = onnx.ModelProto()
    skip.CopyFrom(base)
    skip.graph.node[-4].input[0] = "m"  # Dropout ← a tensor from before the split
    with pytest.raises(InputError, match="skip connection"):
        GraphTail(skip, "dw")


def test_rank_metrics_count_ties_against_the_sketch():
    photos = np.eye(3, dtype=np.float32)
    sketches = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    m = rank_metrics(sketches, photos)
    assert m["rank1"] == pytest.approx(2 / 3) and m["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    tied = rank_metrics(np.ones((3, 3), np.float32), photos + 1)  # all equal: last rank
    assert tied["rank1"] == 0.0


def test_validation_pairs_are_fs2k_identities_held_out():
    data = AlignedPairs.concat([_face_data(10), _face_data(6, seed=1, source="syn")], 112)
    train, val = split_validation(data, 3, seed=0)
    assert len(val) == 3 and all(data.pairs[i].source == "fs2k" for i in val)
    assert not {data.pairs[i].identity for i in train} & {data.pairs[i].identity for i in val}
    with pytest.raises(InputError, match="validation pairs"):
        split_validation(data, 8, seed=0)


def test_validation_holds_out_whole_persons():
    data = _face_data(10)
    # fs2k pairs 0+1 and 2+3 show one person each; a synthetic pair shows pair 0's person
    persons = {0: "P", 1: "P", 2: "Q", 3: "Q"}
    pairs = [replace(p, person=persons.get(i)) for i, p in enumerate(data.pairs)]
    synthetic = _face_data(2, seed=1, source="syn")
    synthetic.pairs = [replace(synthetic.pairs[0], person="P"), synthetic.pairs[1]]
    data = AlignedPairs.concat(
        [AlignedPairs(pairs, data.photos, data.sketches, []), synthetic], 112
    )
    for seed in range(6):
        train, val = split_validation(data, 3, seed=seed)
        held = {data.pairs[i].label for i in val}
        assert not held & {data.pairs[i].label for i in train}
        assert len(val) in (3, 4) and all(data.pairs[i].source == "fs2k" for i in val)
        if "P" in held:  # the synthetic pair of a held-out person trains on neither side
            assert 10 not in train and 10 not in val


def test_rank_metrics_at_person_level():
    photos = np.eye(3, dtype=np.float32)
    # sketch 0 is closest to photo 1, another photo of its person: a miss by pair, a hit by person
    sketches = np.array([[0.5, 1, 0], [0, 1, 0], [0.9, 0, 1]], np.float32)
    by_pair = rank_metrics(sketches, photos)
    by_person = rank_metrics(sketches, photos, persons=["A", "A", "B"])
    assert by_pair["rank1"] == pytest.approx(2 / 3)
    assert by_person["rank1"] == 1.0 and by_person["mrr"] == 1.0


# -- training --------------------------------------------------------------------------------


def test_pairs_of_one_person_share_a_class():
    pairs = [
        Pair("fs2k/a", "fs2k/a", None, None, "fs2k", person="fs2k/a"),
        Pair("fs2k/b", "fs2k/b", None, None, "fs2k", person="fs2k/a"),
        Pair("fs2k/c", "fs2k/c", None, None, "fs2k", person="fs2k/c"),
        Pair("syn/x", "synthetic/7", None, None, "syn"),
    ]
    names, labels = class_labels(pairs)
    assert names == ["fs2k/a", "fs2k/c", "synthetic/7"] and labels.tolist() == [0, 0, 1, 2]
    names, labels = class_labels(pairs, "pair")
    assert labels.tolist() == [0, 1, 2, 3]
    with pytest.raises(InputError, match="classes must be one of person, pair"):
        TrainSettings(classes="photo").check()


def test_the_loss_never_takes_a_persons_other_pair_as_a_negative(tiny_base_path, tmp_path):
    """Four persons, each with two pairs (identical images, two identities).

    By pair, each sketch's other pair is a class of its own whose proxy scores at least
    as high as the true one (AdaFace's margin only lowers the true logit), so the
    softmax denominator at least doubles: the loss is at least log 2 higher than by
    person, where the two pairs share one class. The learning rate is ~0 so both runs
    measure the loss of the same network on the same batches.
    """
    base = load_base(tiny_base_path)
    one = _face_data(4)
    pairs = [replace(p, person=f"person{i}") for i, p in enumerate(one.pairs)]
    pairs += [replace(p, key=f"{p.key}-2", identity=f"{p.identity}-2") for p in pairs]
    data = AlignedPairs(pairs, np.concatenate([one.photos] * 2),
                        np.concatenate([one.sketches] * 2), ["detected"] * 8)  # fmt: skip
    runs = {}
    for classes in ("pair", "person"):
        settings = TrainSettings(epochs=1, lr=1e-12, batch_size=8, val_pairs=0, split=SPLIT,
                                 m=0.2, s=16.0, threads=1, classes=classes)  # fmt: skip
        runs[classes] = fit(base, data, settings, cache_dir=tmp_path)
    assert runs["pair"].classes == 8 and runs["person"].classes == 4
    assert runs["person"].persons == runs["pair"].persons == 4
    gap = runs["pair"].history[1]["loss"] - runs["person"].history[1]["loss"]
    assert gap >= math.log(2) - 1e-3


def test_pair_masked_keeps_own_classes_but_no_person_negatives(tiny_base_path, tmp_path):
    """As above; pair-masked keeps 8 classes, but a sketch's twin is out of its softmax:
    by pair, the twin (same cosine as the true class, no margin) adds at least as much as
    the true term to the denominator; masked, it adds nothing. The other persons still
    count twice (two proxies each), so the loss lies between by person's and by pair's."""
    from facefit.matcher.train import masked_negatives

    base = load_base(tiny_base_path)
    one = _face_data(4)
    pairs = [replace(p, person=f"person{i}") for i, p in enumerate(one.pairs)]
    pairs += [replace(p, key=f"{p.key}-2", identity=f"{p.identity}-2") for p in pairs]
    data = AlignedPairs(pairs, np.concatenate([one.photos] * 2),
                        np.concatenate([one.sketches] * 2), ["detected"] * 8)  # fmt: skip
    identities, labels = class_labels(pairs, "pair-masked")
    masked = masked_negatives(pairs, identities, labels)
    assert masked.sum() == 8 and not masked.diagonal().any()  # each masks its twin only
    runs = {}
    for classes in ("person", "pair-masked", "pair"):
        settings = TrainSettings(epochs=1, lr=1e-12, batch_size=8, val_pairs=0, split=SPLIT,
                                 m=0.2, s=16.0, threads=1, classes=classes)  # fmt: skip
        runs[classes] = fit(base, data, settings, cache_dir=tmp_path)
    assert runs["pair-masked"].classes == 8 and runs["person"].classes == 4
    loss = {k: r.history[1]["loss"] for k, r in runs.items()}
    assert loss["person"] + 0.05 < loss["pair-masked"] < loss["pair"] - 0.05


def test_adaface_training_loss_falls_and_sketches_find_their_photos(tiny_base_path, tmp_path):
    base = load_base(tiny_base_path)
    data = _face_data(16)
    settings = TrainSettings(
        epochs=20, lr=1e-2, batch_size=16, val_pairs=0, split=SPLIT, m=0.2, s=16.0, threads=1
    )
    result = fit(base, data, settings, cache_dir=tmp_path)
    losses = [row["loss"] for row in result.history[1:]]
    assert losses[-1] < 0.7 * losses[0]
    assert result.best_epoch == settings.epochs and result.classes == 16
    # the sketches find their photos better after training than before
    prefix = graph_prefix(base, SPLIT)
    before = GraphTail(base, SPLIT).eval()
    after = result.tail.eval()
    feats_p = torch.from_numpy(run_prefix(prefix, data.photos).astype(np.float32))
    feats_s = torch.from_numpy(run_prefix(prefix, data.sketches).astype(np.float32))
    with torch.no_grad():
        mrr_before = rank_metrics(before(feats_s).numpy(), before(feats_p).numpy())["mrr"]
        mrr_after = rank_metrics(after(feats_s).numpy(), after(feats_p).numpy())["mrr"]
    assert mrr_after > mrr_before
    # features were cached: a second run reads them and gives the same first-epoch loss
    assert len(list(tmp_path.glob("features-*.npy"))) == 2
    again = fit(base, data, TrainSettings(**{**settings.__dict__, "epochs": 1}), cache_dir=tmp_path)
    assert again.history[1]["loss"] == pytest.approx(result.history[1]["loss"], rel=1e-5)


def test_anchor_holds_the_tail_near_sface(tiny_base_path, tmp_path):
    base = load_base(tiny_base_path)
    data = _face_data(8)
    start = GraphTail(base, SPLIT).onnx_weights()

    def drift(anchor: float) -> float:
        settings = TrainSettings(
            epochs=3, lr=1e-2, batch_size=8, val_pairs=0, split=SPLIT, anchor=anchor, threads=1
        )
        weights = fit(base, data, settings, cache_dir=tmp_path).tail.onnx_weights()
        return sum(float(((weights[k] - start[k]) ** 2).sum()) for k in start)

    assert drift(100.0) < 0.5 * drift(0.0)


def test_settings_are_checked():
    with pytest.raises(InputError, match="lr must be more than 0"):
        TrainSettings(lr=0).check()


# -- saved matchers --------------------------------------------------------------------------


def test_saved_matcher_onnx_and_torch_agree(tiny_matcher, tiny_base_path):
    config = read_config(tiny_matcher)
    assert config["parity"]["min_cosine"] > 0.99999
    assert set(config["files"]) == {"model.onnx", "model.safetensors"}
    assert (tiny_matcher / "README.md").read_text().startswith("---")
    model = load_matcher_onnx(tiny_matcher)
    onnx.checker.check_model(model)
    faces = random_faces(6, 112, seed=9)
    onnx_out = _ort(model, faces)
    module = load_matcher_torch(tiny_matcher)
    blob = torch.from_numpy(faces.transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        torch_out = module(blob).numpy()
    np.testing.assert_allclose(torch_out, onnx_out, rtol=1e-4, atol=1e-4)
    # the weights really changed: not the base network
    assert np.abs(onnx_out - _ort(load_base(tiny_base_path), faces)).max() > 1e-3
    # the torch form also loads from the safetensors alone, on the base graph's structure
    alone = load_matcher_torch(tiny_matcher, load_base(tiny_base_path))
    with torch.no_grad():
        np.testing.assert_allclose(alone(blob).numpy(), torch_out, rtol=1e-5, atol=1e-5)
    # gradients reach the input (identity losses can use it)
    x = blob[:1].clone().requires_grad_(True)
    module(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_plugin_backends_agree_and_version_names_the_weights(tiny_matcher):
    faces = random_faces(3, 112, seed=5)
    by_onnx = SketchMatcherEncoder(weights=tiny_matcher)
    by_torch = SketchMatcherEncoder(weights=tiny_matcher, backend="torch")
    np.testing.assert_allclose(by_onnx.embed(faces), by_torch.embed(faces), atol=1e-5)
    assert by_onnx.dim == DIM and by_onnx.version.startswith("sketch-matcher-")
    assert (
        by_onnx.version[len("sketch-matcher-") :]
        == read_config(tiny_matcher)["files"]["model.onnx"][:16]
    )
    with pytest.raises(InputError, match="unknown backend"):
        SketchMatcherEncoder(weights=tiny_matcher, backend="tf")


def test_matcher_directory_resolution(tiny_matcher, tmp_path, monkeypatch):
    from facefit.matcher import shipped

    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACEFIT_SKETCH_MATCHER_PATH", raising=False)
    # a package without a shipped matcher, and nothing in the cache
    monkeypatch.setattr(shipped, "PACKAGE_DIR", tmp_path / "no-package")
    with pytest.raises(WeightsNotFoundError, match="facefit train-matcher"):
        resolve_matcher_dir()
    monkeypatch.setenv("FACEFIT_SKETCH_MATCHER_PATH", str(tiny_matcher))
    assert resolve_matcher_dir() == tiny_matcher
    assert resolve_matcher_dir(config={"sketch-matcher": str(tiny_matcher)}) == tiny_matcher
    with pytest.raises(WeightsNotFoundError, match=r"has no config\.json"):
        resolve_matcher_dir(tmp_path)  # explicit and wrong: never replaced by another


class TestSketchMatcherConformance(FaceEncoderTests):
    plugin_name = "sketch-matcher"

    @pytest.fixture
    def impl(self, tiny_matcher):
        return SketchMatcherEncoder(weights=tiny_matcher)


# -- evaluation ------------------------------------------------------------------------------


def test_eval_matcher_mode_ranks_with_the_trained_matcher(tiny_matcher, tmp_path):
    import facefit_plugins.face_encoders.matcher as matcher_plugin
    from facefit.evaluation import evaluate, read_fs2k
    from tests.plugins import eval_codes
    from tests.test_eval_harness import SKETCHES, N, make_fs2k

    registry = Registry.load(
        entry_points=False, plugins=[("codes", eval_codes), ("matcher", matcher_plugin)]
    )
    bench = read_fs2k(make_fs2k(tmp_path / "fs2k"), probe_sets=["sketch"])
    run = evaluate(
        [bench],
        ["direct", "matcher"],
        registry=registry,
        detector="code",
        encoder="code",
        matcher="sketch-matcher",
        matcher_options={"weights": str(tiny_matcher)},
        progress=False,
    )
    result = next(r for r in run.results if r.mode == "matcher")
    assert result.encoder == "sketch-matcher" and result.metrics.failed == 0
    # the code detector aligns a solid image to a solid crop: rank by hand with the encoder
    encoder = SketchMatcherEncoder(weights=tiny_matcher)
    solid = [np.full((112, 112, 3), c, np.uint8) for c in [(i, i, 0) for i in range(1, N + 1)]]
    photos = encoder.embed(np.stack(solid))
    sketch_codes = [SKETCHES[i] for i in range(1, N + 1)]
    sketches = encoder.embed(np.stack([np.full((112, 112, 3), c, np.uint8) for c in sketch_codes]))
    scores = sketches @ photos.T
    expected = (scores >= np.diag(scores)[:, None]).sum(axis=1)  # ties against; self counts 1
    assert result.metrics.ranks.tolist() == expected.tolist()
    assert run.settings["matcher_options"] == {"weights": str(tiny_matcher)}


# -- data ------------------------------------------------------------------------------------


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _synthetic_folder(root, n=6, augment_manifest=True):
    faces = random_faces(n, 64, seed=11)
    records = []
    for i, face in enumerate(faces):
        _save(root / "photo" / f"p{i}.png", face)
        _save(root / "sketch" / f"p{i}_0.png", 255 - face.mean(axis=2).astype(np.uint8))
        records.append(
            {
                "id": f"p{i}_0",
                "photo": f"photo/p{i}.png",
                "sketch": f"sketch/p{i}_0.png",
                "identity": str(100 + i // 2),
                "source": f"{100 + i // 2}/img{i}.jpg",
            }
        )
    (root / "annotations.json").write_text(json.dumps(records))
    if augment_manifest:
        (root / "manifest.json").write_text(json.dumps({"format": "facefit-augment/1"}))
    return root


def test_synthetic_folders_drop_development_identities(tmp_path):
    folder = _synthetic_folder(tmp_path / "aug")
    exclusions = DevExclusions(
        celeba_identities=frozenset({"101"}), celeba_images=frozenset({"img5.jpg"})
    )
    pairs, dropped = synthetic_pairs(folder, exclusions)
    assert [p.key for p in pairs] == ["aug/p0_0", "aug/p1_0", "aug/p4_0"]
    assert len(dropped) == 3 and "CelebA development identity 101" in dropped[0]
    assert pairs[0].identity == pairs[1].identity == "synthetic/100"
    assert all(p.aligned for p in pairs)  # facefit augment writes aligned crops
    assert DevExclusions(fs2k_ids=frozenset({"photo1_0001"})).reason(
        {"id": "x", "photo": "photo/photo1_0001.jpg"}
    )
    # facefit augment renames the photo; the held-out pair shows only in ``source``
    renamed = {"id": "s0", "photo": "photo/s0.png", "source": "fs2k-train/photo1_0001.jpg"}
    assert DevExclusions(fs2k_ids=frozenset({"photo1_0001"})).reason(renamed)
    assert DevExclusions(fs2k_ids=frozenset({"photo1_0002"})).reason(renamed) is None
    (folder / "annotations.json").write_text(json.dumps([{"id": "a", "photo": "photo/p0.png"}]))
    with pytest.raises(InputError, match="needs id, photo and sketch"):
        synthetic_pairs(folder)


def test_synthetic_entries_take_the_person_of_their_source_photo(tmp_path):
    folder = _synthetic_folder(tmp_path / "aug")  # identities 100, 100, 101, 101, 102, 102
    persons = Persons({"celeba/100": "fs2k/photo1_0007", "fs2k/p4": "fs2k/p4"}, {})
    # entry 0's source is CelebA image img0.jpg of identity 100; entry 4's photo is FS2K pair p4
    traced = SourcePersons(persons, {"img0.jpg": "100"}, frozenset({"p4"}))
    pairs, _ = synthetic_pairs(folder, source="aug", persons=traced)
    assert [p.label for p in pairs] == [
        "fs2k/photo1_0007",  # CelebA identity 100 is FS2K pair photo1_0007's person
        "fs2k/photo1_0007",  # the same identity: the same person, though not traced itself
        "synthetic/101",  # made from photos that are not the data's: keeps its identity
        "synthetic/101",
        "fs2k/p4",
        "fs2k/p4",
    ]
    assert [p.identity for p in pairs][:2] == ["synthetic/100", "synthetic/100"]
    untraced, _ = synthetic_pairs(folder, source="aug")
    assert [p.label for p in untraced] == [p.identity for p in pairs]


def test_photo_check_pairs_skip_development_and_trained_identities(shared_data):
    """On the real data: the development split needs the committed person grouping."""
    from facefit.datasets.splits import celeba_split, load_celeba_rows
    from facefit.matcher.data import celeba_photo_pairs

    identity_of = {r["image"]: r["celeba_identity"] for r in load_celeba_rows(shared_data)}
    dev = {identity_of[image] for image in celeba_split(shared_data).dev}
    first = celeba_photo_pairs(shared_data, identities=5)
    pairs = celeba_photo_pairs(shared_data, identities=1000, exclude={first[0].identity[7:]})
    identities = {p.identity.removeprefix("celeba/") for p in pairs}
    assert pairs and not identities & dev
    assert first[0].identity not in {p.identity for p in pairs}
    assert all(p.photo.name < p.sketch.name for p in pairs)  # first photo, then second


def test_fs2k_training_pairs_never_include_the_development_split(shared_data):
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import fs2k_calibration, fs2k_split, fs2k_training

    pairs = fs2k_training_pairs(shared_data)
    split = fs2k_split(shared_data)
    ids = {p.key.split("/", 1)[1] for p in pairs}
    # the training pairs are the training split less the calibration slice
    assert ids == set(fs2k_training(shared_data)) and ids < set(split.train)
    assert not ids & set(split.dev) and not ids & set(fs2k_calibration(shared_data))
    assert {p.gender for p in pairs} == {"female", "male"}
    # every pair has the committed grouping's person, and some persons have several pairs
    persons = load_persons(shared_data)
    assert all(p.person == persons.fs2k_person(p.key.split("/", 1)[1]) for p in pairs)
    assert len({p.label for p in pairs}) < len(pairs)


# -- the command line ------------------------------------------------------------------------


def test_train_matcher_cli_writes_a_matcher_the_plugin_loads(tiny_base_path, tmp_path):
    from facefit.cli import main

    folder = _synthetic_folder(tmp_path / "aug", n=8)
    out = tmp_path / "matcher"
    args = [
        "train-matcher",
        "--synthetic",
        str(folder),
        "--base",
        str(tiny_base_path),
        "--split",
        SPLIT,
        "--val-pairs",
        "0",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = read_config(out)
    assert config["data"]["sources"][0]["pairs"] == 8
    assert config["data"]["classes"] == 4  # two pairs per identity
    assert config["settings"]["classes"] == "person" and config["data"]["persons"] == 4
    assert config["data"]["sources"][0]["sketch_alignment"] == {"aligned": 8}
    assert config["training"]["steps"] == 2 * 2 and config["settings"]["seed"] == 0
    assert config["base"]["sha256"] and config["trained"]
    encoder = Registry.load().create("face_encoder", "sketch-matcher", weights=str(out))
    assert encoder.embed(random_faces(2, 112)).shape == (2, DIM)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.output
    none = CliRunner().invoke(main, ["train-matcher", "--out", str(tmp_path / "x")])
    assert none.exit_code == 2 and "--data" in none.output


def test_eval_cli_matcher_path_needs_a_matcher_name(tiny_matcher, tmp_path):
    from facefit.cli import main

    result = CliRunner().invoke(
        main, ["eval", str(tmp_path), "--matcher-path", str(tiny_matcher), "--out", "x"]
    )
    assert result.exit_code == 2 and "--matcher-path needs --matcher" in result.output
