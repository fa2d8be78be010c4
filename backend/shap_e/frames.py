"""Shap-E's coordinate frame and colours, turned into the project's mesh result.

Frame: Shap-E's frame IS Blender's frame (z up), so vertices are copied unchanged.
Evidence (docs/shap_e.md, "Axes, colours, scale"):
- Shap-E's training views were rendered in Blender (shap_e/rendering/blender/
  blender_script.py): assets imported with Blender's importers (glTF's y-up becomes
  z-up), normalised in place, cameras aimed with to_track_quat("-Z", "Y") (Blender's
  z-up), and the camera metadata the encoder learned from is Blender's matrix_world.
- Shap-E's and diffusers' preview cameras (create_pan_cameras) circle the z axis above
  the object, image up = +z; the first frame looks along +y with +x to the right,
  which is Blender's Front view.
- diffusers' docs rotate the exported mesh by -90 degrees about x for y-up viewers:
  (x, y, z) -> (x, z, -y), exactly Blender's own z-up -> glTF y-up conversion.
No rotation or mirror, so the winding (counter-clockwise seen from outside in Shap-E's
marching-cubes table, checked in tests) stays outward.

Colours: the texture head outputs sRGB values in [0, 1] (Shap-E converts them to linear
for its mesh vertex colours, and back to sRGB when it renders); the project's mesh
result holds sRGB bytes (Blender's BYTE_COLOR attribute), so they are quantised as is.
"""

import numpy as np


def shap_e_to_blender(vertices: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vertices, dtype=np.float32)


def srgb_to_bytes(colors: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB floats in [0, 1] -> (N, 4) uint8 RGBA, opaque."""
    rgb = np.clip(np.rint(np.asarray(colors, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    alpha = np.full((len(rgb), 1), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=1)

