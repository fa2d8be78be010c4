"""Back-projection of the compressed image features into the voxel grid and their
aggregation into the cost volume (SPEC 4.4).

Every view is sampled at every voxel (also views that do not see it, and voxels behind a
camera), as the reference does; only the count divides by the views that see the voxel.
"""

import torch
import torch.nn.functional as F

# the reference keeps voxels seen by more than min(1, V - 1) views
_MIN_VIEWS_EXCLUSIVE = 1


def voxel_size_for(n: int) -> float:
    """The conf's literal: 2 / (n - 1) rounded to 8 decimals (0.02105263 for n = 96)."""
    return round(2.0 / (n - 1), 8)


def voxel_points(n: int, device) -> torch.Tensor:
    """(n^3, 3) float32 voxel centres in N, x-major (x slowest, z fastest)."""
    coords = torch.arange(n, dtype=torch.float32, device=device) * voxel_size_for(n) + -1.0
    grid = torch.meshgrid(coords, coords, coords, indexing="ij")
    return torch.stack(grid, dim=-1).reshape(-1, 3)


def project(affine_mats: torch.Tensor, points_h: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel coordinates (V, N, 2) of points (4, N) in every view, and whether
    each view sees them: inside the image (pixel centres at integers 0..size-1) and in
    front. One batched product, as the reference forms it (the same rounding)."""
    views = affine_mats.shape[0]
    x, y, z = torch.bmm(affine_mats, points_h.expand(views, -1, -1)).unbind(1)[:3]
    z = torch.where(z >= 0, z.clamp(min=1e-6), z)
    grid = torch.stack([2 * (x / z) / (size - 1) - 1, 2 * (y / z) / (size - 1) - 1], dim=-1)
    visible = (grid.abs() <= 1).all(dim=-1) & (z > 0)
    return grid, visible


def build_cost_volume(feats: torch.Tensor, affine_mats: torch.Tensor, n: int, chunk: int = 1 << 17, on_chunk=None):
    """feats (V, C, H, W), affine_mats (V, 4, 4) -> cost (1, 2C, n, n, n) = [variance, mean]
    (zero at inactive voxels), active mask (n, n, n) bool, visible-view counts (n, n, n).
    on_chunk(done, total) is called after each chunk of voxels (progress, cancel)."""
    views, channels, height, width = feats.shape
    assert height == width, "square views"
    points = voxel_points(n, feats.device)
    total = points.shape[0]
    cost = torch.zeros(2 * channels, total, device=feats.device)
    counts = torch.zeros(total, dtype=torch.int64, device=feats.device)
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        points_h = torch.cat([points[start:stop].T, torch.ones(1, stop - start, device=feats.device)])
        grid, visible = project(affine_mats, points_h, width)
        counts[start:stop] = visible.sum(dim=0)
        sampled = F.grid_sample(feats, grid[:, None], mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled = sampled[:, :, 0]  # (V, C, N)
        inverse = 1.0 / (counts[start:stop] + 1e-5)
        mean = sampled.sum(dim=0) * inverse
        cost[:channels, start:stop] = sampled.square_().sum(dim=0) * inverse - mean**2
        cost[channels:, start:stop] = mean
        del sampled
        if on_chunk is not None:
            on_chunk(stop, total)
    active = counts > min(_MIN_VIEWS_EXCLUSIVE, views - 1)
    cost *= active
    shape = (n, n, n)
    return cost.reshape(1, 2 * channels, *shape), active.reshape(shape), counts.reshape(shape)
