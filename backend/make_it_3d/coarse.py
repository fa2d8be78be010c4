"""The coarse stage: optimise the field so the reference view matches the picture and the
other views please Stable Diffusion (the paper's section 3.1).

Each iteration renders one camera of the progressive schedule (cameras.py) over a random
background colour and adds:
- always: opacity and entropy of each ray's opacity, orientation and smoothness of the
  normals (render.regulariser_samples);
- at the reference view: the masked colour loss and 1 - Pearson correlation of the
  depth with DPT's (losses.py);
- at a novel view (from options.diffusion_start on): a diffusion time t in t_range; for
  t <= clip_below the CLIP loss between the one-step denoised view and the picture on
  the same background, otherwise SDS (guidance.py), as the paper's code chooses.
The CLIP loss's gradient reaches the render straight through the denoised estimate
(d x0_hat / d x taken as the identity, as SDS drops the U-Net's Jacobian), so neither
VAE half is differentiated for it.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cameras import Camera, camera_for
from .guidance import StableDiffusionGuidance, resize
from .losses import (
    clip_loss,
    depth_loss,
    entropy_loss,
    opacity_loss,
    orientation_loss,
    reference_color_loss,
    smoothness_loss,
)
from .monitor import IterationMonitor
from .perception import clip_embedding
from .render import NORMAL_STEP, normals, regulariser_samples, render


@dataclass
class Reference:
    """The picture as the coarse stage uses it, at the render size unless said."""

    camera: Camera
    picture: torch.Tensor  # (S, S, 3) straight colours
    mask: torch.Tensor  # (S, S) alpha in [0, 1]
    inner_mask: torch.Tensor  # (S, S) 0/1: the mask shrunk by a pixel (for depth: no edge pixels)
    depth: torch.Tensor  # (S, S) DPT's relative depth
    picture_large: torch.Tensor  # (3, L, L) straight colours at sd_size (for CLIP)
    mask_large: torch.Tensor  # (1, L, L)


def shrink(mask: torch.Tensor, pixels: int = 1) -> torch.Tensor:
    """1 where every pixel within `pixels` is inside the (0.5-thresholded) mask."""
    inside = (mask > 0.5).float()[None, None]
    return (-F.max_pool2d(-inside, 2 * pixels + 1, stride=1, padding=pixels))[0, 0]


def _regularisers(field, rendering, options, generator, diffusing: bool) -> dict:
    entropy = options.entropy_weight if diffusing else options.entropy_weight / 10
    terms = {"opacity": options.opacity_weight * opacity_loss(rendering.opacity),
             "entropy": entropy * entropy_loss(rendering.opacity)}
    if options.orientation_weight or options.smoothness_weight:
        drawn = regulariser_samples(rendering, options.regulariser_points, generator)
        if drawn is not None:
            points, directions, per_ray = drawn
            n = normals(field, points)
            terms["orientation"] = options.orientation_weight * orientation_loss(n, directions, per_ray)
            if options.smoothness_weight:
                jitter = torch.randn(points.shape, generator=generator, device=generator.device).to(points.device)
                terms["smoothness"] = options.smoothness_weight * smoothness_loss(
                    n, normals(field, points + NORMAL_STEP * jitter))
    return terms


def picture_on(reference: Reference, background: torch.Tensor) -> torch.Tensor:
    """(1, 3, L, L) the picture over a solid background."""
    alpha = reference.mask_large
    return (reference.picture_large * alpha + background[:, None, None] * (1 - alpha))[None]


def novel_view_terms(image, guidance: StableDiffusionGuidance, models, reference: Reference, background,
                     options, generator, scale: float) -> dict:
    """SDS or the CLIP loss of the denoised view for one rendered novel view (H, W, 3)."""
    large = resize(image.permute(2, 0, 1)[None], options.sd_size)
    t = guidance.sample_timestep(options.t_range, generator)
    steps = models.alphas_cumprod.shape[0]
    if t <= options.clip_below * steps:
        with torch.no_grad():
            latents = guidance.encode_images(large, generator)
            noisy = guidance.add_noise(latents, guidance.latent_noise(latents, generator), t)
            denoised = guidance.denoised_images(noisy, guidance.predict_noise(noisy, t, scale), t)
            target = clip_embedding(models, picture_on(reference, background))
        straight = large + (denoised - large).detach()
        return {"clip": options.clip_weight * clip_loss(clip_embedding(models, straight), target)}
    latents = guidance.encode_images(large, generator)
    step = guidance.sds(latents, t, guidance.latent_noise(latents, generator), scale)
    return {"sds": options.sds_weight * step.loss}


def optimise_field(field, models, guidance: StableDiffusionGuidance, reference: Reference, options,
                   generator: torch.Generator, monitor: IterationMonitor, use_checkpoint: bool = False) -> list[dict]:
    """Run options.coarse_iterations iterations on `field` (in place); returns the history
    (per iteration: loss, seconds and each weighted term)."""
    optimiser = torch.optim.Adam(field.parameter_groups(options.planes_lr, options.decoder_lr), betas=(0.9, 0.99),
                                 eps=1e-15)
    device = reference.picture.device
    for iteration in range(options.coarse_iterations):
        monitor.before(iteration)
        camera, at_reference = camera_for(iteration, options, generator)
        background = torch.rand(3, generator=generator, device=generator.device).to(device)
        rendering = render(field, camera, background, generator, options.samples, options.fine_samples,
                           use_checkpoint, device)
        diffusing = iteration >= options.diffusion_start
        terms = _regularisers(field, rendering, options, generator, diffusing)
        if at_reference:
            terms["reference"] = options.reference_weight * reference_color_loss(
                rendering.image, reference.picture, reference.mask, background)
            terms["depth"] = options.depth_weight * depth_loss(rendering.depth, reference.depth, reference.inner_mask)
        elif diffusing:
            terms.update(novel_view_terms(rendering.image, guidance, models, reference, background, options,
                                          generator, options.guidance_scale))
        total = sum(terms.values())
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()
        monitor.after(iteration, float(total.detach()), {name: float(value.detach()) for name, value in terms.items()},
                      rendering.image)
    return monitor.history
