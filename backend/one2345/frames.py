"""The reconstructed mesh's frames: pose.json's world W, One-2-3-45's own export, Blender's.

W is z up with the object at the origin; the input picture was taken from azimuth 30
degrees (camera at (sin 30, -cos 30) * r horizontally). One-2-3-45 writes its .obj/.glb
(utils/utils.py convert_mesh_format) by turning the mesh +90 degrees about x, then 180
about z, and negating x: vertex (x, y, z) -> (x, z, y), a mirror, so each face's vertex
order is reversed. That file is y up; Blender's importers read glTF/OBJ (x, y, z) as
(x, -z, y), which gives (x, -y, z) in Blender: W mirrored in y, as the official demo's
objects appear there.

world_to_blender keeps that orientation (mirror included: One-2-3-45's authors apply it to
their views' reconstruction) and turns it about z so that the input picture faces
Blender's Front view (looking along +y), as the project places TripoSR's objects.
"""

import numpy as np

_INPUT_AZIMUTH = np.radians(30.0)


def _reversed_faces(faces: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(faces[:, ::-1])


def world_to_official_export(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W -> the frame of One-2-3-45's mesh.obj / mesh.glb (y up): (x, z, y), faces reversed."""
    v = np.asarray(vertices)
    return np.stack([v[:, 0], v[:, 2], v[:, 1]], axis=1).astype(np.float32), _reversed_faces(faces)


def _world_to_blender_matrix() -> np.ndarray:
    mirror = np.diag([1.0, -1.0, 1.0])  # the official export as Blender imports it
    camera = mirror @ np.array([np.sin(_INPUT_AZIMUTH), -np.cos(_INPUT_AZIMUTH), 0.0])
    angle = -np.pi / 2 - np.arctan2(camera[1], camera[0])  # input camera onto -y
    c, s = np.cos(angle), np.sin(angle)
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return turn @ mirror


WORLD_TO_BLENDER = _world_to_blender_matrix()


def world_to_blender(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W -> Blender (z up, input picture on the Front view); the map mirrors, so faces
    are reversed to stay wound outwards."""
    v = np.asarray(vertices, np.float64) @ WORLD_TO_BLENDER.T
    return v.astype(np.float32), _reversed_faces(faces)
