"""Input preparation: every common image kind is accepted, bad ones refused clearly."""

import io

import numpy as np
import pytest
from PIL import Image

from backend.bridge.errors import BackgroundRemovalError, InputImageError
from backend.prepare import framing, images
from backend.prepare.framing import prepare_image


def object_rgba(size=64):
    """An opaque red disc on a transparent background."""
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 4) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (200, 30, 30, 255)
    return rgba


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_formats_with_alpha_keep_the_cut_out(fmt):
    source = Image.fromarray(object_rgba())
    prepared = prepare_image(encoded(source, fmt, **({"lossless": True} if fmt == "WEBP" else {})), 0.85, True)
    expected = prepare_image(source, 0.85, True)
    np.testing.assert_array_equal(prepared, expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda rgb: encoded(Image.fromarray(rgb), "JPEG", quality=95),
        lambda rgb: encoded(Image.fromarray(rgb), "BMP"),
        lambda rgb: encoded(Image.fromarray(rgb).convert("L"), "PNG"),
        lambda rgb: encoded(Image.fromarray(rgb).convert("P"), "PNG"),
        lambda rgb: encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        lambda rgb: encoded(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG"),
    ],
    ids=["jpeg", "bmp", "greyscale", "palette", "cmyk", "16-bit"],
)
def test_opaque_kinds_are_read_without_background_removal(make):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :, 0] = np.linspace(0, 255, 60, dtype=np.uint8)
    prepared = prepare_image(make(rgb), 0.85, remove_background=False)
    # The whole (opaque) frame is the foreground: square of the wider side, then / 0.85.
    assert prepared.shape == (int(59 / 0.85), int(59 / 0.85), 3)
    # Brightness survives the decoding (16-bit scaled down, not clipped to white).
    assert 60 < prepared[prepared.shape[0] // 2, :, 0].max() <= 255
    assert prepared[prepared.shape[0] // 2, :, 0].min() < 40


def test_palette_transparency_is_kept():
    image = Image.fromarray(object_rgba()).convert("RGBA").quantize(colors=4)
    image.info["transparency"] = image.getpixel((0, 0))
    prepared = prepare_image(encoded(image, "PNG", transparency=image.getpixel((0, 0))), 0.85, True)
    assert (prepared[0, 0] == 127).all()  # background became the grey composite


def test_sixteen_bit_grey_is_scaled_not_clipped():
    grey16 = np.full((8, 8), 32768, np.uint16)
    rgba = images.to_rgba8(Image.open(io.BytesIO(encoded(Image.fromarray(grey16), "PNG"))))
    assert abs(int(rgba[0, 0, 0]) - 128) <= 1


def test_float_pixels_from_blender_are_accepted():
    rgba = object_rgba().astype(np.float32) / 255
    np.testing.assert_array_equal(prepare_image(rgba, 0.85, True), prepare_image(object_rgba(), 0.85, True))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not an image at all", "not an image file"),
        (encoded(Image.fromarray(object_rgba()), "PNG")[:200], "could not be decoded"),
        (encoded(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG"), "fully transparent"),
    ],
    ids=["garbage", "truncated", "transparent"],
)
def test_bad_inputs_are_refused_clearly(data, message):
    with pytest.raises(InputImageError, match=message):
        prepare_image(data, 0.85, True)


def test_zero_size_image_is_refused(tmp_path):
    with pytest.raises(InputImageError, match="no pixels"):
        prepare_image(np.zeros((0, 5, 4), np.uint8), 0.85, True)
    empty_file = tmp_path / "empty.png"
    empty_file.write_bytes(b"")
    with pytest.raises(InputImageError, match="not an image file"):
        prepare_image(empty_file, 0.85, True)


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_INPUT_PIXELS", 100 * 100)
    big = encoded(Image.new("RGB", (200, 200)), "PNG")
    with pytest.raises(InputImageError, match="allowed"):
        prepare_image(big, 0.85, False)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputImageError, match="no such file"):
        prepare_image(tmp_path / "missing.png", 0.85, True)


def test_missing_background_model_says_how_to_fix(tmp_path, monkeypatch):
    pytest.importorskip("rembg")
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))  # empty: rembg must fetch, and cannot here
    monkeypatch.setenv("REMBG_HOME", str(tmp_path))
    monkeypatch.setattr("socket.getaddrinfo", _no_network)
    opaque = np.full((32, 32, 3), 200, np.uint8)
    with pytest.raises(BackgroundRemovalError, match="--no-remove-bg"):
        prepare_image(opaque, 0.85, remove_background=True)


def _no_network(*args, **kwargs):
    raise OSError("network disabled in this test")


def test_foreground_framing_follows_the_reference_rule():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[10:30, 20:60] = 255  # 20 x 40 object
    framed = framing.frame_foreground(rgba, 0.5)
    # the reference crop drops the last row and column: 19 x 39 -> square 39 -> 78
    assert framed.shape[:2] == (78, 78)
    assert framed[..., 3].sum() == 19 * 39 * 255
