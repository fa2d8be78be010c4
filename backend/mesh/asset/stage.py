"""The mesh stage: raw surface -> clean, decimated, coloured and (optionally) textured mesh.

    raw surface (vertices, faces; Blender frame)
      -> cleanup     drop floaters, optional Taubin smoothing      cleanup.py
      -> decimate    at most N triangles (clustering, quadrics)   decimate.py
      -> colors      the colour field at the final vertices
      -> unwrap      per-corner UVs in one atlas                  unwrap.py
      -> bake        rasterise in UV space, then the colour field   raster.py, bake.py
                     at each texel's point and the dense surface's
                     normals in tangent space

The model is reached only through `color_at(points (K, 3) float32, Blender frame, on
the device) -> rgb (K, 3) in [0, 1]`, so the stage knows nothing of TripoSR.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .bake import bake_color, bake_normals, texel_points
from .cleanup import compact, floater_faces, taubin_smooth
from .decimate import decimate
from .raster import rasterize
from .steps import CancelFn, ProgressFn, StepClock, torch_threads
from .surface_normals import SurfaceNormalField
from .tangents import uv_tangents, vertex_normals
from .unwrap import unwrap

# which progress stage each step reports as, and its share of that stage's bar
# (rough CPU timings from docs/asset.md; for the progress bar only)
STEP_STAGES = {"cleanup": "cleanup", "decimate": "decimate", "colors": "colors", "unwrap": "unwrap",
               "rasterize": "bake", "bake_color": "bake", "bake_normals": "bake"}
STEP_WEIGHTS = {"rasterize": 0.4, "bake_color": 3.0, "bake_normals": 1.0}
# texels just outside a chart that bilinear filtering can read, baked from the chart's edge
RING_TEXELS = 1.5
COLOR_CHUNK = 1 << 16  # points per colour-field query: each carries 3 x C sampled features


@dataclass
class AssetResult:
    """The finished mesh as numpy arrays (what crosses the worker pipe).

    vertices (N, 3) float32, Blender frame; faces (M, 3) int32, outward winding;
    colors (N, 4) uint8 RGBA from the colour field at the vertices (the PLY export and
    Blender's colour attribute use them, textured or not). With a texture:
    corner_uvs (M, 3, 2) float32, Blender's per-corner (loop) UVs, v up; base_color
    and normal_map (T, T, 3) uint8, top row first (normal_map None when off), the
    normal map in tangent space (OpenGL/glTF/Blender: green = +v), to be read as
    non-colour data, against the smooth vertex normals Blender computes.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    corner_uvs: np.ndarray | None = None
    base_color: np.ndarray | None = None
    normal_map: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


def make_asset(vertices: np.ndarray, faces: np.ndarray, settings, color_at, device: str | torch.device = "cpu",
               progress: ProgressFn | None = None, should_cancel: CancelFn | None = None) -> AssetResult:
    """Run the stage on a raw surface (numpy, Blender frame).

    settings: a GenerateSettings (max_faces, texture_size, normal_map,
    smooth_iterations, keep_floaters). progress(stage, fraction) and should_cancel()
    are called between steps and chunks; cancelling raises bridge.errors.Cancelled.
    """
    device = torch.device(device)
    steps = dict(STEP_STAGES)
    if not settings.texture_size:
        for name in ("unwrap", "rasterize", "bake_color", "bake_normals"):
            del steps[name]
    elif not settings.normal_map:
        del steps["bake_normals"]
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    clock = StepClock(steps, STEP_WEIGHTS, progress, should_cancel, sync)
    stats = {"faces_in": int(len(faces)), "vertices_in": int(len(vertices))}
    field_threads = torch.get_num_threads()  # the colour field's MLP scales with threads
    with torch_threads(1):  # the rest does not, and suffers on a busy machine (steps.py)
        dense_v, dense_f = _clean(vertices, faces, settings, device, clock, stats)

        clock.step("decimate")
        v, f = (dense_v, dense_f) if not settings.max_faces else decimate(dense_v, dense_f, settings.max_faces)
        stats.update(faces_out=int(f.shape[0]), vertices_out=int(v.shape[0]))

        report = clock.step("colors")
        with torch_threads(field_threads):
            rgb = (_query(color_at, v, report) * 255).round().to(torch.uint8).cpu().numpy()
        colors = np.concatenate((rgb, np.full((len(rgb), 1), 255, np.uint8)), axis=1)
        result = AssetResult(v.cpu().numpy().astype(np.float32), f.cpu().numpy().astype(np.int32), colors)
        if settings.texture_size:
            _texture(result, v, f, dense_v, dense_f, settings, color_at, device, clock, stats, field_threads)
    result.timings, result.stats = clock.finish(), stats
    return result


def _clean(vertices, faces, settings, device, clock, stats):
    """Floaters and smoothing -> (dense vertices, dense faces) on the device."""
    report = clock.step("cleanup")
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32).to(device)
    f = torch.as_tensor(np.asarray(faces)).to(device).long()
    stats["floater_faces_removed"] = 0
    if not settings.keep_floaters:
        keep = floater_faces(v, f)
        stats["floater_faces_removed"] = int((~keep).sum())
        if stats["floater_faces_removed"]:
            v, f, _ = compact(v, f, keep)
    return taubin_smooth(v, f, settings.smooth_iterations, check=report), f


def _texture(result, v, f, dense_v, dense_f, settings, color_at, device, clock, stats, field_threads):
    """Unwrap, rasterise and bake into `result`."""
    clock.step("unwrap")
    normals = vertex_normals(v, f)
    # on CUDA too: the unwrap is vectorised (its loops run over rows of charts and a
    # few packing tries, not over charts); not on MPS, which has no float64 for the
    # rasteriser's set-up
    low_v, low_f = (v, f) if device.type == "cuda" else (v.cpu(), f.cpu())
    layout = unwrap(low_v, low_f, settings.texture_size)
    stats["charts"] = layout.chart_count
    corner_uvs, split_vertex = layout.corner_uvs.to(device), layout.split_vertex.to(device)

    report = clock.step("rasterize")
    hits = rasterize(corner_uvs, settings.texture_size, ring=RING_TEXELS,
                     ring_faces=layout.border_faces().to(device), check=report)
    points = texel_points(v, f, hits)
    stats["texels_baked"] = len(hits)

    report = clock.step("bake_color")
    with torch_threads(field_threads):
        result.base_color = bake_color(points, hits, color_at, COLOR_CHUNK, check=report).cpu().numpy()

    if settings.normal_map:
        report = clock.step("bake_normals")
        tangents, sign = uv_tangents(low_v, low_f, normals.to(low_v.device), layout.corner_uvs, layout.split_vertex,
                                     layout.split_source.shape[0])
        detail = SurfaceNormalField(dense_v, dense_f)
        result.normal_map = bake_normals(points, hits, f, normals, tangents.to(device), sign.to(device),
                                         split_vertex, detail, check=report).cpu().numpy()
    result.corner_uvs = layout.corner_uvs.cpu().numpy()


@torch.no_grad()
def _query(color_at, points: torch.Tensor, report) -> torch.Tensor:
    """(K, 3) float rgb in [0, 1] of the colour field at `points`, in chunks."""
    out = []
    for start in range(0, points.shape[0], COLOR_CHUNK):
        out.append(color_at(points[start:start + COLOR_CHUNK]).float().clamp(0, 1))
        report(min(1.0, (start + COLOR_CHUNK) / max(1, points.shape[0])))
    return torch.cat(out) if out else torch.zeros((0, 3), device=points.device)
