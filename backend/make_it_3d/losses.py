"""The coarse stage's losses as plain functions of tensors (each tested against a direct
computation). Weights are applied by the caller (options.py holds the paper's)."""

import torch


def reference_color_loss(image: torch.Tensor, picture: torch.Tensor, mask: torch.Tensor,
                         background: torch.Tensor) -> torch.Tensor:
    """Masked colour loss at the reference view: mean |render - target| over pixels and
    channels, where the target is the picture inside its mask and the render's own
    background outside (so the object's colours are matched and the space around it is
    kept empty). image, picture (H, W, 3); mask (H, W) in [0, 1]; background (3,)."""
    target = picture * mask[..., None] + background * (1.0 - mask[..., None])
    return (image - target).abs().mean()


def pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm() + eps)


def depth_loss(depth: torch.Tensor, reference_depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Pearson correlation of the rendered depth with the picture's estimated depth,
    over the mask's pixels (the paper's negative Pearson correlation, offset to be >= 0)."""
    inside = mask > 0.5
    if int(inside.sum()) < 2:
        return depth.sum() * 0.0
    return 1.0 - pearson(depth[inside], reference_depth[inside])


def opacity_loss(opacity: torch.Tensor) -> torch.Tensor:
    """Mean squared accumulated opacity: fewer, smaller clouds (the paper's opacity term)."""
    return (opacity**2).mean()


def entropy_loss(opacity: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy (bits) of each ray's opacity: rays either hit or miss."""
    a = opacity.clamp(1e-5, 1 - 1e-5)
    return (-a * torch.log2(a) - (1 - a) * torch.log2(1 - a)).mean()


def orientation_loss(normals: torch.Tensor, directions: torch.Tensor, weight_per_ray: torch.Tensor) -> torch.Tensor:
    """sum_k w_k max(0, n_k . d)^2 per ray, averaged over rays: visible surface must face
    the camera. Estimated from samples drawn in proportion to w (render.regulariser_samples),
    so it is weight_per_ray (the rays' mean total weight) times the samples' mean."""
    facing_away = (normals * directions).sum(dim=1).clamp(min=0.0)
    return weight_per_ray * (facing_away**2).mean()


def smoothness_loss(normals: torch.Tensor, perturbed_normals: torch.Tensor) -> torch.Tensor:
    """Mean |n(x) - n(x + noise)|: nearby points have similar normals."""
    return (normals - perturbed_normals).abs().mean()


def clip_loss(embedding: torch.Tensor, reference_embedding: torch.Tensor) -> torch.Tensor:
    """Minus the cosine similarity of two CLIP embeddings (normalised here)."""
    a = embedding / embedding.norm(dim=-1, keepdim=True)
    b = reference_embedding / reference_embedding.norm(dim=-1, keepdim=True)
    return -(a * b).sum(dim=-1).mean()


def sds_surrogate(latents: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient with respect to `latents` is exactly `gradient` (SDS skips the
    U-Net's Jacobian): half the squared distance to a detached target one step away."""
    target = (latents - gradient).detach()
    return 0.5 * ((latents - target) ** 2).sum()
