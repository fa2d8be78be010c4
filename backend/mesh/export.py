"""Write meshes to files: GLB (y up, glTF's convention), OBJ and PLY (z up).

Raw surfaces (vertex colours) go through trimesh as they always have. Textured meshes
(the mesh stage's UV map and images): GLB through trimesh with both images embedded
(baseColorTexture, normalTexture); OBJ written here with its .mtl and two PNGs beside
it; PLY keeps the vertex colours (PLY has no materials). Every file appears whole or
not at all, companions included: they are written into a staging folder and published
under free names (never over an existing file), the main file last.
"""

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from ..bridge import atomic_files
from ..bridge.file_names import free_stem
from .coordinates import blender_to_gltf

FORMATS = ("glb", "obj", "ply")
ROUGHNESS = 0.8  # the scans are matte (Blender's material uses the same)


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, uvs: np.ndarray | None = None,
               base_color: np.ndarray | None = None, normal_map: np.ndarray | None = None) -> Path:
    """vertices in Blender's frame; uvs (M, 3, 2) per face corner with base_color (and
    normal_map) (T, T, 3) uint8 make a textured file. Returns the main file's path.

    No existing file is ever replaced: when a file of the name (or one of its companions'
    names, compared case-insensitively) exists, the stem gets _2, _3, ...; a Windows
    device name (con, nul, ...) gets a trailing underscore. The returned path says which."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown mesh format {fmt!r}: choose one of {', '.join(FORMATS)}")
    textured = uvs is not None and base_color is not None and fmt != "ply"
    suffixes = [f".{fmt}"] + ([".mtl", "_color.png", "_normal.png"] if textured and fmt == "obj" else [])
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_files.Staging(str(folder)) as staging:  # clears what a killed earlier run left
        while True:
            stem = free_stem(str(folder), path.stem, suffixes)
            target = Path(staging.path) / f"{stem}.{fmt}"
            if not textured:
                _write_colored(target, fmt, vertices, faces, colors)
            elif fmt == "glb":
                _write_textured_glb(target, vertices, faces, uvs, base_color, normal_map)
            else:
                _write_textured_obj(target, vertices, faces, uvs, base_color, normal_map)
            try:
                staging.publish(target.name)
            except FileExistsError:  # another run took a name meanwhile: the next free one
                staging.clear()
                continue
            return folder / target.name


def _write_colored(target: Path, fmt, vertices, faces, colors):
    if fmt == "glb":
        vertices = blender_to_gltf(vertices)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=colors, process=False)
    if fmt == "obj":
        data = trimesh.exchange.obj.export_obj(mesh, include_color=True, include_normals=False, include_texture=False)
        target.write_text(data, encoding="utf-8")
    else:
        mesh.export(str(target), file_type=fmt)


def _seam_split(vertices, faces, uvs):
    """One vertex per (vertex, UV) pair, as files need -> (split_vertex (M, 3),
    split_source (S,), split_uvs (S, 2), vertex normals (N, 3)), numpy.

    The normals are the smooth vertex normals the normal map was baked against (what
    Blender computes), the same on both sides of every seam. torch is imported here,
    for textured files only: the model server's front imports this module without it.
    """
    import torch

    from .asset.tangents import vertex_normals
    from .asset.unwrap import split_by_uv

    v = torch.from_numpy(np.ascontiguousarray(vertices, np.float32))
    f = torch.from_numpy(np.ascontiguousarray(faces)).long()
    split_vertex, split_source, split_uvs = split_by_uv(f, torch.from_numpy(np.ascontiguousarray(uvs, np.float32)))
    return (split_vertex.numpy().astype(np.int64), split_source.numpy(), split_uvs.numpy(),
            vertex_normals(v, f).numpy())


def _write_textured_glb(target: Path, vertices, faces, uvs, base_color, normal_map):
    split_faces, split_source, split_uvs, normals = _seam_split(vertices, faces, uvs)
    positions, normals = np.asarray(vertices, np.float32)[split_source], normals[split_source]
    material = trimesh.visual.material.PBRMaterial(
        name=target.stem, baseColorTexture=Image.fromarray(base_color),
        normalTexture=None if normal_map is None else Image.fromarray(normal_map),
        metallicFactor=0.0, roughnessFactor=ROUGHNESS)
    # trimesh takes Blender's UV convention (v up) and writes glTF's 1 - v itself
    mesh = trimesh.Trimesh(vertices=blender_to_gltf(positions), faces=split_faces,
                           vertex_normals=blender_to_gltf(normals),
                           visual=trimesh.visual.TextureVisuals(uv=split_uvs, material=material), process=False)
    mesh.export(str(target), file_type="glb", include_normals=True)


def _write_textured_obj(target: Path, vertices, faces, uvs, base_color, normal_map):
    """OBJ + MTL + PNGs: one `v`/`vn` per vertex, one `vt` per UV vertex."""
    split_vertex, _, split_uvs, normals = _seam_split(vertices, faces, uvs)
    stem = target.stem
    color_name, normal_name = f"{stem}_color.png", f"{stem}_normal.png"
    Image.fromarray(base_color).save(target.with_name(color_name))
    lines = [f"newmtl {stem}", "Ka 0 0 0", "Kd 1 1 1", "Ks 0 0 0", f"Ns {_shininess(ROUGHNESS):g}", "d 1", "illum 2",
             f"map_Kd {color_name}"]
    if normal_map is not None:
        Image.fromarray(normal_map).save(target.with_name(normal_name))
        lines.append(f"map_Bump -bm 1 {normal_name}")  # Blender reads it as a tangent-space normal map
    target.with_suffix(".mtl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    f = np.asarray(faces, np.int64) + 1
    corner = np.stack((f, split_vertex + 1, f), axis=2).reshape(len(faces), 9)
    with open(target, "w", encoding="utf-8") as out:
        out.write(f"mtllib {stem}.mtl\no {stem}\n")
        np.savetxt(out, np.asarray(vertices, np.float32), fmt="v %.6f %.6f %.6f")
        np.savetxt(out, split_uvs, fmt="vt %.6f %.6f")
        np.savetxt(out, normals, fmt="vn %.4f %.4f %.4f")
        out.write(f"usemtl {stem}\ns 1\n")
        np.savetxt(out, corner, fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")


def _shininess(roughness: float) -> float:
    """OBJ's specular exponent for a roughness: Blender's OBJ importer reads back
    roughness = 1 - sqrt(Ns / 1000)."""
    return (1.0 - roughness) ** 2 * 1000.0
