"""Coordinate frames: the model's, Blender's and glTF's.

The model is right-handed, z up, with the input camera on +x. Blender is z up too; a
-90 degree turn about z puts the input view on Blender's Front view (looking along +y).
glTF is y up: Blender's (x, y, z) is glTF's (x, z, -y), the same turn Blender's own
glTF exporter makes. Both are rotations, so triangle winding is unchanged.
"""

import numpy as np


def model_to_blender(vertices: np.ndarray) -> np.ndarray:
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    return np.stack((y, -x, z), axis=1).astype(np.float32)


def blender_to_model(points):
    """The inverse of model_to_blender, for numpy arrays or torch tensors (the mesh stage's
    colour queries) alike, so this module needs no torch (the server's front imports it)."""
    model = points[:, [1, 0, 2]]  # advanced indexing: a copy in numpy and torch
    model[:, 0] = -model[:, 0]
    return model


def blender_to_gltf(vertices: np.ndarray) -> np.ndarray:
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    return np.stack((x, z, -y), axis=1).astype(np.float32)
