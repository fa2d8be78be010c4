"""Load Make-It-3D's three guidance models from checked folders, safely.

Each model is built from the class folders.py names for its slot (never a class a file
names), from local files only, from safetensors; DPT's pytorch_model.bin (its main hub
revision has nothing else) through transformers with weights_only=True, which is
torch.load(weights_only=True): tensors, never code. Missing, unexpected or misshaped
tensors are refused (transformers would fill them with random values and only warn).
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..bridge.errors import CheckpointError, DeviceError
from ..devices import resolve_device
from ..shap_e.loader import quiet_libraries
from .folders import LABELS, check_folders

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class MakeIt3DModels:
    unet: object  # diffusers UNet2DConditionModel
    vae: object  # diffusers AutoencoderKL
    text_encoder: object  # transformers CLIPTextModel
    tokenizer: object  # transformers CLIPTokenizer
    alphas_cumprod: torch.Tensor  # (T,) float32 on the device: the noise schedule
    prediction_type: str  # "epsilon" or "v_prediction"
    clip: object  # transformers CLIPModel (ViT-L/14)
    depth: object  # transformers DPTForDepthEstimation (hybrid)
    device: torch.device
    dtype: torch.dtype  # of the guidance models; fields and renders stay float32
    folders: dict = field(default_factory=dict)
    load_seconds: float = 0.0

    @property
    def latent_scale(self) -> int:
        """Pixels per latent pixel of the VAE (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def weights_bytes(self) -> int:
        parts = (self.unet, self.vae, self.text_encoder, self.clip, self.depth)
        return sum(p.numel() * p.element_size() for part in parts for p in part.parameters())


def precision_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision not in DTYPES:
        raise DeviceError(f"unknown precision {precision!r}: choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[precision]


def _strict(loaded, info, where: Path):
    for problem in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        names = sorted(map(str, info.get(problem) or []))
        if names:
            raise CheckpointError(f"{where}: {problem.replace('_', ' ')} ({len(names)}): {', '.join(names[:5])}"
                                  + (" ..." if len(names) > 5 else ""))
    return loaded


def _load(cls, where: Path, **kwargs):
    loaded, info = cls.from_pretrained(where, local_files_only=True, output_loading_info=True, **kwargs)
    return _strict(loaded, info, where)


def _noise_schedule(folder: Path) -> tuple[torch.Tensor, str]:
    """alphas_cumprod of the folder's scheduler config (whatever scheduler class it names:
    only the training betas matter for score distillation)."""
    from diffusers import DDPMScheduler

    config = json.loads((folder / "scheduler_config.json").read_text(encoding="utf-8"))
    known = {k: v for k, v in config.items() if k in ("num_train_timesteps", "beta_start", "beta_end",
                                                       "beta_schedule", "trained_betas", "prediction_type")}
    scheduler = DDPMScheduler(**known)
    prediction = scheduler.config.prediction_type
    if prediction not in ("epsilon", "v_prediction"):
        raise CheckpointError(f"{folder}: prediction_type {prediction!r} is not supported (epsilon or v_prediction)")
    return scheduler.alphas_cumprod.float(), prediction


def _build(folders: dict, dtype: torch.dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer, DPTForDepthEstimation

    sd = folders["stable_diffusion"]
    unet = _load(UNet2DConditionModel, sd / "unet", use_safetensors=True, torch_dtype=dtype)
    vae = _load(AutoencoderKL, sd / "vae", use_safetensors=True, torch_dtype=dtype)
    text_encoder = _load(CLIPTextModel, sd / "text_encoder", use_safetensors=True, dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(sd / "tokenizer", local_files_only=True)
    tokenizer.model_max_length = min(tokenizer.model_max_length, text_encoder.config.max_position_embeddings)
    alphas, prediction = _noise_schedule(sd / "scheduler")
    clip = _load(CLIPModel, folders["clip"], use_safetensors=True, dtype=dtype)
    depth_folder = folders["depth"]
    safetensors = (depth_folder / "model.safetensors").is_file()
    # the DPT estimate runs once per job: float32, whatever the guidance's precision
    depth = _load(DPTForDepthEstimation, depth_folder, use_safetensors=safetensors, weights_only=True,
                  dtype=torch.float32)
    return unet, vae, text_encoder, tokenizer, alphas, prediction, clip, depth


def load_models(folders: dict, device: str = "auto", precision: str = "auto") -> MakeIt3DModels:
    """The three models from {slot: folder} (folders.SLOTS), on `device`, the guidance in
    `precision` (auto: bfloat16 on CUDA, float32 elsewhere)."""
    started = time.perf_counter()
    checked = check_folders(folders)
    torch_device = resolve_device(device)
    dtype = precision_dtype(precision, torch_device)
    quiet_libraries()
    try:
        unet, vae, text_encoder, tokenizer, alphas, prediction, clip, depth = _build(checked, dtype)
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        labels = ", ".join(LABELS.values())
        raise CheckpointError(f"the Make-It-3D models ({labels}) could not be loaded: {reason}") from None
    for part in (unet, vae, text_encoder, clip, depth):
        part.to(torch_device).eval().requires_grad_(False)
    return MakeIt3DModels(unet, vae, text_encoder, tokenizer, alphas.to(torch_device), prediction, clip, depth,
                          torch_device, dtype, checked, time.perf_counter() - started)
