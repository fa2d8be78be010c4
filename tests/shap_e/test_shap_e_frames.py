"""Shap-E's frame is Blender's; colours are sRGB bytes."""

import numpy as np

from backend.shap_e.frames import shap_e_to_blender, srgb_to_bytes


def test_vertices_keep_their_axes():
    points = np.array([[0.1, -0.2, 0.9], [-1.0, 1.0, 0.0]], dtype=np.float64)
    out = shap_e_to_blender(points)
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    assert np.array_equal(out, points.astype(np.float32))  # z stays up, +y stays away from the front view


def test_colors_become_opaque_srgb_bytes():
    out = srgb_to_bytes(np.array([[0.0, 0.5, 1.0], [-0.1, 1.2, 0.2]]))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 128, 255, 255], [0, 255, 51, 255]]
