"""Volume rendering of a field in plain PyTorch (no ray-marching extension).

Per ray: the segment inside the field's cube [-r, r]^3, `samples` stratified points,
then `fine_samples` more drawn from the first points' weights (inverse transform
sampling, as NeRF's hierarchical sampling), all evaluated with gradients and
composited front to back. `checkpoint=True` recomputes the field in the backward pass
(torch.utils.checkpoint) instead of keeping its activations: 128 x 128 rays of 96
points keep ~8 GB of decoder activations otherwise.

Normals for the regularisers are minus the density's gradient by central differences
(the paper's finite_difference_normal), taken at a few thousand sample points drawn
in proportion to their rendering weight: the orientation and smoothness losses weight
every sample by that weight anyway, so this estimates them at a fraction of the cost.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as recompute

NORMAL_STEP = 0.01  # finite-difference step and smoothness perturbation (the paper's 1e-2)


@dataclass
class Rendering:
    image: torch.Tensor  # (S, S, 3), composited on the background
    opacity: torch.Tensor  # (S, S), sum of the weights
    depth: torch.Tensor  # (S, S), expected distance along the ray where opaque
    weights: torch.Tensor  # (R, K) per sample
    points: torch.Tensor  # (R, K, 3), detached
    directions: torch.Tensor  # (R, 3)


def ray_box(origins, directions, radius):
    """(near, far, hit) of each ray against the cube [-radius, radius]^3."""
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t0, t1 = (-radius - origins) / safe, (radius - origins) / safe
    near = torch.minimum(t0, t1).amax(dim=1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(dim=1)
    hit = far > near
    return torch.where(hit, near, 0.0), torch.where(hit, far, 0.0), hit


def evaluate(field, points: torch.Tensor, chunk: int = 1 << 18, use_checkpoint: bool = False):
    """(density (N,), rgb (N, 3)) of points (N, 3), in chunks, optionally recomputed."""
    sigmas, colours = [], []
    for start in range(0, points.shape[0], chunk):
        part = points[start:start + chunk]
        if use_checkpoint and torch.is_grad_enabled():
            sigma, rgb = recompute(field.density_and_color, part, use_reentrant=False)
        else:
            sigma, rgb = field.density_and_color(part)
        sigmas.append(sigma)
        colours.append(rgb)
    return torch.cat(sigmas), torch.cat(colours)


def composite(sigma, z, far):
    """Weights (R, K) of samples at distances z (R, K) with densities sigma (R, K)."""
    deltas = torch.cat((z[:, 1:] - z[:, :-1], (far[:, None] - z[:, -1:]).clamp(min=0.0)), dim=1)
    alpha = 1.0 - torch.exp(-sigma * deltas)
    transmittance = torch.cumprod(torch.cat((torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10), dim=1), dim=1)
    return alpha * transmittance[:, :-1]


def sample_pdf(z, weights, count: int, generator):
    """`count` distances per ray drawn from the piecewise-constant density of `weights`
    over the intervals between the midpoints of z (inverse transform sampling)."""
    mids = 0.5 * (z[:, 1:] + z[:, :-1])
    pdf = weights[:, 1:-1] + 1e-5
    cdf = torch.cumsum(pdf / pdf.sum(dim=1, keepdim=True), dim=1)
    cdf = torch.cat((torch.zeros_like(cdf[:, :1]), cdf), dim=1)
    u = torch.rand((z.shape[0], count), generator=generator, device=generator.device).to(z.device)
    index = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True).clamp(1, cdf.shape[1] - 1)
    cdf_lo, cdf_hi = cdf.gather(1, index - 1), cdf.gather(1, index)
    z_lo, z_hi = mids.gather(1, index - 1), mids.gather(1, index)
    t = (u - cdf_lo) / (cdf_hi - cdf_lo).clamp(min=1e-8)
    return z_lo + t * (z_hi - z_lo)


def render(field, camera, background: torch.Tensor, generator: torch.Generator, samples: int = 64,
           fine_samples: int = 32, use_checkpoint: bool = False, device=None) -> Rendering:
    """The field seen by `camera` over a solid `background` (3,) colour."""
    device = device or background.device
    origins, directions = camera.rays(device)
    near, far, hit = ray_box(origins, directions, field.radius)
    rays = origins.shape[0]
    jitter = torch.rand((rays, samples), generator=generator, device=generator.device).to(device)
    z = near[:, None] + (far - near)[:, None] * (torch.arange(samples, device=device) + jitter) / samples

    def points_at(distances):
        return origins[:, None, :] + directions[:, None, :] * distances[..., None]

    sigma, rgb = evaluate(field, points_at(z).reshape(-1, 3), use_checkpoint=use_checkpoint)
    sigma, rgb = sigma.view(rays, samples), rgb.view(rays, samples, 3)
    if fine_samples:
        with torch.no_grad():
            z_fine = sample_pdf(z, composite(sigma.detach(), z, far), fine_samples, generator)
        sigma_fine, rgb_fine = evaluate(field, points_at(z_fine).reshape(-1, 3), use_checkpoint=use_checkpoint)
        z, order = torch.sort(torch.cat((z, z_fine), dim=1), dim=1)
        sigma = torch.cat((sigma, sigma_fine.view(rays, fine_samples)), dim=1).gather(1, order)
        rgb = torch.cat((rgb, rgb_fine.view(rays, fine_samples, 3)), dim=1)
        rgb = rgb.gather(1, order[..., None].expand(-1, -1, 3))
    sigma = sigma * hit[:, None]  # a ray that misses the cube sees only the background
    weights = composite(sigma, z, far)
    opacity = weights.sum(dim=1)
    image = (weights[..., None] * rgb).sum(dim=1) + (1.0 - opacity)[:, None] * background.to(device)
    depth = (weights * z).sum(dim=1) / opacity.clamp(min=1e-6)
    size = camera.size
    return Rendering(image.view(size, size, 3), opacity.view(size, size), depth.view(size, size), weights,
                     points_at(z).detach(), directions)


def normals(field, points: torch.Tensor, step: float = NORMAL_STEP) -> torch.Tensor:
    """Unit outward normals (N, 3): minus the density's gradient by central differences."""
    offsets = torch.eye(3, device=points.device) * step
    shifted = torch.cat((points[:, None, :] + offsets, points[:, None, :] - offsets), dim=1).reshape(-1, 3)
    density = field.density_and_color(shifted)[0].view(-1, 2, 3)
    gradient = (density[:, 0] - density[:, 1]) / (2 * step)
    return F.normalize(-gradient, dim=1, eps=1e-12)


def regulariser_samples(rendering: Rendering, count: int, generator: torch.Generator):
    """(points (count, 3), directions (count, 3), total weight per ray): samples drawn in
    proportion to their (detached) rendering weight, for Monte Carlo estimates of
    weight-weighted sums. None when nothing is visible."""
    weights = rendering.weights.detach().reshape(-1)
    total = weights.sum()
    if float(total) <= 1e-8:
        return None
    index = torch.multinomial((weights / total).to(generator.device), count, replacement=True,
                              generator=generator).to(weights.device)
    samples = rendering.points.shape[1]
    points = rendering.points.reshape(-1, 3)[index]
    directions = rendering.directions[index // samples]
    return points, directions, total / rendering.weights.shape[0]
