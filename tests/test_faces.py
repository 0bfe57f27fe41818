"""Alignment and FaceEmbedder: geometry on synthetic images, then YuNet + SFace on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from facefit.errors import InputError, WeightsNotFoundError
from facefit.imaging.faces import (
    FRAMED_LANDMARKS,
    TEMPLATE_112,
    FaceEmbedder,
    MultipleFacesError,
    NoFaceError,
    align_landmarks,
    framed_landmarks,
    similarity_transform,
    template,
)
from facefit.imaging.images import save_image
from facefit.interfaces import Detection, FaceDetector, FaceEncoder
from facefit.testing import FaceDetectorTests


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_template_is_the_standard_one_scaled():
    np.testing.assert_allclose(template(112), TEMPLATE_112)
    np.testing.assert_allclose(template(64), TEMPLATE_112 * 64 / 112, rtol=1e-6)
    np.testing.assert_allclose(template(128)[0], [43.7653, 59.0815], atol=1e-3)
    with pytest.raises(InputError):
        template(4)


def test_similarity_transform_recovers_a_known_transform():
    truth = _similarity(0.3, 1.7, 12.0, -5.0)
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    np.testing.assert_allclose(similarity_transform(src, _apply(truth, src)), truth, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = TEMPLATE_112.astype(np.float64)
    mirrored = src * [-1, 1]
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0
    with pytest.raises(InputError, match="coincide"):
        similarity_transform(np.ones((5, 2)), src)


def _disc(shape: tuple[int, int], point: np.ndarray, radius: float) -> np.ndarray:
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    disc = ((x - point[0]) ** 2 + (y - point[1]) ** 2 <= radius**2).astype(np.uint8) * 255
    return np.repeat(disc[..., None], 3, axis=2)


def _aligned_centroids(shape, landmarks, size, radius, grey=False) -> np.ndarray:
    """Where each landmark lands: align a disc drawn at it, take the weighted centroid."""
    out = []
    for point in landmarks:
        image = _disc(shape, point, radius)
        crop = align_landmarks(image[..., 0] if grey else image, landmarks, size)
        weight = (crop if grey else crop[..., 0]).astype(np.float64)
        y, x = np.mgrid[0:size, 0:size]
        out.append([(weight * x).sum() / weight.sum(), (weight * y).sum() / weight.sum()])
    return np.array(out)


@pytest.mark.parametrize("size", [64, 112, 128])
def test_align_puts_landmarks_on_the_template(size):
    # landmarks placed by a known rotation/scale from the template, in a larger image
    truth = _similarity(-0.25, 2.6, 90.0, 60.0)
    landmarks = _apply(truth, TEMPLATE_112.astype(np.float64))
    crop = align_landmarks(np.zeros((420, 400, 3), np.uint8), landmarks, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    where = _aligned_centroids((420, 400), landmarks, size, radius=8)
    # pixel centres: OpenCV maps pixel (i, j) to (i, j); 0.25 px allows for resampling
    assert np.abs(where - template(size)).max() < 0.25


def test_align_grey_and_large_reduction():
    # a reduction by ~8×, through the area pre-shrink path, is still on target
    landmarks = TEMPLATE_112.astype(np.float64) * 8 + 40
    assert align_landmarks(np.zeros((1000, 1000), np.uint8), landmarks, 64).shape == (64, 64)
    where = _aligned_centroids((1000, 1000), landmarks, 64, radius=24, grey=True)
    assert np.abs(where - template(64)).max() < 0.25


class BoxDetector(FaceDetector):
    """Deterministic detector for tests: returns the boxes it was given, landmarks inside."""

    name = "boxes"

    def __init__(self, boxes=()):
        self.boxes = list(boxes)
        self.seen: list[tuple[int, ...]] = []

    def detect(self, image):
        self.seen.append(image.shape)
        out = []
        for x, y, w, h in self.boxes:
            lm = TEMPLATE_112 / 112 * [w, h] + [x, y]
            out.append(Detection((x, y, w, h), lm.astype(np.float32), 0.9))
        return out


class MeanColourEncoder(FaceEncoder):
    """A real (if weak) encoder: the mean colour of the central patch and its spread."""

    name = "mean-colour"
    dim = 4
    input_size = 112

    def __init__(self):
        self.batches: list[int] = []

    def embed_aligned(self, faces):
        self.batches.append(len(faces))
        centre = faces[:, 40:72, 40:72].reshape(len(faces), -1, 3).astype(np.float32)
        return np.concatenate([centre.mean(1), centre.std(1).mean(1, keepdims=True) + 1], 1)


def test_embedder_takes_the_largest_face_or_requires_one():
    image = np.zeros((200, 300, 3), np.uint8)
    image[20:60, 20:60] = (255, 0, 0)  # small red face
    image[50:170, 120:240] = (0, 0, 255)  # large blue face
    embedder = FaceEmbedder(
        BoxDetector([(20, 20, 40, 40), (120, 50, 120, 120)]), MeanColourEncoder()
    )
    crop = embedder.align(image)
    assert crop.shape == (112, 112, 3)
    assert tuple(crop[56, 56]) == (0, 0, 255)
    assert embedder.align(image, size=64).shape == (64, 64, 3)
    with pytest.raises(MultipleFacesError, match=r"two\.png: 2 faces"):
        embedder.align(image, source="two.png", require_single=True)


def test_no_face_error_and_sketch_fallback():
    image = np.full((250, 250), 255, np.uint8)  # grey input is accepted
    embedder = FaceEmbedder(BoxDetector([]), MeanColourEncoder())
    with pytest.raises(NoFaceError, match=r"blank\.png: no face found.*sketch_fallback"):
        embedder.align(image, source="blank.png")
    assert isinstance(NoFaceError("x"), InputError)
    face = embedder.locate(image, sketch_fallback=True)
    assert face.fallback and face.alignment == "framed" and face.detection is None
    assert face.crop.shape == (112, 112, 3)
    np.testing.assert_allclose(face.landmarks, FRAMED_LANDMARKS * 250 + 125)
    framed = FaceEmbedder(BoxDetector([]), MeanColourEncoder(), sketch_fallback=True)
    assert framed.align(image).shape == (112, 112, 3)


class SmoothOnlyDetector(BoxDetector):
    """Finds a face only in images without fine lines, like YuNet on some pencil sketches."""

    def detect(self, image):
        edges = np.abs(np.diff(image[..., 0].astype(int), axis=1)).mean()
        found = super().detect(image)  # records the call in self.seen
        return found if edges < 20 else []


def test_sketch_fallback_retries_on_a_blurred_copy_first():
    stripes = np.zeros((200, 200, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel hatching: "not a face" until softened
    detector = SmoothOnlyDetector([(40, 40, 120, 120)])
    embedder = FaceEmbedder(detector, MeanColourEncoder())
    with pytest.raises(NoFaceError):
        embedder.align(stripes)  # no fallback: a single detection attempt
    assert len(detector.seen) == 1
    face = embedder.locate(stripes, sketch_fallback=True)
    assert face.alignment == "detected-blurred" and face.fallback and face.detection is not None
    assert len(detector.seen) == 3  # the original, then the blurred copy


def test_framed_landmarks_were_measured_on_the_current_training_split():
    from facefit.datasets import splits
    from facefit.imaging.faces import FRAMED_LANDMARKS_SPLIT

    # if this fails, re-measure FRAMED_LANDMARKS on the new training side (see faces.md)
    assert FRAMED_LANDMARKS_SPLIT == splits.FS2K_DEV_FINGERPRINT


def test_framed_landmarks_are_a_plausible_face():
    eyes = FRAMED_LANDMARKS[1, 0] - FRAMED_LANDMARKS[0, 0]
    assert 0.15 < eyes < 0.35
    assert FRAMED_LANDMARKS[0, 1] < FRAMED_LANDMARKS[2, 1] < FRAMED_LANDMARKS[3, 1]
    # oblong frames: placed around the centre, scaled by the shorter side
    wide = framed_landmarks(340, 475)
    np.testing.assert_allclose(wide, FRAMED_LANDMARKS * 340 + [237.5, 170], rtol=1e-6)


def test_embed_images_batches_and_normalizes():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(5)]
    encoder = MeanColourEncoder()
    embedder = FaceEmbedder(BoxDetector([(10, 10, 130, 130)]), encoder, batch_size=2)
    vectors = embedder.embed_images(images)
    assert vectors.shape == (5, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.batches == [2, 2, 1]
    assert embedder.embed_images([]).shape == (0, 4)


def test_embed_files_reports_errors_per_file(tmp_path):
    good = tmp_path / "good.png"
    save_image(good, np.full((120, 120, 3), 90, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    embedder = FaceEmbedder(BoxDetector([(5, 5, 110, 110)]), MeanColourEncoder(), batch_size=1)
    results = embedder.embed_files([good, broken, tmp_path / "missing.png", good])
    assert [r.ok for r in results] == [True, False, False, True]
    assert "broken.jpg" in results[1].error and "missing.png" in results[2].error
    np.testing.assert_allclose(results[0].vector, results[3].vector)
    none = FaceEmbedder(BoxDetector([]), MeanColourEncoder()).embed_files([good])
    assert not none[0].ok and "no face" in none[0].error


# -- real models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_embedder():
    from facefit import Registry

    registry = Registry.load(allow=["yunet", "sface"])
    try:
        embedder = FaceEmbedder.from_registry(registry)
        embedder.detect(np.zeros((64, 64, 3), np.uint8))
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc})")
    return embedder


def _shared_image(shared_data, relative):
    from facefit.imaging.images import load_image

    return load_image(shared_data / relative)


def test_yunet_finds_a_face_with_landmarks_in_order(real_embedder, shared_data):
    image = _shared_image(shared_data, "fs2k-train/photo/photo1_0110.jpg")
    detections = real_embedder.detect(image)
    assert detections and detections[0].score > 0.8
    lm = detections[0].landmarks
    assert lm.shape == (5, 2)
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # subject's right eye on image left
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes, nose, mouth from top down


def test_yunet_finds_no_face_in_a_flat_image(real_embedder):
    assert real_embedder.detect(np.full((200, 200, 3), 128, np.uint8)) == []
    with pytest.raises(NoFaceError):
        real_embedder.align(np.full((200, 200, 3), 128, np.uint8))


def test_same_person_scores_higher_than_different_people(real_embedder, shared_data):
    import csv

    with open(shared_data / "celeba-subset" / "identities.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_id: dict[str, list[str]] = {}
    for row in rows:
        by_id.setdefault(row["celeba_identity"], []).append(row["image"])
    ids = sorted(by_id, key=int)[:3]
    paths = [shared_data / "celeba-subset" / "faces" / name for i in ids for name in by_id[i][:2]]
    results = real_embedder.embed_files(paths)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    v = np.stack([r.vector for r in results])
    sim = v @ v.T
    same = [sim[0, 1], sim[2, 3], sim[4, 5]]
    different = [sim[i, j] for i in range(6) for j in range(6) if i // 2 != j // 2]
    assert np.mean(same) > np.mean(different) + 0.2


class TestYuNetConformance(FaceDetectorTests):
    """The built-in detector passes the conformance kit a vendor's detector runs."""

    plugin_name = "yunet"

    def make(self):
        from facefit import Registry

        detector = Registry.load(allow=["yunet"]).create_face_detector("yunet")
        try:
            detector.detect(np.zeros((64, 64, 3), np.uint8))
        except WeightsNotFoundError as exc:
            pytest.skip(f"model files not installed ({exc})")
        return detector

    def face_image(self):
        from facefit.imaging.images import load_image
        from facefit.pipeline.demo import DEMO_DATA

        return load_image(DEMO_DATA / "gallery" / "photo1_0724.jpg")
