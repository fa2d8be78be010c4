"""Time building the Blender mesh from a result, with the extension's own mesh builder."""

import time

import bpy

from blender import mesh_builder  # the repository root is on sys.path (bench.py puts it there)


def build_seconds(result) -> float:
    started = time.perf_counter()
    mesh = mesh_builder.build_mesh("bench", result.vertices, result.faces, result.colors)
    seconds = time.perf_counter() - started
    bpy.data.meshes.remove(mesh)
    return seconds
