"""DDIM sampling of Zero123 views as ldm's DDIMSampler does it for One-2-3-45, on
diffusers' UNet, VAE and DDIMScheduler.

Differences from diffusers' own pipelines that decide equality with the reference:
- the timesteps are ldm's "uniform" ones, range(0, 1000, 1000 // steps) + 1, without the
  last (highest) one, which ldm's ddim_sampling drops (timesteps[:t_start], t_start=-1):
  for 75 steps that is 76 UNet evaluations from t=976 down (1000 // 75 = 13 apart),
  for 50 steps 49 evaluations from t=961;
- classifier-free guidance runs [unconditional; conditional] as one batch of the UNet,
  e_u + scale * (e_c - e_u); with scale 1 the conditional branch alone;
- eta 1.0 adds noise at every step, the last one included (set_alpha_to_one False);
- the noise comes from a NoiseSource, so that a seed gives the same views on any device
  and a test can hand in the reference's own noise.
"""

import hashlib
from typing import Callable, Protocol

import numpy as np
import torch

from ..bridge.errors import Cancelled
from .conditioning import Condition

LATENT_CHANNELS = 4
SCHEDULER_CONFIG = {  # the DDIMScheduler of One-2-3-45's configs/sd-objaverse-finetune-c_concat-256.yaml
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": False, "prediction_type": "epsilon",
}


class NoiseSource(Protocol):
    def initial(self, shape) -> torch.Tensor: ...

    def step(self, index: int, shape) -> torch.Tensor: ...


class ViewNoise:
    """Noise of each view from its own generator, seeded by (seed, view id): a view's noise
    does not depend on which other views share its batch, nor on the device (drawn on the
    CPU in float32)."""

    def __init__(self, seed: int, view_ids):
        self.generators = []
        for view_id in view_ids:
            digest = hashlib.sha256(f"{int(seed)}/{view_id}".encode()).digest()
            self.generators.append(torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1))

    def _draw(self, shape) -> torch.Tensor:
        if shape[0] != len(self.generators):
            raise ValueError(f"noise for {shape[0]} views asked of a source for {len(self.generators)}")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in self.generators])

    def initial(self, shape) -> torch.Tensor:
        return self._draw(shape)

    def step(self, index: int, shape) -> torch.Tensor:
        return self._draw(shape)


def ddim_timesteps(steps: int, train_steps: int = 1000) -> np.ndarray:
    """The timesteps ldm's DDIM sampler visits for `steps` (descending)."""
    if not 2 <= steps <= train_steps:
        raise ValueError(f"steps must be between 2 and {train_steps}, got {steps}")
    return (np.arange(0, train_steps, train_steps // steps) + 1)[:-1][::-1].copy()


def evaluations(steps: int) -> int:
    """How many UNet evaluations `steps` DDIM steps take (76 for 75, 49 for 50)."""
    return len(ddim_timesteps(steps))


def _scheduler(loaded, steps: int):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(loaded.scheduler.config)  # a copy: sampling sets its timesteps
    scheduler.set_timesteps(steps)  # fixes the step to the previous timestep: t - 1000 // steps
    scheduler.timesteps = torch.from_numpy(ddim_timesteps(steps, scheduler.config.num_train_timesteps))
    return scheduler


@torch.no_grad()
def sample_latents(loaded, cond: Condition, steps: int, guidance: float, noise: NoiseSource, eta: float = 1.0,
                   progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """DDIM from noise to (B, 4, h, w) float32 latents; progress(done, total) after each step;
    Cancelled when should_cancel() says so before a step."""
    device = loaded.unet.device
    batch = cond.concat.shape[0]
    shape = (batch, LATENT_CHANNELS, *cond.concat.shape[2:])
    scheduler = _scheduler(loaded, steps)
    guided = guidance != 1.0
    both = cond.with_unconditional() if guided else cond
    context, concat = both.context.to(loaded.dtype), both.concat.to(loaded.dtype)
    latents = noise.initial(shape).to(device, torch.float32)
    total = len(scheduler.timesteps)
    for index, t in enumerate(scheduler.timesteps):
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        model_in = torch.cat([latents, latents]) if guided else latents
        model_in = torch.cat([model_in.to(loaded.dtype), concat], dim=1)
        eps = loaded.unet(model_in, t.to(device), encoder_hidden_states=context).sample.float()
        if guided:
            uncond, cond_eps = eps.chunk(2)
            eps = uncond + guidance * (cond_eps - uncond)
        step_noise = noise.step(index, shape).to(device, torch.float32)
        latents = scheduler.step(eps, int(t), latents, eta=eta, variance_noise=step_noise).prev_sample
        if progress is not None:
            progress(index + 1, total)
    return latents


@torch.no_grad()
def decode(loaded, latents: torch.Tensor, chunk: int = 8, should_cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Latents -> uint8 (B, H, W, 3) pictures: clamp((x + 1) / 2) * 255, truncated, as
    One-2-3-45 saves them. Decoded `chunk` at a time to bound a GPU's memory (Cancelled
    between chunks when should_cancel() says so)."""
    scale = loaded.vae.config.scaling_factor
    pictures = []
    for part in latents.split(chunk):
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        x = loaded.vae.decode(((1.0 / scale) * part).to(loaded.dtype)).sample.float()
        x = torch.clamp((x + 1.0) / 2.0, 0.0, 1.0).permute(0, 2, 3, 1).cpu().numpy()
        pictures.append((255.0 * x).astype(np.uint8))
    return np.concatenate(pictures)
