"""The suite's drawn input pictures (tests/pictures.py) are what the tests take them for."""

import numpy as np
import pytest
from pictures import OPAQUE, TRANSPARENT, unframe
from PIL import Image

from backend.prepare.framing import prepare_image
from backend.prepare.images import has_transparency, open_image, to_rgba8


@pytest.mark.parametrize("name", TRANSPARENT)
def test_transparent_pictures_are_objects_with_soft_edges(examples_dir, name):
    image = Image.open(examples_dir / f"{name}.png")
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert alpha[0, 0] == 0 and alpha[0, -1] == 0  # a cut-out, not a scene
    assert ((alpha > 0) & (alpha < 255)).any()  # antialiased edges, as real cut-outs have
    assert 0.05 < (alpha > 0).mean() < 0.6


@pytest.mark.parametrize("name", OPAQUE)
def test_opaque_pictures_need_background_removal(examples_dir, name):
    image = open_image(examples_dir / f"{name}.png")
    assert not has_transparency(to_rgba8(image))
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 500  # a shaded scene, not a flat fill


def test_the_pictures_come_in_several_shapes_and_sizes(examples_dir):
    sizes = {Image.open(examples_dir / f"{name}.png").size for name in {**TRANSPARENT, **OPAQUE}}
    assert len(sizes) >= 5
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes)
    assert Image.open(examples_dir / "teapot.png").mode == "RGBA"  # opaque though it has an alpha channel


@pytest.mark.parametrize("ratio", [0.85, 0.6, 1.0])
def test_an_unframed_prepared_image_prepares_back_to_itself(examples_dir, ratio, tmp_path):
    prepared = prepare_image(examples_dir / "horse.png", ratio, remove_background=True)
    Image.fromarray(unframe(prepared, ratio)).save(tmp_path / "unframed.png")
    np.testing.assert_array_equal(prepare_image(tmp_path / "unframed.png", ratio, remove_background=True), prepared)
