"""The refine stage, adapted to what Blender needs: a UV texture on the mesh stage's mesh.

The paper refines a point cloud drawn by a neural renderer, which no 3D package can use.
Here the coarse surface has been through the mesh stage (decimation, UV unwrap, colour
and normal bake); then:
1. every texel's point on the surface is projected into the reference view; where the
   reference view sees it (nearest in a depth buffer of the mesh, facing the camera by
   at least min_facing, inside the picture's mask) the texel takes the picture's colour
   and is fixed;
2. the other texels start at the coarse field's baked colours and are optimised with
   SDS (and the CLIP loss at small t) in random views all round, rendered through a
   differentiable texture lookup (mesh_view.py), with the paper's pull towards their
   starting colours;
3. the texture is padded outside its charts again (as the bake does) and the vertex
   colours are read from it.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..mesh.asset.bake import texel_points
from ..mesh.asset.padding import fill_empty
from ..mesh.asset.raster import rasterize
from ..mesh.asset.stage import RING_TEXELS
from ..mesh.coordinates import blender_to_model
from .cameras import novel_camera, reference_camera
from .coarse import Reference, novel_view_terms
from .mesh_view import face_normals, rasterize_mesh, render_textured, sample_texture
from .monitor import IterationMonitor

DEPTH_TOLERANCE = 0.01  # of the camera's distance: a texel within it of the nearest surface is seen


@dataclass
class Projection:
    texel: torch.Tensor  # (K,) texel index y * T + x, y from the bottom (raster.TexelHits)
    seen: torch.Tensor  # (K,) bool: the reference view sees this texel's point
    colour: torch.Tensor  # (K, 3) the picture's colour there (meaningful where seen)


def _bilinear(image: torch.Tensor, column: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """image (H, W, C) at pixel coordinates (first centre at 0.5) -> (K, C)."""
    height, width = image.shape[:2]
    grid = torch.stack((2 * column / width - 1, 2 * row / height - 1), dim=1).to(image.dtype)
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid[None, None], mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0, :, 0].transpose(0, 1)


def project_picture(vertices: torch.Tensor, faces: torch.Tensor, corner_uvs: torch.Tensor, texture_size: int,
                    camera, picture: torch.Tensor, mask: torch.Tensor, min_facing: float) -> Projection:
    """Which texels the camera sees (model-frame mesh, picture (S, S, 3) and mask (S, S)
    at the camera's size), and the picture's colour at each. The texels just outside each
    chart that bilinear filtering reads are included (as the bake includes them), so a
    lookup at a chart's edge does not mix in another colour."""
    hits = rasterize(corner_uvs, texture_size, ring=RING_TEXELS)
    points = texel_points(vertices, faces, hits)
    column, row, depth = camera.project(points)
    size = camera.size
    inside = (column >= 0) & (column < size) & (row >= 0) & (row < size) & (depth > 0)
    pixel = (row.clamp(0, size - 1).long() * size + column.clamp(0, size - 1).long())
    nearest = rasterize_mesh(vertices, faces, camera).depth_image().reshape(-1)[pixel]
    unoccluded = depth <= nearest + DEPTH_TOLERANCE * camera.distance
    towards_camera = F.normalize(camera.position.to(points.device) - points, dim=1)
    facing = (face_normals(vertices, faces)[hits.face] * towards_camera).sum(dim=1) >= min_facing
    in_mask = _bilinear(mask[..., None], column, row)[:, 0] >= 0.5
    seen = inside & unoccluded & facing & in_mask
    return Projection(hits.texel, seen, _bilinear(picture, column, row).clamp(0, 1))


def texel_rows(texel: torch.Tensor, size: int) -> torch.Tensor:
    """Texel indices y * T + x (y from the bottom) -> flat indices of a top-row-first image."""
    return (size - 1 - texel // size) * size + texel % size


def vertex_colors(texture: torch.Tensor, faces: torch.Tensor, corner_uvs: torch.Tensor, vertex_count: int) -> np.ndarray:
    """(N, 4) uint8 RGBA: the texture at one of each vertex's corners."""
    uv = torch.zeros((vertex_count, 2), device=texture.device)
    uv[faces.reshape(-1)] = corner_uvs.reshape(-1, 2).to(texture.device)
    rgb = (sample_texture(texture, uv).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return np.concatenate((rgb, np.full((vertex_count, 1), 255, np.uint8)), axis=1)


def refine_texture(asset, models, guidance, reference: Reference, picture: torch.Tensor, mask: torch.Tensor, options,
                   generator: torch.Generator, monitor: IterationMonitor):
    """asset: the mesh stage's AssetResult (Blender frame, with corner_uvs and base_color);
    picture (S, S, 3) and mask (S, S) at options.refine_render_size. Returns
    (base_color (T, T, 3) uint8 top row first, colors (N, 4) uint8, stats)."""
    device = picture.device
    vertices = blender_to_model(torch.from_numpy(asset.vertices).float()).to(device)
    faces = torch.from_numpy(asset.faces).long().to(device)
    corner_uvs = torch.from_numpy(asset.corner_uvs).float().to(device)
    size = asset.base_color.shape[0]
    start = torch.from_numpy(asset.base_color).float().to(device) / 255.0  # (T, T, 3), top row first

    camera = reference_camera(options, picture.shape[0])
    projection = project_picture(vertices, faces, corner_uvs, size, camera, picture, mask, options.min_facing)
    fixed = torch.zeros(size * size, dtype=torch.bool, device=device)
    fixed_colour = torch.zeros((size * size, 3), device=device)
    rows = texel_rows(projection.texel[projection.seen], size)
    fixed[rows] = True
    fixed_colour[rows] = projection.colour[projection.seen]
    fixed, fixed_colour = fixed.view(size, size, 1), fixed_colour.view(size, size, 3)

    free = torch.nn.Parameter(start.clone())
    optimiser = torch.optim.Adam([free], lr=options.refine_lr, betas=(0.9, 0.99), eps=1e-15)
    total = max(1, options.refine_iterations)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: 0.1 ** min(i / total, 1.0))

    def current():
        return torch.where(fixed, fixed_colour, free)

    for iteration in range(options.refine_iterations):
        monitor.before(iteration)
        view_camera = novel_camera(iteration, options, generator, options.refine_render_size, width=180.0)
        background = torch.rand(3, generator=generator, device=generator.device).to(device)
        with torch.no_grad():
            view = rasterize_mesh(vertices, faces, view_camera)
        image = render_textured(view, corner_uvs, current(), background)
        terms = novel_view_terms(image, guidance, models, reference, background, options, generator,
                                 options.refine_guidance_scale)
        terms["keep"] = options.refine_reg_weight * ((free - start) ** 2 * (~fixed)).mean()
        loss = sum(terms.values())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        monitor.after(iteration, float(loss.detach()), {name: float(value.detach()) for name, value in terms.items()}, image)

    with torch.no_grad():
        texture = current().clamp(0, 1)
        # pad outside the charts again, as the bake does, from the refined charts
        filled = torch.zeros(size * size, dtype=torch.bool, device=device)
        filled[texel_rows(projection.texel, size)] = True
        texture = fill_empty(texture, filled.view(size, size))
        colors = vertex_colors(texture, faces, corner_uvs, vertices.shape[0])
        base_color = (texture * 255).round().to(torch.uint8).cpu().numpy()
    stats = {"texels": int(projection.texel.shape[0]), "texels_from_picture": int(projection.seen.sum())}
    return base_color, colors, stats
