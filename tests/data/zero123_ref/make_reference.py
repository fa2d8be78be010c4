"""Reference numbers for tests/test_zero123_equivalence.py, computed by One-2-3-45's own code.

Runs One-2-3-45's Zero123 path (utils/zero123_utils.py predict_stage1_gradio and
zero123_infer, ldm's LatentDiffusion and DDIMSampler, utils/utils.py
image_preprocess_nosave and gen_poses) and its vendored LoFTR on the project's random test
weights (backend/test_models/zero123.py, tiny, seed 0), on a CPU, in a scratch environment:

    ONE2345=.../One-2-3-45 (commit 9d5e3a0)  DIFFUSERS_SCRIPTS=.../diffusers/scripts
    SCRATCH_SITE=...  (pip --target: pytorch-lightning 2.6.6, lightning-utilities 0.15.3,
      torchmetrics 1.9.0, omegaconf 2.4.0, antlr4-python3-runtime 4.9.3, einops 0.8.2,
      kornia 0.9.0, kornia-rs 0.2.0, opencv-python-headless 4.11.0.86, openai-clip 1.0.1,
      yacs 0.1.8, loguru, ftfy, regex; all --no-deps)
    STUBS=...  (stand-ins for what cannot load beside torch 2.13: torchvision - ToTensor
      only -, taming's VectorQuantizer2 and matplotlib, which sampling never uses)
    PYTHONPATH=$SCRATCH_SITE:<worktree> .venv/bin/python make_reference.py OUT_DIR

The weights go into the reference's modules by diffusers' own conversion script
(scripts/convert_diffusers_to_original_stable_diffusion.py: UNet and VAE) and by a name
map written here (CLIP: transformers' layout -> OpenAI CLIP's VisionTransformer, built
tiny with clip.model from openai-clip). The UNet's weights go into the EMA copy
(model_ema) and noise into the training copy, so the numbers show the EMA weights are the
ones sampled with. The views are drawn with the polar angle given (run.py's order:
stage 1 views 0-3, stage 2 of view 0, stage 1 views 4-7, stage 2 of views 1-7, one
sampler call each), after torch.manual_seed(SEED): the initial latents and every step's
noise come from the global generator in that order, which the test replays.
"""

import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for pictures.py
from pictures import shaded_box_cutout

SEED = 1234
POLAR = 60
STEPS = (6, 4)  # stage 1, stage 2 (7 and 4 DDIM evaluations)
KEEP_LATENTS = ("0", "5", "0_0", "3_2", "7_3")
CROP = slice(112, 144)


def _shims():
    sys.path[:0] = [os.environ["ONE2345"], os.environ["STUBS"], os.environ["DIFFUSERS_SCRIPTS"]]
    import kornia.utils

    grid = types.ModuleType("kornia.utils.grid")
    grid.create_meshgrid = kornia.utils.create_meshgrid
    sys.modules["kornia.utils.grid"] = grid  # kornia 0.7's module path, gone in 0.9
    checker = types.ModuleType("diffusers.pipelines.stable_diffusion")
    checker.StableDiffusionSafetyChecker = None  # imported by zero123_utils for init_model only
    sys.modules["diffusers.pipelines.stable_diffusion"] = checker
    import transformers

    transformers.CLIPImageProcessor = None  # likewise (transformers 5's needs torchvision)


def tiny_config():
    from omegaconf import OmegaConf

    path = Path(os.environ["ONE2345"]) / "configs" / "sd-objaverse-finetune-c_concat-256.yaml"
    config = OmegaConf.load(path)
    unet = config.model.params.unet_config.params
    unet.model_channels, unet.channel_mult, unet.num_heads, unet.context_dim = 32, [1, 1, 1, 1], 2, 32
    vae = config.model.params.first_stage_config.params.ddconfig
    vae.ch, vae.ch_mult = 32, [1, 1, 1, 1]
    return config


def tiny_clip_load(name, device="cpu", jit=False):
    """clip.load stand-in: OpenAI's CLIP architecture (clip.model) at the test model's widths."""
    from clip.model import CLIP

    model = CLIP(embed_dim=32, image_resolution=224, vision_layers=2, vision_width=64, vision_patch_size=14,
                 context_length=77, vocab_size=64, transformer_width=32, transformer_heads=1, transformer_layers=1)
    return model.float().eval(), None


def openai_visual_state(hf: dict, layers: int) -> dict:
    """transformers' CLIPVisionModelWithProjection tensors -> OpenAI CLIP's visual.* names."""
    v = "vision_model."
    out = {"conv1.weight": hf[v + "embeddings.patch_embedding.weight"],
           "class_embedding": hf[v + "embeddings.class_embedding"],
           "positional_embedding": hf[v + "embeddings.position_embedding.weight"],
           "ln_pre.weight": hf[v + "pre_layrnorm.weight"], "ln_pre.bias": hf[v + "pre_layrnorm.bias"],
           "ln_post.weight": hf[v + "post_layernorm.weight"], "ln_post.bias": hf[v + "post_layernorm.bias"],
           "proj": hf["visual_projection.weight"].t().contiguous()}
    for i in range(layers):
        src, dst = f"{v}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        out[dst + "attn.in_proj_weight"] = torch.cat([hf[src + f"self_attn.{p}_proj.weight"] for p in "qkv"])
        out[dst + "attn.in_proj_bias"] = torch.cat([hf[src + f"self_attn.{p}_proj.bias"] for p in "qkv"])
        for ours, theirs in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            for leaf in ("weight", "bias"):
                out[f"{dst}{ours}.{leaf}"] = hf[f"{src}{theirs}.{leaf}"]
    return out


def build_reference_model(folder: Path):
    import clip
    from diffusers_to_ldm import convert_unet_state_dict, convert_vae_state_dict
    from ldm.util import instantiate_from_config
    from safetensors.torch import load_file

    clip.load = tiny_clip_load
    model = instantiate_from_config(tiny_config().model).eval()
    weights = {name: {k: v.float() for k, v in load_file(str(p)).items()}
               for name, p in ((n, next((folder / n).glob("*.fp16_ema.safetensors")))
                               for n in ("unet", "vae", "image_encoder", "clip_camera_projection"))}
    unet = convert_unet_state_dict(weights["unet"])
    model.model.diffusion_model.load_state_dict(unet, strict=True)
    generator = torch.Generator().manual_seed(99)
    for name, param in model.model.named_parameters():  # EMA copy <- the weights; training copy <- noise
        getattr(model.model_ema, model.model_ema.m_name2s_name[name]).copy_(param.data)
        param.data.add_(torch.randn(param.shape, generator=generator) * 0.5)
    vae = convert_vae_state_dict(weights["vae"])
    model.first_stage_model.load_state_dict({k: v.reshape(model.first_stage_model.state_dict()[k].shape)
                                             for k, v in vae.items()}, strict=False)
    missing = set(model.first_stage_model.state_dict()) - set(vae)
    assert not missing or all(k.startswith("loss") for k in missing), missing
    visual = openai_visual_state(weights["image_encoder"], 2)
    model.cond_stage_model.model.visual.load_state_dict(visual, strict=True)
    model.cc_projection = torch.nn.Linear(36, 32)  # LatentDiffusion hard-codes 772 -> 768; the tiny width
    model.cc_projection.load_state_dict({"weight": weights["clip_camera_projection"]["proj.weight"],
                                         "bias": weights["clip_camera_projection"]["proj.bias"]})
    return model


def main(out_dir: str) -> None:
    from PIL import Image

    from backend.test_models.zero123 import make_test_model

    work = Path(tempfile.mkdtemp())
    folder = make_test_model(work / "model", "tiny", 0)  # before the stand-ins are on the path
    _shims()
    from ldm.modules.diffusionmodules import util as ldm_util
    from utils import utils as one2345_utils
    from utils import zero123_utils

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_reference_model(folder)

    # the input: One-2-3-45's own carving of the synthetic cut-out
    input_256 = one2345_utils.image_preprocess_nosave(Image.fromarray(shaded_box_cutout(), "RGBA"), lower_contrast=False)
    input_256.save(out / "input_256.png")

    # conditioning, piece by piece (the first stage-1 call's)
    pieces = {}
    model.get_learned_conditioning = _recorder(model.get_learned_conditioning, pieces, "clip_embedding")
    model.encode_first_stage = _recorder(model.encode_first_stage, pieces, "posterior", keep=lambda p: p.mode())
    model.cc_projection.register_forward_hook(_keep_first(pieces, "context"))  # a hook returning a value replaces the output
    decoded = []
    model.decode_first_stage = _recorder(model.decode_first_stage, decoded, None, args=True)
    noises = []
    original_noise_like = ldm_util.noise_like
    import ldm.models.diffusion.ddim as ddim_module
    ddim_module.noise_like = lambda *a, **k: _keep(noises, original_noise_like(*a, **k))

    exp = work / "exp"
    (exp / "stage1_8").mkdir(parents=True)
    torch.manual_seed(SEED)
    zero123_utils.predict_stage1_gradio(model, input_256, save_path=str(exp / "stage1_8"), adjust_set=[0, 1, 2, 3],
                                        device="cpu", ddim_steps=STEPS[0], scale=3.0)
    zero123_utils.zero123_infer(model, str(exp), indices=[0], device="cpu", ddim_steps=STEPS[1], scale=3.0)
    ring = list(range(4, 8)) if POLAR <= 75 else list(range(8, 12))
    zero123_utils.predict_stage1_gradio(model, input_256, save_path=str(exp / "stage1_8"), adjust_set=ring,
                                        device="cpu", ddim_steps=STEPS[0], scale=3.0)
    rest = [i for i in range(1, 4)] + ring
    zero123_utils.zero123_infer(model, str(exp), indices=rest, device="cpu", ddim_steps=STEPS[1], scale=3.0)
    one2345_utils.calc_pose.__defaults__ = (1.2, "cpu")  # its device defaults to "cuda"
    one2345_utils.gen_poses(str(exp), POLAR)

    order = [["0", "1", "2", "3"], [f"0_{k}" for k in range(4)], [str(i) for i in ring]]
    order += [[f"{i}_{k}" for k in range(4)] for i in rest]
    latents = {vid: z for ids, (batch,) in zip(order, decoded) for vid, z in zip(ids, batch)}
    ids = [p.stem for p in sorted((exp / "stage1_8").glob("*.png"))] + [p.stem for p in sorted((exp / "stage2_8").glob("*.png"))]
    pictures = {i: np.asarray(Image.open(exp / ("stage1_8" if "_" not in i else "stage2_8") / f"{i}.png")) for i in ids}
    np.savez_compressed(
        out / "reference.npz",
        clip_embedding=pieces["clip_embedding"][0].numpy(), context=pieces["context"].float().numpy(),
        concat=pieces["posterior"].numpy(),
        latent_ids=np.array(KEEP_LATENTS), latents=np.stack([latents[i].numpy() for i in KEEP_LATENTS]),
        view_ids=np.array(ids), crops=np.stack([pictures[i][CROP, CROP] for i in ids]),
        means=np.stack([pictures[i].reshape(-1, 3).mean(0) for i in ids]),
        noise_sums=np.array([float(n.sum()) for n in noises[:5]]),
    )
    (out / "reference_pose.json").write_text((exp / "pose.json").read_text())
    (out / "run.json").write_text(json.dumps({"seed": SEED, "polar": POLAR, "steps": STEPS, "batches": order}, indent=1))


def _keep(store, value):
    store.append(value.detach().clone())
    return value


def _keep_first(store, key):
    def hook(module, inputs, output):
        if key not in store:
            store[key] = output.detach().clone()
        return None  # the output as it is

    return hook


def _recorder(function, store, key, keep=lambda v: v, args=False):
    def wrapped(*a, **k):
        value = function(*a, **k)
        if args:
            store.append(tuple(x.detach().clone() for x in a))
        elif key not in store:
            store[key] = keep(value).detach().clone()
        return value
    return wrapped


if __name__ == "__main__":
    main(sys.argv[1])
