"""The SDF network (SPEC section 6): a 3-layer weight-normalised MLP on the positional
encoding of a point and the regularised volume's features there (the latent).

The latent follows the reference's hand-written trilinear sampler: inside the volume it
equals grid_sample with align_corners=True, and it is zero unless 0 < f < n on every axis
(f the fractional voxel index), so a point with a coordinate of exactly -1 gets none.

sdf_grid evaluates the field on the marching-cubes grid; on a lattice the first layer and
the latent separate by axis (the encoding is per coordinate, the sampler a product of
per-axis weights), so both are built from per-axis tables instead of per point.
"""

import torch
import torch.nn.functional as F
from torch import nn

FREQUENCIES = 6  # 2^0 .. 2^5
SOFTPLUS_BETA = 100
HIDDEN = 128
LATENT = 16


class WeightNormLinear(nn.Module):
    """nn.utils.weight_norm(nn.Linear) as its state dict stores it: W = g v / |v|_row."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(d_out, 1))
        self.weight_v = nn.Parameter(torch.zeros(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out))

    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True))


class LatentSDFLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin0 = WeightNormLinear(3 * (1 + 2 * FREQUENCIES), HIDDEN)
        self.lin1 = WeightNormLinear(HIDDEN + LATENT, HIDDEN)
        self.lin2 = WeightNormLinear(HIDDEN + LATENT, HIDDEN)  # row 0: the SDF; the conf's 129 is never used


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x, beta=SOFTPLUS_BETA)


def positional_encoding(p: torch.Tensor) -> torch.Tensor:
    """[p, sin(p), cos(p), sin(2p), cos(2p), ..., sin(32p), cos(32p)] along the last axis
    (all frequencies in one sin and one cos: the same values, fewer operations)."""
    frequencies = 2.0 ** torch.arange(FREQUENCIES, dtype=p.dtype, device=p.device)
    scaled = p[..., None, :] * frequencies[:, None]  # (..., 6, 3), exact: powers of two
    waves = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # (..., 6, 2, 3)
    return torch.cat([p, waves.flatten(-3)], dim=-1)


def sample_latent(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """volume (1, C, n, n, n) laid out (X, Y, Z), points (P, 3) in N -> (P, C)."""
    n = volume.shape[-1]
    grid = points.flip(-1).reshape(1, 1, 1, -1, 3)
    # border padding: between the last voxel and n the reference clamps to the last voxel
    latent = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    latent = latent.reshape(volume.shape[1], -1).T
    index = (points + 1) / 2 * (n - 1)
    inside = ((index > 0) & (index < n)).all(dim=1, keepdim=True)
    return latent * inside


class SDFWeights:
    """The effective weights (weight norm applied once) of a LatentSDFLayer."""

    def __init__(self, layer: LatentSDFLayer):
        with torch.no_grad():
            self.w0, self.b0 = layer.lin0.weight(), layer.lin0.bias
            w1, self.b1 = layer.lin1.weight(), layer.lin1.bias
            w2, self.b2 = layer.lin2.weight(), layer.lin2.bias
        self.w1_hidden, self.w1_latent = w1[:, :HIDDEN], w1[:, HIDDEN:]
        self.w2 = w2
        self.w2_sdf_hidden, self.w2_sdf_latent = w2[0, :HIDDEN], w2[0, HIDDEN:]


def sdf_outputs(weights: SDFWeights, volume: torch.Tensor, points: torch.Tensor) -> dict:
    """Per point: the latent, the 128 outputs (SDF first) - autograd-friendly."""
    latent = sample_latent(volume, points)
    h = softplus(positional_encoding(points) @ weights.w0.T + weights.b0)
    h = softplus(torch.cat([h, latent], 1) @ torch.cat([weights.w1_hidden, weights.w1_latent], 1).T + weights.b1)
    out = torch.cat([h, latent], 1) @ weights.w2.T + weights.b2
    return {"latent": latent, "out": out, "sdf": out[:, 0]}


def sdf_gradient(weights: SDFWeights, volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """d sdf / d p by autograd, through the encoding and the latent's sampling."""
    with torch.enable_grad():
        points = points.detach().requires_grad_(True)
        sdf = sdf_outputs(weights, volume, points)["sdf"]
        (gradient,) = torch.autograd.grad(sdf.sum(), points)
    return gradient


def _axis_encoding_table(coords: torch.Tensor, w0: torch.Tensor, axis: int) -> torch.Tensor:
    """(R, 128): the first layer's pre-activation share of one axis' coordinate values."""
    columns = [axis + 3 * j for j in range(1 + 2 * FREQUENCIES)]
    encoded = positional_encoding(coords[:, None])  # (R, 13): the same order per axis
    return encoded @ w0[:, columns].T


def _axis_interpolation(coords: torch.Tensor, n: int):
    """Per-axis trilinear corners and weights, zero where the reference's sampler is."""
    index = (coords + 1) / 2 * (n - 1)
    low = torch.floor(index)
    w_high = index - low
    w_low = (low + 1) - index
    inside = ((index > 0) & (index < n)).to(coords.dtype)
    low_i = low.long().clamp(0, n - 1)
    high_i = (low.long() + 1).clamp(0, n - 1)
    return low_i, high_i, w_low * inside, w_high * inside


def _interpolate_axis(t: torch.Tensor, dim: int, table) -> torch.Tensor:
    low, high, w_low, w_high = table
    shape = [1] * t.dim()
    shape[dim] = -1
    return t.index_select(dim, low) * w_low.reshape(shape) + t.index_select(dim, high) * w_high.reshape(shape)


@torch.no_grad()
def sdf_grid(weights: SDFWeights, volume: torch.Tensor, resolution: int, on_plane=None, planes_per_step: int = 1):
    """SDF on linspace(-1, 1, R)^3 (x slowest) -> float32 (R, R, R) numpy array, a few x
    planes at a time. on_plane(done, total) is called after each step (progress, cancel)."""
    device = volume.device
    coords = torch.linspace(-1, 1, resolution, device=device)
    n, channels = volume.shape[-1], volume.shape[1]
    table = _axis_interpolation(coords, n)
    first = [_axis_encoding_table(coords, weights.w0, axis) for axis in range(3)]
    yz = first[1][:, None, :] + first[2][None, :, :]  # (R, R, 128)
    sdf = torch.empty(resolution, resolution, resolution, device=device)
    for start in range(0, resolution, planes_per_step):
        rows = slice(start, min(start + planes_per_step, resolution))
        low, high, w_low, w_high = (part[rows] for part in table)
        planes = volume[0][:, low] * w_low[:, None, None] + volume[0][:, high] * w_high[:, None, None]  # (C, S, n, n)
        planes = _interpolate_axis(_interpolate_axis(planes, 2, table), 3, table)  # (C, S, R, R)
        latent = planes.reshape(channels, -1).T  # (S*R*R, C)
        h = softplus((yz[None] + (first[0][rows] + weights.b0)[:, None, None, :]).reshape(-1, HIDDEN))
        pre = torch.addmm(weights.b1, latent, weights.w1_latent.T)
        h = softplus(pre.addmm_(h, weights.w1_hidden.T))
        values = h @ weights.w2_sdf_hidden + latent @ weights.w2_sdf_latent + weights.b2[0]
        sdf[rows] = values.reshape(-1, resolution, resolution)
        if on_plane is not None:
            on_plane(rows.stop, resolution)
    return sdf.cpu().numpy()
