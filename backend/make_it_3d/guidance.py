"""Stable Diffusion 2 as a prior on rendered views: score distillation (SDS) and the
denoised estimate that the CLIP loss compares with the picture.

For a rendered image x (resized to sd_size) with latent z = E(x):
    z_t = sqrt(a_t) z + sqrt(1 - a_t) eps            (a_t: alphas_cumprod[t])
    eps_hat = eps_u + s (eps_c - eps_u)              (classifier-free guidance, scale s)
    SDS gradient on z: w(t) (eps_hat - eps), w(t) = 1 - a_t (the paper's code)
    denoised estimate: z0_hat = (z_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t), decoded.
The U-Net runs without gradients (SDS skips its Jacobian); the VAE encoder is
differentiated, so the gradient reaches the render.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .losses import sds_surrogate


@dataclass
class GuidanceStep:
    loss: torch.Tensor  # SDS surrogate (its gradient on the latent is w(t)(eps_hat - eps))
    latents: torch.Tensor  # z (with gradient)
    noisy: torch.Tensor  # z_t
    noise_pred: torch.Tensor  # eps_hat, float32
    t: int


class StableDiffusionGuidance:
    def __init__(self, models, prompt: str, negative_prompt: str = ""):
        self.models = models
        self.embeddings = self._encode_text([negative_prompt, prompt])  # (2, L, D): unconditional, conditional

    @torch.no_grad()
    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        tokenizer, encoder = self.models.tokenizer, self.models.text_encoder
        tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        return encoder(tokens.input_ids.to(self.models.device))[0]

    def encode_images(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1], float32 -> latents (B, 4, H/8, W/8) float32, with
        gradient: a sample of the VAE's posterior, scaled as Stable Diffusion expects."""
        vae = self.models.vae
        posterior = vae.encode((2.0 * images - 1.0).to(self.models.dtype)).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator, device=generator.device)
        sample = posterior.mean + posterior.std * noise.to(posterior.mean.device, posterior.mean.dtype)
        return sample.float() * vae.config.scaling_factor

    @torch.no_grad()
    def predict_noise(self, noisy: torch.Tensor, t: int, scale: float) -> torch.Tensor:
        """eps_hat (float32) with classifier-free guidance, at integer timestep t."""
        models = self.models
        batch = noisy.shape[0]
        inputs = torch.cat((noisy, noisy)).to(models.dtype)
        context = self.embeddings.repeat_interleave(batch, dim=0)
        timestep = torch.tensor(t, device=models.device)
        out = models.unet(inputs, timestep, encoder_hidden_states=context).sample.float()
        if models.prediction_type == "v_prediction":  # eps = sqrt(a) v + sqrt(1 - a) z_t
            a = models.alphas_cumprod[t]
            out = a.sqrt() * out + (1 - a).sqrt() * torch.cat((noisy, noisy)).float()
        unconditional, conditional = out.chunk(2)
        return unconditional + scale * (conditional - unconditional)

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        a = self.models.alphas_cumprod[t]
        return a.sqrt() * latents + (1 - a).sqrt() * noise

    def weight(self, t: int) -> torch.Tensor:
        return 1.0 - self.models.alphas_cumprod[t]

    def sds(self, latents: torch.Tensor, t: int, noise: torch.Tensor, scale: float) -> GuidanceStep:
        """The SDS step for latents z at timestep t with the given noise."""
        noisy = self.add_noise(latents.detach(), noise, t)
        noise_pred = self.predict_noise(noisy, t, scale)
        gradient = torch.nan_to_num(self.weight(t) * (noise_pred - noise))
        return GuidanceStep(sds_surrogate(latents, gradient), latents, noisy, noise_pred, t)

    @torch.no_grad()
    def denoised_images(self, noisy: torch.Tensor, noise_pred: torch.Tensor, t: int) -> torch.Tensor:
        """The one-step estimate of the clean image, decoded: (B, 3, H, W) in [0, 1]."""
        a = self.models.alphas_cumprod[t]
        latents = (noisy - (1 - a).sqrt() * noise_pred) / a.sqrt()
        vae = self.models.vae
        images = vae.decode((latents / vae.config.scaling_factor).to(self.models.dtype)).sample.float()
        return (images / 2 + 0.5).clamp(0, 1)

    def sample_timestep(self, t_range, generator: torch.Generator) -> int:
        steps = self.models.alphas_cumprod.shape[0]
        low, high = int(steps * t_range[0]), int(steps * t_range[1])
        return int(torch.randint(low, high + 1, (), generator=generator, device=generator.device))

    def latent_noise(self, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(latents.shape, generator=generator, device=generator.device)
        return noise.to(latents.device)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size), bilinear (the paper resizes renders for the VAE so)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, (size, size), mode="bilinear", align_corners=False)
