"""Vertex colours (SPEC section 8): each vertex is projected into the 32 views, and the
generalizable rendering network blends the views' colours with weights it predicts from
the sampled colours and features, the volume's features, and the angle between the
surface normal and each view's direction.

Layout here: (P points, V views, features).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .sdf import SDFWeights, sdf_gradient

_MASKED_LOGIT = -1e9


def _mlp(*sizes: int, last=None) -> nn.Sequential:
    """Linear layers with ELU between them (the reference's Sequential indices)."""
    layers = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


class GeneralRenderingNetwork(nn.Module):
    """in_geometry_feat_ch 16, in_rendering_feat_ch 56, anti-alias pooling."""

    def __init__(self, geometry_channels: int = 16, feature_channels: int = 56):
        super().__init__()
        per_view = feature_channels + 3
        self.s = nn.Parameter(torch.tensor(0.2))
        self.ray_dir_fc = _mlp(4, 16, per_view, last=nn.ELU())
        self.base_fc = _mlp(per_view * 3 + geometry_channels, 64, 32, last=nn.ELU())
        self.vis_fc = _mlp(32, 32, 33, last=nn.ELU())
        self.vis_fc2 = _mlp(32, 32, 1, last=nn.Sigmoid())
        self.rgb_fc = _mlp(32 + 1 + 4, 16, 8, 1)

    def _base(self, geometry, mean, var, rgb_feat) -> torch.Tensor:
        """base_fc on [geometry, mean, var, per-view features]: the first three are the same
        for every view, so their share of the first layer is computed once per point."""
        first, second = self.base_fc[0], self.base_fc[2]
        g, f = geometry.shape[-1], rgb_feat.shape[-1]
        w = first.weight
        shared = torch.addmm(first.bias, geometry, w[:, :g].T)
        shared = shared.addmm_(mean, w[:, g : g + f].T).addmm_(var, w[:, g + f : g + 2 * f].T)
        points, views = rgb_feat.shape[:2]
        per_view = (rgb_feat.reshape(points * views, f) @ w[:, g + 2 * f :].T).reshape(points, views, -1)
        x = F.elu(per_view + shared[:, None])
        return F.elu(second(x))

    def forward(self, geometry: torch.Tensor, rgb_feat: torch.Tensor, ray_diff: torch.Tensor, mask: torch.Tensor):
        """geometry (P, 16), rgb_feat (P, V, 59), ray_diff (P, V, 4), mask (P, V, 1) float -> (P, 3)."""
        colours = rgb_feat[..., :3]
        rgb_feat = rgb_feat + self.ray_dir_fc(ray_diff)
        closeness = torch.exp(self.s.abs() * (ray_diff[..., 3:] - 1))
        weight = (closeness - closeness.min(dim=1, keepdim=True).values) * mask
        weight = weight / (weight.sum(dim=1, keepdim=True) + 1e-8)
        mean = (rgb_feat * weight).sum(dim=1)
        var = (weight * (rgb_feat - mean[:, None]) ** 2).sum(dim=1)
        x = self._base(geometry, mean, var, rgb_feat)
        x_vis = self.vis_fc(x * weight)
        x_res, vis = x_vis[..., :-1], x_vis[..., -1:]
        vis = torch.sigmoid(vis) * mask
        x = x + x_res
        vis = self.vis_fc2(x * vis) * mask
        logits = self.rgb_fc(torch.cat([x, vis, ray_diff], dim=-1))
        logits = logits.masked_fill(mask == 0, _MASKED_LOGIT)
        blend = F.softmax(logits, dim=1)
        return (colours * blend).sum(dim=1)


def _pixel_grid(points: torch.Tensor, projections: torch.Tensor, size: int):
    """Normalised pixel coordinates (V, P, 2), outside [-1, 1] moved to 2, and the strict
    inside mask (V, P), as the reference's cam2pixel in 'zeros' mode."""
    projected = projections[:, :, :3] @ points.T + projections[:, :, 3:]  # (V, 3, P)
    depth = projected[:, 2].clamp(min=1e-3)
    axes = []
    for a in range(2):
        coord = 2 * (projected[:, a] / depth) / (size - 1) - 1
        axes.append(torch.where((coord > 1) | (coord < -1), torch.full_like(coord, 2.0), coord))
    grid = torch.stack(axes, dim=-1)
    return grid, (grid.abs() < 1.0).all(dim=-1)


def view_inputs(points, volume, valid_volume, weights: SDFWeights, view_maps, w2cs, intrinsics):
    """The rendering network's inputs for points (P, 3) in N: geometry (P, 16),
    rgb_feat (P, V, 59), ray_diff (P, V, 4), mask (P, V) bool. view_maps (V, 3 + 56, H, W):
    the views' colours and fused feature maps, sampled together."""
    grid3d = points.flip(-1).reshape(1, 1, 1, -1, 3)
    geometry = F.grid_sample(volume, grid3d, padding_mode="zeros", align_corners=True).reshape(volume.shape[1], -1).T
    in_volume = F.grid_sample(valid_volume, grid3d, padding_mode="zeros", align_corners=True).reshape(-1) > 0
    in_volume &= (points.abs() < 1.0).all(dim=1)

    projections = intrinsics @ w2cs[:, :3, :]
    grid, in_view = _pixel_grid(points, projections, view_maps.shape[-1])
    sampled = F.grid_sample(view_maps, grid[:, None], padding_mode="zeros", align_corners=True)[:, :, 0]
    # (V, 59, P) -> (P, V, 59) in two transposes: faster than one strided permute
    rgb_feat = sampled.transpose(1, 2).contiguous().transpose(0, 1).contiguous()

    normals = F.normalize(sdf_gradient(weights, volume, points), dim=-1, eps=1e-6)
    centres = torch.inverse(w2cs)[:, :3, 3]
    to_view = centres[:, None] - points[None]  # (V, P, 3)
    to_view = to_view / (to_view.norm(dim=-1, keepdim=True) + 1e-6)
    diff = normals[None] - to_view
    direction = diff / diff.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    dot = (normals[None] * to_view).sum(dim=-1, keepdim=True)
    ray_diff = torch.cat([direction, dot], dim=-1).permute(1, 0, 2)  # (P, V, 4)
    mask = (in_view & in_volume[None]).T  # (P, V)
    return geometry, rgb_feat, ray_diff, mask


@torch.no_grad()
def vertex_colours(network: GeneralRenderingNetwork, points, volume, valid_volume, weights, view_maps,
                   w2cs, intrinsics) -> torch.Tensor:
    """Float colours (P, 3) in [0, 1] for points (P, 3) in N."""
    geometry, rgb_feat, ray_diff, mask = view_inputs(points, volume, valid_volume, weights, view_maps, w2cs, intrinsics)
    return network(geometry, rgb_feat, ray_diff, mask[..., None].to(rgb_feat.dtype))
