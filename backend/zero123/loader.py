"""Load a checked Zero123-XL folder into diffusers' and transformers' building blocks.

Each component is built from the class folders.COMPONENTS names (never a class a file
names), from the *.fp16_ema.safetensors files only, from local files only, and every
tensor must match: a missing, extra or misshaped one is refused (the libraries would
fill it with random values and only warn). Weights are kept in float16 on a GPU (as
One-2-3-45 runs under autocast) and float32 on a CPU.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..bridge.errors import CheckpointError
from ..shap_e.loader import quiet_libraries
from .folders import CONFIG_FILES, HUB_REPO, VARIANT, check_folder, weights_name


class CameraProjection(torch.nn.Module):
    """Zero123's cc_projection: [CLIP image embedding, 4 pose numbers] -> the UNet's
    cross-attention token (Linear 772 -> 768 for Zero123-XL)."""

    def __init__(self, embedding_dim: int = 768, additional_embeddings: int = 4):
        super().__init__()
        self.proj = torch.nn.Linear(embedding_dim + additional_embeddings, embedding_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.proj(embedding)


@dataclass
class LoadedZero123:
    unet: torch.nn.Module  # diffusers UNet2DConditionModel, 8 input channels
    vae: torch.nn.Module  # diffusers AutoencoderKL
    image_encoder: torch.nn.Module  # transformers CLIPVisionModelWithProjection
    camera_projection: CameraProjection
    scheduler: object  # diffusers DDIMScheduler
    device: str
    dtype: torch.dtype
    model_dir: Path | None = None
    load_seconds: float = 0.0

    @property
    def precision(self) -> str:
        return "float16" if self.dtype == torch.float16 else "float32"

    @property
    def weights_bytes(self) -> int:
        parts = (self.unet, self.vae, self.image_encoder, self.camera_projection)
        return sum(p.numel() * p.element_size() for part in parts for p in part.parameters())


def compute_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA (One-2-3-45's autocast), float32 elsewhere (CPU, and MPS to be safe)."""
    return torch.float16 if device.type == "cuda" else torch.float32


def _refuse_mismatches(where: Path, info: dict) -> None:
    for problem in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        names = sorted(map(str, info.get(problem) or []))
        if names:
            raise CheckpointError(f"{where}: {problem.replace('_', ' ')} ({len(names)}): {', '.join(names[:5])}"
                                  + (" ..." if len(names) > 5 else ""))


def _pretrained(cls, folder: Path, name: str, dtype: torch.dtype):
    loaded, info = cls.from_pretrained(folder / name, variant=VARIANT, use_safetensors=True, local_files_only=True,
                                       torch_dtype=dtype, output_loading_info=True)
    _refuse_mismatches(folder / name, info)
    return loaded


def _camera_projection(folder: Path, dtype: torch.dtype) -> CameraProjection:
    import json

    from safetensors.torch import load_file

    part = folder / "clip_camera_projection"
    config = json.loads((part / CONFIG_FILES["clip_camera_projection"]).read_text(encoding="utf-8"))
    if config.get("additional_embeddings", 4) != 4:
        raise CheckpointError(f"{part}: additional_embeddings is {config['additional_embeddings']}, Zero123 uses 4")
    module = CameraProjection(int(config.get("embedding_dim", 768)))
    state = load_file(str(part / weights_name("clip_camera_projection")))
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise CheckpointError(f"{part}: tensors {found} do not match the projection {expected}")
    module.load_state_dict({k: v.float() for k, v in state.items()})
    return module.to(dtype).eval()


def _check_shapes(loaded: LoadedZero123, folder: Path) -> None:
    unet, clip = loaded.unet.config, loaded.image_encoder.config
    width = loaded.camera_projection.proj.out_features
    problems = []
    if unet.in_channels != 8 or unet.out_channels != 4:
        problems.append(f"the UNet takes {unet.in_channels} channels and gives {unet.out_channels} (Zero123: 8 and 4)")
    if clip.projection_dim != width or unet.cross_attention_dim != width:
        problems.append(f"CLIP's embedding ({clip.projection_dim}), the projection ({width}) and the UNet's "
                        f"cross-attention ({unet.cross_attention_dim}) differ")
    if loaded.vae.config.latent_channels != 4:
        problems.append(f"the VAE's latents have {loaded.vae.config.latent_channels} channels (Zero123: 4)")
    if problems:
        raise CheckpointError(f"{folder} is not Zero123: " + "; ".join(problems))


def _check_scheduler(scheduler, folder: Path) -> None:
    config = scheduler.config
    if (config.beta_schedule, config.prediction_type, config.num_train_timesteps) != ("scaled_linear", "epsilon", 1000):
        raise CheckpointError(f"{folder / 'scheduler'}: Zero123 was trained with the scaled_linear schedule of 1000 "
                              f"steps predicting epsilon, this says {config.beta_schedule}, {config.num_train_timesteps}, "
                              f"{config.prediction_type}")


def load_zero123(model, device: torch.device, dtype: torch.dtype | None = None) -> LoadedZero123:
    """Zero123-XL from a folder (folders.check_folder), on `device` (a resolved torch
    device), in `dtype` (default compute_dtype(device))."""
    started = time.perf_counter()
    folder = check_folder(model)
    quiet_libraries()
    dtype = dtype or compute_dtype(device)
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    try:
        loaded = LoadedZero123(
            unet=_pretrained(UNet2DConditionModel, folder, "unet", dtype),
            vae=_pretrained(AutoencoderKL, folder, "vae", dtype),
            image_encoder=_pretrained(CLIPVisionModelWithProjection, folder, "image_encoder", dtype),
            camera_projection=_camera_projection(folder, dtype),
            scheduler=DDIMScheduler.from_pretrained(folder / "scheduler"),
            device=device.type, dtype=dtype, model_dir=folder,
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{folder} could not be loaded as Zero123-XL ({HUB_REPO}): {reason}") from None
    _check_shapes(loaded, folder)
    _check_scheduler(loaded.scheduler, folder)
    for part in (loaded.unet, loaded.vae, loaded.image_encoder, loaded.camera_projection):
        part.to(device).eval().requires_grad_(False)
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def from_components(parts: dict, device: torch.device, scheduler=None) -> LoadedZero123:
    """A LoadedZero123 from modules in memory (benchmarks: full-size random weights)."""
    from diffusers import DDIMScheduler

    from .sampler import SCHEDULER_CONFIG

    dtype = compute_dtype(device)
    loaded = LoadedZero123(parts["unet"], parts["vae"], parts["image_encoder"], parts["camera_projection"],
                           scheduler or DDIMScheduler(**SCHEDULER_CONFIG), device.type, dtype)
    for part in (loaded.unet, loaded.vae, loaded.image_encoder, loaded.camera_projection):
        part.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return loaded
