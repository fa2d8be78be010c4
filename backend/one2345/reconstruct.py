"""From 32 views to a coloured mesh: One-2-3-45's export_mesh (lod0), stage by stage.

    features  pyramid features of all views, fused, compressed      (SPEC 4.1-4.3)
    volume    cost volume, sparse regularisation                    (SPEC 4.4, 5)
    sdf       the SDF on the marching-cubes grid                     (SPEC 6, 7)
    mesh      marching cubes (PyMCubes, as the reference)            (SPEC 7)
    colours   vertex colours by the rendering network                (SPEC 8)

The mesh comes back in pose.json's world frame W (z up), like the reference's mesh.ply;
frames.py turns it into Blender's.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import mcubes
import numpy as np
import torch

from ..bridge.errors import Cancelled, EmptySurfaceError
from .cameras import VolumeCameras, volume_cameras
from .colours import vertex_colours
from .cost_volume import build_cost_volume
from .features import fuse_pyramid
from .heap import reused_heap
from .model import SparseNeuS
from .sdf import sdf_grid
from .views import ViewSet, read_input_folder

STAGES = ("features", "volume", "sdf", "mesh", "colours")
DEFAULT_RESOLUTION = 256
# steps big enough that each operation has work for all threads (a busy CPU punishes many
# small operations: each waits for its threads), small enough to cancel within about a
# second on 2 cores (4 planes: 262,144 points of the 256 grid)
COLOUR_CHUNK = 16384
PLANES_PER_STEP = {"cpu": 4, "cuda": 16}


class ReconstructedMesh(NamedTuple):
    """vertices, faces, colors = reconstruct(...)"""

    vertices: np.ndarray  # (V, 3) float32, frame W
    faces: np.ndarray  # (F, 3) int64, wound outwards
    colors: np.ndarray  # (V, 3) uint8


@dataclass
class Conditioning:
    """What the views give the SDF and the colours."""

    cameras: VolumeCameras
    view_maps: torch.Tensor  # (32, 3 + 56, 256, 256): the views in [0, 1] and their fused features
    volume: torch.Tensor  # (1, 16, n, n, n), zero off the active voxels
    valid: torch.Tensor  # (1, 1, n, n, n) float 0/1

    @property
    def images(self) -> torch.Tensor:
        return self.view_maps[:, :3]

    @property
    def fused(self) -> torch.Tensor:
        return self.view_maps[:, 3:]


class _Steps:
    """progress(stage, fraction) and should_cancel() in one place."""

    def __init__(self, progress, should_cancel):
        self.progress = progress
        self.should_cancel = should_cancel

    def report(self, stage: str, fraction: float) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()
        if self.progress is not None:
            self.progress(stage, float(fraction))


def images_tensor(views: ViewSet, device) -> torch.Tensor:
    """uint8 (V, H, W, 3) -> float32 (V, 3, H, W) / 255, as ToTensor reads the PNGs."""
    return torch.from_numpy(views.images).to(device).permute(0, 3, 1, 2).float().div(255)


def encode_views(model: SparseNeuS, images: torch.Tensor, record: dict | None = None, steps: "_Steps | None" = None):
    """Fused pyramid maps (V, 56, H, W) and compressed features (V, 16, H, W); batch
    statistics over all views together."""
    between = (lambda: steps.report("features", 0.5)) if steps is not None else None
    pyramid = model.pyramid_feature_network(images, between)
    if record is not None:
        record["pyramid"] = pyramid
    fused = fuse_pyramid(pyramid)
    del pyramid
    return fused, model.sdf_network_lod0.compress_layer(fused)


def regularised_volume(model: SparseNeuS, compressed: torch.Tensor, cameras: VolumeCameras,
                       record: dict | None = None, steps: "_Steps | None" = None):
    """-> volume (1, 16, n, n, n) and its valid mask (1, 1, n, n, n)."""
    n = model.volume_size
    affine = cameras.affine_mats.to(compressed.device)
    on_chunk = (lambda done, total: steps.report("volume", 0.5 * done / total)) if steps is not None else None
    cost, active, counts = build_cost_volume(compressed, affine, n, on_chunk=on_chunk)
    if not bool(active.any()):
        raise EmptySurfaceError("no voxel of the volume is seen by two views: the cameras do not look at "
                                "a common object")
    net = model.sdf_network_lod0.sparse_costreg_net
    masks = net.level_masks(active)
    blocks = {} if record is not None else None
    between = (lambda: steps.report("volume", 0.5)) if steps is not None else None
    volume = net(cost, masks, blocks, between)
    if record is not None:
        record.update(cost=cost, active=active, counts=counts, masks=masks, blocks=blocks)
    return volume, active[None, None].float()


def condition(model: SparseNeuS, views: ViewSet, steps: _Steps | None = None, record: dict | None = None) -> Conditioning:
    steps = steps or _Steps(None, None)
    device = model.device
    cameras = volume_cameras(views)
    images = images_tensor(views, device)
    steps.report("features", 0.0)
    fused, compressed = encode_views(model, images, record, steps)
    view_maps = torch.cat([images, fused], dim=1)
    del fused
    if record is not None:
        record["compressed"] = compressed
    steps.report("volume", 0.0)
    volume, valid = regularised_volume(model, compressed, cameras, record, steps)
    del compressed
    return Conditioning(cameras, view_maps, volume, valid)


def marching_cubes(sdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices in N (float64) and faces of the zero level of u = -sdf (u > 0 inside)."""
    resolution = sdf.shape[0]
    vertices, faces = mcubes.marching_cubes(-sdf, 0.0)
    return vertices / (resolution - 1.0) * 2.0 + -1.0, faces.astype(np.int64)


def colour_points(model: SparseNeuS, cond: Conditioning, points_n: torch.Tensor, steps: _Steps | None = None,
                  chunk: int | None = None, stage: str = "colours") -> torch.Tensor:
    """Float colours (P, 3) in [0, 1] of points (P, 3) in N on the surface (the rendering
    network at any point: each view's colour there, blended by the network's weights)."""
    device = model.device
    chunk = chunk or COLOUR_CHUNK
    points = points_n.to(device=device, dtype=torch.float32)
    weights = model.sdf_weights()
    w2cs = cond.cameras.w2cs.to(device)
    intrinsics = cond.cameras.intrinsics.to(device)
    out = torch.empty(len(points), 3, device=device)
    with reused_heap():
        for start in range(0, len(points), chunk):
            if steps is not None:
                steps.report(stage, start / max(len(points), 1))
            part = points[start : start + chunk]
            out[start : start + chunk] = vertex_colours(model.rendering_network_lod0, part, cond.volume, cond.valid,
                                                        weights, cond.view_maps, w2cs, intrinsics)
    return out


def colour_vertices(model: SparseNeuS, cond: Conditioning, vertices_n: np.ndarray, steps: _Steps | None = None,
                    chunk: int | None = None) -> np.ndarray:
    """Float colours (V, 3) in [0, 1] for vertices in N (float64, as marching cubes gives them)."""
    return colour_points(model, cond, torch.from_numpy(vertices_n), steps, chunk).cpu().numpy()


def to_bytes(colours: np.ndarray) -> np.ndarray:
    """[0, 1] colours -> uint8 by truncation, as the reference writes its mesh's colours."""
    return (colours * 255).astype(np.uint8)


@dataclass
class Surface:
    """The reconstructed surface before its colours: the conditioning they need, the
    vertices in N (float64, as marching cubes gives them) and the faces."""

    cond: Conditioning
    vertices_n: np.ndarray
    faces: np.ndarray  # (F, 3) int64, wound outwards

    def vertices_world(self) -> np.ndarray:
        return self.cond.cameras.to_world(self.vertices_n).astype(np.float32)


@torch.no_grad()
def reconstruct_surface(model: SparseNeuS, views: ViewSet, resolution: int = DEFAULT_RESOLUTION, progress=None,
                        should_cancel=None) -> Surface:
    """features, volume, sdf, mesh: the stages up to marching cubes (see reconstruct)."""
    steps = _Steps(progress, should_cancel)
    # full float32 convolutions on GPUs too (cuDNN would use TF32 on Ampere and newer)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False), \
            reused_heap():
        cond = condition(model, views, steps)
        weights = model.sdf_weights()
        steps.report("sdf", 0.0)
        planes = PLANES_PER_STEP.get(model.device.type, 4)
        sdf = sdf_grid(weights, cond.volume, resolution, on_plane=lambda done, total: steps.report("sdf", done / total),
                       planes_per_step=planes)
    steps.report("mesh", 0.0)
    vertices_n, faces = marching_cubes(sdf)
    del sdf
    if len(faces) == 0:
        raise EmptySurfaceError("the reconstructed SDF has no zero level inside the volume: no surface to mesh")
    return Surface(cond, vertices_n, faces)


@torch.no_grad()
def reconstruct(model: SparseNeuS, views: ViewSet | str | Path, resolution: int = DEFAULT_RESOLUTION, progress=None,
                should_cancel=None) -> ReconstructedMesh:
    """The coloured mesh of the object the views show, in pose.json's frame W. views: a
    ViewSet, or an input folder in One-2-3-45's layout (pose.json, stage2_8/).
    progress(stage, fraction) with the stages of STAGES; should_cancel() -> True raises
    Cancelled at the next step: a convolution block, a chunk of voxels, a few x planes of
    the grid or a chunk of vertices away."""
    if not isinstance(views, ViewSet):
        views = read_input_folder(views)
    surface = reconstruct_surface(model, views, resolution, progress, should_cancel)
    steps = _Steps(progress, should_cancel)
    colors = to_bytes(colour_vertices(model, surface.cond, surface.vertices_n, steps))
    steps.report("colours", 1.0)
    return ReconstructedMesh(surface.vertices_world(), surface.faces, colors)
