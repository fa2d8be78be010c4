"""Random-weight Shap-E folders in diffusers' layout, made entirely on this machine.

    python -m backend make-test-model shap-e OUT [--variant text|image|both] [--size tiny|full] [--seed 0]

writes OUT/shap-e (ShapEPipeline: text -> 3D) and/or OUT/shap-e-img2img
(ShapEImg2ImgPipeline: image -> 3D), each as the hub's openai/... folders are laid out:
model_index.json and one folder per component, weights as safetensors only. `tiny`
runs in about a second on a CPU (tests); `full` has the real component sizes
(configs.FULL) for benchmarks. Shapes from these weights are meaningless blobs; a
marker file says so. Same arguments, same bytes (weights come from numpy's seeded
generator by parameter name, not from the libraries' initialisers).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ...shap_e.folders import COMPONENTS, INDEX_NAME, PIPELINE_CLASSES
from ...shap_e.loader import quiet_libraries
from . import configs
from .bpe_vocab import write_tokenizer
from .mc_table import lookup_table

MARKER_NAME = "RANDOM_WEIGHTS_TEST_MODEL.txt"
FOLDER_NAMES = {"text": "shap-e", "image": "shap-e-img2img"}
# Share of a coarse grid inside the surface for the calibration latents; latents from
# diffusion with the tiny prior land at 2-15 % (a visible blob, never empty in tests).
INSIDE_SHARE = 0.3
# How much of each MLP weight the latent decides (the rest is fixed): see _latent_projections.
LATENT_SHARE = 0.3


# Embedding tables and learned positions: small normal values, as in CLIP's init.
_EMBEDDINGS = ("token_embedding.weight", "position_embedding.weight", "class_embedding", "positional_embedding")


def _random_state(model: torch.nn.Module, rng: np.random.Generator) -> dict:
    """Values with sensible scales for every tensor in the model's state dict: unit
    norms, zero biases, fan-in scaled weights, so activations keep their size."""
    state = {}
    for name, tensor in sorted(model.state_dict().items()):
        shape, leaf = tuple(tensor.shape), name.rsplit(".", 1)[-1]
        if not tensor.is_floating_point():
            value = tensor.clone()  # integer and bool buffers: the caller fills them
        elif name.endswith("clip_std"):
            value = torch.ones(shape)  # unused by Shap-E; a harmless identity scaling
        elif leaf == "bias" or name.endswith("clip_mean"):
            value = torch.zeros(shape)
        elif name.endswith(_EMBEDDINGS):
            value = torch.from_numpy(rng.normal(0.0, 0.02, shape).astype(np.float32))
        elif len(shape) == 1:
            value = torch.ones(shape)  # layer-norm scales
        else:
            fan_in = int(np.prod(shape[1:]))
            value = torch.from_numpy(rng.normal(0.0, fan_in**-0.5, shape).astype(np.float32))
        state[name] = value.contiguous()
    return state


def _fill(model: torch.nn.Module, state: dict) -> torch.nn.Module:
    model.load_state_dict(state, strict=True)
    return model.eval()


def _frequency_damping(channels: int) -> torch.Tensor:
    """Scales for the 93 position-encoding inputs of the first MLP layer (x, then sin
    and cos at 15 octaves): random weights on the high octaves would make speckle, so
    octave k is scaled by 0.5**k and octaves from 5 on are cut."""
    scales = torch.ones(channels)
    octaves = 15
    for column in range(3, channels):
        k = (column - 3) % (3 * octaves) // 3
        scales[column] = 0.5**k if k < 5 else 0.0
    return scales


def _latent_projections(renderer, state: dict, rng: np.random.Generator) -> None:
    """Each of the first four MLP weights is (latent part) + (fixed part): params_proj
    layer-normalises the latent's projection, scales it per input channel (norm.weight)
    and adds proj.bias. A fixed part of full size and a latent part of LATENT_SHARE make
    every latent decode to a variation of one random blob, so that no seed or prompt
    gives an empty or exploded surface."""
    for key, (rows, columns) in zip(renderer.config.param_names, renderer.config.param_shapes):
        prefix = f"params_proj.projections.{key.replace('.', '__')}"
        damping = _frequency_damping(columns) if key.endswith("mlp.0.weight") else torch.ones(columns)
        scale = columns**-0.5
        fixed = torch.from_numpy(rng.normal(0.0, scale, (rows, columns)).astype(np.float32)) * damping
        state[f"{prefix}.proj.bias"] = fixed.reshape(-1)
        state[f"{prefix}.norm.weight"] = LATENT_SHARE * scale * damping
        state[f"{prefix}.norm.bias"] = torch.zeros(columns)


def _renderer(size_cfg: dict, rng: np.random.Generator):
    from diffusers.pipelines.shap_e.renderer import ShapERenderer

    cfg = size_cfg["renderer"]
    renderer = ShapERenderer(**{**cfg, "param_shapes": tuple(map(tuple, cfg["param_shapes"])),
                                "background": tuple(cfg["background"])})
    state = _random_state(renderer, rng)
    state["void.background"] = torch.tensor(cfg["background"], dtype=torch.float32)
    cases, masks = lookup_table()
    state["mesh_decoder.cases"] = torch.from_numpy(cases)
    state["mesh_decoder.masks"] = torch.from_numpy(masks)
    _latent_projections(renderer, state, rng)
    return _fill(renderer, state)


def _calibrate_outputs(renderer, size_cfg: dict, rng: np.random.Generator) -> None:
    """Scale the last MLP layer so the shape and colours are visible, over a few latents
    like those diffusion ends on (clipped to [-1, 1], about half at the clip):
    - signed distance: shifted so INSIDE_SHARE of a coarse grid is inside;
    - texture (the STF colour head, outputs 3-5): unit spread before the sigmoid, so
      colours vary instead of sitting at 0.5 grey."""
    from ...shap_e.decode import latent_params, query_mlp

    prior = size_cfg["prior_text"]
    shape = (prior["num_embeddings"], prior["embedding_dim"])
    axis = torch.linspace(-1, 1, 24)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    sdf, rgb = [], []
    with torch.no_grad():
        for _ in range(4):
            latent = torch.from_numpy(np.clip(2.0 * rng.uniform(-1, 1, shape), -1, 1).astype(np.float32))
            out = query_mlp(renderer, latent_params(renderer, latent), points)
            # undo the output activations (tanh, sigmoid) to get the layer's raw values
            sdf.append(torch.atanh(out.signed_distance[0, :, 0].clamp(-0.999999, 0.999999)))
            rgb.append(torch.logit(out.channels[0].clamp(1e-6, 1 - 1e-6)))
        last = renderer.mlp.mlp[-1]
        sdf_shift = -torch.quantile(torch.cat(sdf), 1.0 - INSIDE_SHARE).item()
        last.bias[0] += sdf_shift  # raw signed distance is output 0
        rgb = torch.cat(rgb)
        scale = 1.0 / rgb.std(0).clamp_min(1e-6)
        last.weight[3:6] *= scale[:, None]
        last.bias[3:6] = (last.bias[3:6] - rgb.mean(0)) * scale


def _write_model_index(folder: Path, variant: str) -> None:
    import diffusers

    # the entries the loader insists on (folders.COMPONENTS), as diffusers writes them
    index = {"_class_name": PIPELINE_CLASSES[variant], "_diffusers_version": diffusers.__version__,
             **{name: list(entry) for name, entry in sorted(COMPONENTS[variant].items())}}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


def _write_text_parts(folder: Path, size_cfg: dict, rng) -> None:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    tokenizer_dir = write_tokenizer(folder / "tokenizer", size_cfg["vocab_size"])
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    config = CLIPTextConfig(**size_cfg["text_encoder"], bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    encoder = CLIPTextModelWithProjection(config)
    _fill(encoder, _random_state(encoder, rng)).save_pretrained(folder / "text_encoder")


def _write_image_parts(folder: Path, size_cfg: dict, rng) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    encoder = CLIPVisionModel(CLIPVisionConfig(**size_cfg["image_encoder"]))
    _fill(encoder, _random_state(encoder, rng)).save_pretrained(folder / "image_encoder")
    processor = {"image_processor_type": "CLIPImageProcessor", **configs.image_processor_config(size_cfg["image_size"])}
    (folder / "image_processor").mkdir(parents=True, exist_ok=True)
    (folder / "image_processor" / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")


def make_test_model(out_dir, variant: str = "text", size: str = "tiny", seed: int = 0) -> Path:
    """Write one random-weight folder (replacing what is there); returns it."""
    from diffusers import HeunDiscreteScheduler, PriorTransformer

    if variant not in PIPELINE_CLASSES:
        raise ValueError(f"variant must be one of {', '.join(PIPELINE_CLASSES)}, got {variant!r}")
    quiet_libraries()
    size_cfg = configs.SIZES[size]
    folder = Path(out_dir)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # one stream per component, so changing one leaves the others' bytes alone
    streams = {name: np.random.default_rng([seed, i]) for i, name in enumerate(("encoder", "prior", "renderer"))}

    if variant == "text":
        _write_text_parts(folder, size_cfg, streams["encoder"])
    else:
        _write_image_parts(folder, size_cfg, streams["encoder"])
    prior = PriorTransformer(**size_cfg[f"prior_{variant}"])
    _fill(prior, _random_state(prior, streams["prior"])).save_pretrained(folder / "prior")
    HeunDiscreteScheduler(**configs.SCHEDULER).save_pretrained(folder / "scheduler")
    renderer = _renderer(size_cfg, streams["renderer"])
    _calibrate_outputs(renderer, size_cfg, streams["renderer"])
    renderer.save_pretrained(folder / "shap_e_renderer")
    _write_model_index(folder, variant)
    (folder / MARKER_NAME).write_text(
        "RANDOM WEIGHTS - NOT Shap-E. Shapes made with this folder are meaningless blobs.\n"
        "Written by backend/test_models/shap_e/make.py to test loading and generation end to end.\n"
        f"variant={variant} size={size} seed={seed}\n"
    )
    return folder


def make_test_models(out_dir, variants=("text", "image"), size: str = "tiny", seed: int = 0) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {v: make_test_model(out_dir / FOLDER_NAMES[v], v, size, seed) for v in variants}


def is_test_model(folder) -> bool:
    return (Path(folder) / MARKER_NAME).is_file()
