"""Write meshes to files with trimesh: GLB (y up, glTF's convention), OBJ and PLY (z up)."""

import os
from pathlib import Path

import numpy as np
import trimesh

from ..bridge import atomic_files
from .coordinates import blender_to_gltf

FORMATS = ("glb", "obj", "ply")


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> Path:
    """vertices in Blender's frame; the file appears whole or not at all."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown mesh format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "glb":
        vertices = blender_to_gltf(vertices)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=colors, process=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_files.remove_stale(str(path.parent))  # what a killed earlier run left
    temporary = atomic_files.temporary_path(str(path.parent), path.name)
    try:
        if fmt == "obj":
            data = trimesh.exchange.obj.export_obj(mesh, include_color=True, include_normals=False, include_texture=False)
            Path(temporary).write_text(data, encoding="utf-8")
        else:
            mesh.export(temporary, file_type=fmt)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
