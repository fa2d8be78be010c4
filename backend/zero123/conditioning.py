"""What Zero123 is conditioned on, exactly as One-2-3-45 builds it (utils/zero123_utils.py
sample_model_batch, ldm's FrozenCLIPImageEmbedder and LatentDiffusion):

- the cross-attention token: cc_projection([CLIP image embedding, pose vector]), where the
  CLIP input is the picture in [-1, 1] resized to 224 by bicubic interpolation with
  align_corners=True and no antialiasing (kornia.geometry.resize), mapped to [0, 1] and
  normalised with CLIP's mean and std (not a CLIPImageProcessor, which resizes the
  shorter side with antialiasing and crops);
- the pose vector [radians(d_polar), sin(radians(d_azimuth)), cos(radians(d_azimuth)), 0],
  computed in float64 and then cast, as numpy does there;
- the concatenated latent: the VAE posterior's mode, *not* multiplied by the scale factor
  0.18215 (encode_first_stage(x).mode(); only sampled latents are scaled);
- the unconditional branch of classifier-free guidance: zeros for both.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Condition:
    """One batch's conditioning: (B, 1, D) cross-attention tokens and (B, 4, h, w) latents."""

    context: torch.Tensor
    concat: torch.Tensor

    def with_unconditional(self) -> "Condition":
        """[unconditional; conditional] stacked along the batch, as ldm's DDIM sampler does."""
        return Condition(torch.cat([torch.zeros_like(self.context), self.context]),
                         torch.cat([torch.zeros_like(self.concat), self.concat]))


def to_model_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) pictures -> float32 (B, 3, H, W) in [-1, 1] (ToTensor, * 2 - 1).

    Contiguous in (B, C, H, W) order, as ToTensor's: a permuted (channels-last) tensor
    keeps that layout through the convolutions, and PyTorch's channels-last GroupNorm on
    the CPU is less exact (4e-3 after the VAE's first norm, 8.6e-3 in its latent)."""
    pixels = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous().float() / 255.0
    return pixels * 2 - 1


def clip_pixels(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> CLIP's input (B, 3, 224, 224)."""
    x = F.interpolate(images, size=(CLIP_SIZE, CLIP_SIZE), mode="bicubic", align_corners=True)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def pose_vectors(d_polar, d_azimuth) -> torch.Tensor:
    """(B, 1, 4) float32 pose vectors from relative polar and azimuth angles in degrees."""
    polar = np.radians(np.asarray(d_polar, dtype=np.float64))
    azimuth = np.radians(np.asarray(d_azimuth, dtype=np.float64))
    rows = np.stack([polar, np.sin(azimuth), np.cos(azimuth), np.zeros_like(polar)], axis=-1)
    return torch.from_numpy(rows).float()[:, None, :]


@torch.no_grad()
def image_embeddings(loaded, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 1, D) CLIP image embeddings (float32)."""
    pixels = clip_pixels(images.to(loaded.unet.device, torch.float32)).to(loaded.dtype)
    return loaded.image_encoder(pixel_values=pixels).image_embeds.float()[:, None, :]


@torch.no_grad()
def concat_latents(loaded, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> the VAE posterior's mode (B, 4, H/8, W/8), unscaled."""
    pixels = images.to(loaded.unet.device, loaded.dtype)
    return loaded.vae.encode(pixels).latent_dist.mode()


@torch.no_grad()
def condition(loaded, images: torch.Tensor, sources, d_polar, d_azimuth) -> Condition:
    """The conditioning of a batch of views: view b is drawn from images[sources[b]] at the
    relative pose (d_polar[b], d_azimuth[b]). Each distinct picture is encoded once."""
    sources = torch.as_tensor(sources, dtype=torch.long)
    embeddings = image_embeddings(loaded, images)[sources]
    poses = pose_vectors(d_polar, d_azimuth).to(embeddings.device)
    tokens = torch.cat([embeddings, poses], dim=-1).to(loaded.dtype)
    context = loaded.camera_projection(tokens)
    return Condition(context, concat_latents(loaded, images)[sources.to(embeddings.device)])
