"""Image loading: formats, modes, orientation, limits and damaged files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facefit.errors import InputError
from facefit.imaging.images import load_grey, load_image, save_image


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], -1).astype(
        np.uint8
    )


@pytest.mark.parametrize("suffix", [".png", ".ppm", ".bmp", ".tif", ".webp"])
def test_lossless_round_trip(tmp_path, suffix):
    rgb = _gradient()
    path = tmp_path / f"img{suffix}"
    if suffix == ".webp":
        Image.fromarray(rgb).save(path, lossless=True)
    else:
        save_image(path, rgb)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_is_close(tmp_path):
    rgb = _gradient()
    save_image(tmp_path / "a.jpg", rgb, quality=98)
    assert np.abs(load_image(tmp_path / "a.jpg").astype(int) - rgb).mean() < 4


def test_pgm_grey_becomes_rgb(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(grey).save(tmp_path / "g.pgm")
    out = load_image(tmp_path / "g.pgm")
    assert out.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)
    np.testing.assert_array_equal(load_grey(tmp_path / "g.pgm"), grey)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = load_image(tmp_path / "deep.png")[..., 0]
    np.testing.assert_array_equal(out, [[0, 255], [128, 4]])


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2, :, :] = (255, 0, 0, 255)  # opaque red top, transparent bottom
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[3, 0], [255, 255, 255])


def test_palette_and_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    out = load_image(tmp_path / "anim.gif")
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    palette = Image.new("P", (5, 5), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(load_image(tmp_path / "p.png")[2, 2], [10, 200, 30])


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((10, 20, 3), dtype=np.uint8)
    rgb[:, :5] = 255  # white strip on the left of a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=100)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (20, 10, 3)  # now portrait
    assert out[:5].mean() > 200 and out[-5:].mean() < 50  # strip moved to the top


def test_pixel_limit_names_file(tmp_path):
    save_image(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(InputError, match=r"big\.png.*10,000 pixels.*limit of 9,999"):
        load_image(tmp_path / "big.png", max_pixels=9_999)
    assert load_image(tmp_path / "big.png", max_pixels=10_000).shape == (100, 100, 3)


def _png_header_only(path, side: int) -> None:
    """A 45-byte PNG declaring side×side pixels: enough for a reader that trusts headers."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused(tmp_path):
    # refused from the header, never decoded: by facefit's limit first…
    _png_header_only(tmp_path / "bomb.png", 10_000)
    with pytest.raises(InputError, match=r"bomb\.png.*100,000,000 pixels.*limit"):
        load_image(tmp_path / "bomb.png")
    # …and by Pillow's hard limit even when the caller raises facefit's
    _png_header_only(tmp_path / "huge.png", 20_000)
    with pytest.raises(InputError, match=r"huge\.png.*decompression bomb"):
        load_image(tmp_path / "huge.png", max_pixels=10**12)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file \\(0 bytes\\)"),
        (b"hello, I am text", "not an image"),
    ],
)
def test_non_images_are_rejected(tmp_path, content, message):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"fake\.jpg.*{message}"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_rejected(tmp_path, fmt):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match=rf"cut\.{fmt.lower()}.*(truncated|damaged)"):
        load_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="not a file"):
        load_image(tmp_path)


def test_save_image_is_atomic_and_checks_input(tmp_path):
    path = save_image(tmp_path / "sub" / "g.pgm", np.full((3, 4), 7, np.uint8))
    np.testing.assert_array_equal(load_grey(path), np.full((3, 4), 7))
    assert [p.name for p in path.parent.iterdir()] == ["g.pgm"]  # no temp file left
    with pytest.raises(InputError, match="uint8"):
        save_image(tmp_path / "f.png", np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match="suffix"):
        save_image(tmp_path / "f.xyz", np.zeros((3, 3), np.uint8))
