"""Random-weight Zero123 folders in bennyguo/zero123-xl-diffusers' layout, and random
LoFTR checkpoints in indoor_ds_new.ckpt's layout, made on this machine in seconds.

    python -m backend.test_models.zero123 OUT [--size tiny|full] [--seed 0] [--loftr FILE]

`tiny` keeps every architectural feature (4 UNet levels with 2 blocks each, attention at
the first three, the VAE's 4 levels, a CLIP vision tower, GroupNorm of 32 groups;
2 attention heads instead of 8: the attention over 32 x 32 latents costs most) at small widths, and runs in well under a second per step on a CPU;
`full` has Zero123-XL's sizes, for benchmarks. Views from these weights are noise; a
marker file says so. Same arguments, same bytes: values come from numpy's seeded
generator by parameter name, stored in half precision as the real *.fp16_ema files are.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..zero123.folders import COMPONENTS, CONFIG_FILES, INDEX_NAME, LOFTR_FILE_NAME, PIPELINE_CLASS, VARIANT, weights_name
from ..zero123.sampler import SCHEDULER_CONFIG

MARKER_NAME = "RANDOM_WEIGHTS_TEST_MODEL.txt"
SIZES = ("tiny", "full")

_UNET = {
    "tiny": dict(block_out_channels=[32, 32, 32, 32], cross_attention_dim=32, attention_head_dim=2),
    "full": dict(block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768, attention_head_dim=8),
}
_VAE = {"tiny": [32, 32, 32, 32], "full": [128, 256, 512, 512]}
_CLIP = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=1, projection_dim=32),
    "full": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, projection_dim=768),
}
# LoFTR widths: (initial_dim, block_dims); coarse width = block_dims[2], fine = block_dims[0].
_LOFTR = {"tiny": (16, [16, 24, 32]), "full": (128, [128, 196, 256])}
# Random LoFTR features are nearly alike everywhere, so the dual softmax finds no match
# above its 0.2 threshold; scaling the coarse features up makes it peaked, as a trained
# matcher's is, so tests see matches.
LOFTR_COARSE_GAIN = 6.0


def unet_config(size: str) -> dict:
    return dict(
        sample_size=32, in_channels=8, out_channels=4, layers_per_block=2,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0, use_linear_projection=False, **_UNET[size],
    )


def vae_config(size: str) -> dict:
    return dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=256,
                block_out_channels=_VAE[size], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=32, scaling_factor=0.18215)


def clip_config(size: str) -> dict:
    return dict(image_size=224, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, **_CLIP[size])


_EMBEDDINGS = ("position_embedding.weight", "class_embedding")


def _random_state(model: torch.nn.Module, rng: np.random.Generator) -> dict:
    """Fan-in scaled weights, small non-zero biases, norm scales near one: activations
    keep their size, and every tensor matters (a mis-mapped bias shows)."""
    state = {}
    for name, tensor in sorted(model.state_dict().items()):
        shape, leaf = tuple(tensor.shape), name.rsplit(".", 1)[-1]
        if not tensor.is_floating_point():
            state[name] = tensor.clone()
            continue
        if leaf in ("bias", "running_mean") or name.endswith(_EMBEDDINGS):
            value = rng.normal(0.0, 0.02, shape)
        elif len(shape) == 1:
            value = 1.0 + rng.normal(0.0, 0.05, shape)
        else:
            value = rng.normal(0.0, int(np.prod(shape[1:])) ** -0.5, shape)
        state[name] = torch.from_numpy(value.astype(np.float32)).contiguous()
    return state


def build_components(size: str = "tiny", seed: int = 0) -> dict:
    """The random components in memory (float32): unet, vae, image_encoder, camera_projection."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from ..zero123.loader import CameraProjection

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    rng = np.random.default_rng(seed)
    parts = {
        "unet": UNet2DConditionModel(**unet_config(size)),
        "vae": AutoencoderKL(**vae_config(size)),
        "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config(size))),
        "camera_projection": CameraProjection(_CLIP[size]["projection_dim"]),
    }
    for part in parts.values():
        part.load_state_dict(_random_state(part, rng), strict=True)
        part.eval()
    return parts


def make_test_model(out, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random Zero123 folder at `out` (created); returns it."""
    from safetensors.torch import save_file

    from ..shap_e.loader import quiet_libraries

    quiet_libraries()
    out = Path(out)
    parts = build_components(size, seed)
    index = {"_class_name": PIPELINE_CLASS, "_diffusers_version": "0.18.2", "requires_safety_checker": False,
             "safety_checker": [None, None], "feature_extractor": ["transformers", "CLIPImageProcessor"]}
    index.update({name: [library or "zero123", cls] for name, (library, cls) in COMPONENTS.items()})
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_NAME).write_text(json.dumps(index, indent=2), encoding="utf-8")
    for name in ("unet", "vae", "image_encoder"):
        parts[name].half().save_pretrained(out / name, variant=VARIANT, safe_serialization=True)
    projection = out / "clip_camera_projection"
    projection.mkdir(exist_ok=True)
    dim = parts["camera_projection"].proj.out_features
    (projection / CONFIG_FILES["clip_camera_projection"]).write_text(json.dumps(
        {"_class_name": "CLIPCameraProjection", "embedding_dim": dim, "additional_embeddings": 4}, indent=2))
    save_file({k: v.half().contiguous() for k, v in parts["camera_projection"].state_dict().items()},
              str(projection / weights_name("clip_camera_projection")))
    (out / "scheduler").mkdir(exist_ok=True)
    scheduler = {"_class_name": "DDIMScheduler", **SCHEDULER_CONFIG}
    (out / "scheduler" / CONFIG_FILES["scheduler"]).write_text(json.dumps(scheduler, indent=2))
    (out / MARKER_NAME).write_text(f"Random weights ({size}, seed {seed}) made by backend/test_models/zero123.py: "
                                   "its views are noise. Not Zero123-XL.\n")
    return out


def loftr_config(size: str = "tiny") -> dict:
    from ..zero123.loftr import loftr_config as config_for

    initial, blocks = _LOFTR[size]
    return config_for(initial, blocks, coarse_layers=8)


def make_test_loftr(out, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random LoFTR checkpoint laid out as indoor_ds_new.ckpt ({"state_dict":
    {"matcher.<name>": tensor}}); `out` is a file path or a folder (then OUT/indoor_ds_new.ckpt)."""
    from kornia.feature import LoFTR

    out = Path(out)
    if out.suffix != ".ckpt":
        out.mkdir(parents=True, exist_ok=True)
        out = out / LOFTR_FILE_NAME
    matcher = LoFTR(pretrained=None, config=loftr_config(size))
    state = _random_state(matcher, np.random.default_rng(seed))
    for name in ("backbone.layer3_outconv.weight",):
        state[name] = state[name] * LOFTR_COARSE_GAIN
    torch.save({"state_dict": {f"matcher.{k}": v for k, v in state.items()}}, out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loftr", type=Path, help="also write a random LoFTR checkpoint here")
    args = parser.parse_args(argv)
    print(make_test_model(args.out, args.size, args.seed))
    if args.loftr:
        print(make_test_loftr(args.loftr, args.size, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
