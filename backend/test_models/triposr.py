"""Write a seeded random "smoke-test" checkpoint: the right format, meaningless shapes.

When the real TripoSR weights cannot be had (no network, no local folder), the set-up
script still runs the whole chain (backend, Blender object, export, render) with this
checkpoint, and says loudly that the result is not a reconstruction. Same arguments give
the same bytes on every machine.

    python -m backend make-test-model triposr OUT_DIR [--size smoke|official] [--seed 0]

`smoke` is a small model (a few MB, seconds on a CPU); `official` has the official
TripoSR layout and sizes (1.7 GB, the file a real download would give).
"""

import os
from pathlib import Path

import numpy as np
import torch
import yaml

from ..triposr.checkpoint import load_tripo
from ..triposr.config import EXPECTED_CLASSES, parse_config
from ..triposr.folders import CONFIG_NAME, WEIGHTS_NAME
from ..triposr.model import TripoSR

MARKER_NAME = "SMOKE_TEST_CHECKPOINT.txt"

_RENDERER = {
    "radius": 0.87,
    "feature_reduction": "concat",
    "density_activation": "exp",
    "density_bias": -1.0,
    "num_samples_per_ray": 128,
}

# The official stabilityai/TripoSR configuration (its ViT is DINO ViT-B/16).
OFFICIAL_CONFIG = {
    "cond_image_size": 512,
    "image_tokenizer": {"pretrained_model_name_or_path": "facebook/dino-vitb16"},
    "tokenizer": {"plane_size": 32, "num_channels": 1024},
    "backbone": {"in_channels": 1024, "num_attention_heads": 16, "attention_head_dim": 64,
                 "num_layers": 16, "cross_attention_dim": 768},
    "post_processor": {"in_channels": 1024, "out_channels": 40},
    "decoder": {"in_channels": 120, "n_neurons": 64, "n_hidden_layers": 9, "activation": "silu"},
    "renderer": _RENDERER,
}

# Small enough for a CPU demo, with the test-only inline `vit` block the backend reads.
SMOKE_CONFIG = {
    "cond_image_size": 256,
    "image_tokenizer": {
        "pretrained_model_name_or_path": "smoke-test-vit",
        "vit": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 128, "patch_size": 16, "image_size": 224,
                "layer_norm_eps": 1.0e-12, "qkv_bias": True},
    },
    "tokenizer": {"plane_size": 16, "num_channels": 64},
    "backbone": {"in_channels": 64, "num_attention_heads": 4, "attention_head_dim": 16,
                 "num_layers": 2, "cross_attention_dim": 64},
    "post_processor": {"in_channels": 64, "out_channels": 16},
    "decoder": {"in_channels": 48, "n_neurons": 32, "n_hidden_layers": 4, "activation": "silu"},
    "renderer": _RENDERER,
}

CONFIGS = {"smoke": SMOKE_CONFIG, "official": OFFICIAL_CONFIG}
# Share of a coarse grid inside the surface (threshold 25) for a grey input image:
# enough for a visible blob, far from a full cube.
INSIDE_SHARE = 0.12
THRESHOLD = 25.0


def _config_document(size: str) -> dict:
    return {**{"cond_image_size": CONFIGS[size]["cond_image_size"]},
            **EXPECTED_CLASSES,  # the reference's class names, as config.yaml carries them
            **{k: v for k, v in CONFIGS[size].items() if k != "cond_image_size"}}


def _smooth_noise(rng, shape, coarse=4):
    """Low-frequency noise: a coarse random grid upsampled, so planes have no speckle."""
    lead, (h, w) = shape[:-2], shape[-2:]
    grid = torch.from_numpy(rng.standard_normal((int(np.prod(lead)), 1, coarse, coarse)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)
    return smooth.reshape(shape)


def random_weights(names_and_shapes, seed: int) -> dict:
    """Values with sensible scales for every tensor the model expects."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in names_and_shapes:
        leaf = name.rsplit(".", 1)[-1]
        if len(shape) == 1:
            # norm scales 1, biases 0: activations keep their size through the layers
            value = torch.ones(shape) if leaf == "weight" and "norm" in name else torch.zeros(shape)
        elif name.endswith("tokenizer.embeddings"):
            value = _smooth_noise(rng, shape)
        elif "position_embeddings" in name or "cls_token" in name:
            value = torch.from_numpy(rng.normal(0, 0.02, shape).astype(np.float32))
        elif len(shape) == 4 and "upsample" in name:
            # a transposed conv whose 2x2 taps share one kernel: upsampling stays smooth
            kernel = rng.normal(0, np.sqrt(1.0 / shape[0]), (shape[0], shape[1], 1, 1)).astype(np.float32)
            value = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(kernel, shape)))
        else:
            fan_in = int(np.prod(shape[1:]))
            value = torch.from_numpy(rng.normal(0, np.sqrt(1.0 / fan_in), shape).astype(np.float32))
        state[name] = value.float().contiguous()
    return state


def _calibrate_density(model_dir: Path, state: dict) -> None:
    """Shift the density output so INSIDE_SHARE of a coarse grid lies inside the surface."""
    model = load_tripo(model_dir)
    size = model.cfg.cond_image_size
    codes = model.encode(torch.full((1, size, size, 3), 0.5))[0]
    axis = torch.linspace(-model.field.radius, model.field.radius, 24)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        raw = model.field.raw(codes, points)[:, 0]
    wanted = np.log(THRESHOLD) - model.field.density_bias
    shift = wanted - torch.quantile(raw, 1.0 - INSIDE_SHARE).item()
    last_bias = [k for k in state if k.startswith("decoder.") and k.endswith(".bias")][-1]
    state[last_bias][0] += shift


def _save(state: dict, path: Path) -> None:
    # a new file, then a rename: the loaded model may still map the old one
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def make_smoke_checkpoint(out_dir, size: str = "smoke", seed: int = 0) -> Path:
    """Write config.yaml, model.ckpt and a marker file; reuse them when already there."""
    out_dir = Path(out_dir)
    marker = out_dir / MARKER_NAME
    stamp = f"size={size} seed={seed}"
    if marker.is_file() and stamp in marker.read_text() and (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    document = _config_document(size)
    (out_dir / CONFIG_NAME).write_text(yaml.safe_dump(document, sort_keys=False))
    with torch.device("meta"):
        skeleton = TripoSR(parse_config(document, source="smoke config"))
    state = random_weights([(k, tuple(v.shape)) for k, v in skeleton.state_dict().items()], seed)
    _save(state, out_dir / WEIGHTS_NAME)
    _calibrate_density(out_dir, state)
    _save(state, out_dir / WEIGHTS_NAME)
    marker.write_text(
        "RANDOM WEIGHTS - NOT TripoSR. Shapes made with this checkpoint are meaningless blobs.\n"
        "Written by backend/test_models/triposr.py only to test the chain end to end.\n"
        f"{stamp}\n"
    )
    return out_dir


def is_smoke_checkpoint(model_dir) -> bool:
    return (Path(model_dir) / MARKER_NAME).is_file()
