"""A textured mesh seen by a camera, in PyTorch: rasterise, depth-test, look the texture up.

Rasterisation (which face covers which pixel, where) has no gradient and needs none:
the geometry is fixed in the refine stage. The texture lookup is grid_sample over the
UV each pixel's face gives, so the image is differentiable in the texture's texels.
Triangles are set up by backend/mesh/asset/raster.cell_hits; the nearest face at each
pixel wins; barycentrics are corrected for perspective.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..mesh.asset.raster import cell_hits


@dataclass
class MeshView:
    pixel: torch.Tensor  # (P,) covered pixels, row * size + column
    face: torch.Tensor  # (P,) the nearest face there
    bary: torch.Tensor  # (P, 3) its perspective-correct barycentrics
    depth: torch.Tensor  # (P,) distance along the view axis
    size: int

    def depth_image(self) -> torch.Tensor:
        """(size, size) depth, +inf where no face is."""
        image = torch.full((self.size * self.size,), float("inf"), device=self.depth.device)
        image[self.pixel] = self.depth
        return image.view(self.size, self.size)


def rasterize_mesh(vertices: torch.Tensor, faces: torch.Tensor, camera) -> MeshView:
    """vertices (N, 3) in the model's frame (the camera's), faces (M, 3) long."""
    size = camera.size
    column, row, depth = camera.project(vertices.float())
    in_front = (depth[faces] > 1e-4).all(dim=1)
    corners = torch.stack((column, row), dim=1)[faces]  # (M, 3, 2) in pixel units
    keep = in_front.nonzero()[:, 0]
    x, y, local, bary = cell_hits(corners[keep], size, size)
    face = keep[local]
    z = depth[faces[face]]  # (K, 3)
    over_z = bary.to(z.dtype) / z
    hit_depth = 1.0 / over_z.sum(dim=1)
    pixel = y * size + x
    nearest = torch.full((size * size,), float("inf"), device=z.device)
    nearest.scatter_reduce_(0, pixel, hit_depth, reduce="amin")
    winner = (hit_depth <= nearest[pixel]).nonzero()[:, 0]
    first = torch.full((size * size,), winner.shape[0], device=z.device, dtype=torch.long)
    first.scatter_reduce_(0, pixel[winner], torch.arange(winner.shape[0], device=z.device), reduce="amin")
    chosen = winner[first[first < winner.shape[0]]]
    return MeshView(pixel[chosen], face[chosen], (over_z[chosen] * hit_depth[chosen, None]).float(),
                    hit_depth[chosen], size)


def uv_at(view: MeshView, corner_uvs: torch.Tensor) -> torch.Tensor:
    """(P, 2) texture coordinates (u right, v up) at the view's covered pixels."""
    return (corner_uvs[view.face] * view.bary[..., None]).sum(dim=1)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of texture (T, T, C), top row first (as image files and the mesh
    stage's bake store it), at uv (P, 2) -> (P, C), differentiable in the texture."""
    grid = torch.stack((2.0 * uv[:, 0] - 1.0, 1.0 - 2.0 * uv[:, 1]), dim=1).to(texture.dtype)
    out = F.grid_sample(texture.permute(2, 0, 1)[None], grid[None, None], mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0, :, 0].transpose(0, 1)


def render_textured(view: MeshView, corner_uvs: torch.Tensor, texture: torch.Tensor,
                    background: torch.Tensor) -> torch.Tensor:
    """(size, size, 3) image of the textured mesh over a solid background."""
    colours = sample_texture(texture, uv_at(view, corner_uvs))
    image = background.to(texture.dtype).expand(view.size * view.size, 3).clone()
    image = image.index_put((view.pixel,), colours)
    return image.view(view.size, view.size, 3)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    corners = vertices[faces]
    return F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=1)
