"""Random-weight folders for Make-It-3D's three model slots, made entirely on this machine.

    python -m backend.test_models.make_it_3d OUT [--size tiny|full] [--seed 0]

writes OUT/stable-diffusion-2-base (diffusers' layout: model_index.json, unet, vae,
text_encoder, tokenizer, scheduler), OUT/clip-vit-large-patch14 and OUT/dpt-hybrid-midas
(transformers' layout), safetensors only, each with a marker file saying the weights
are random. `tiny` takes seconds and runs a job on a CPU in seconds (tests); `full` has
the real models' configurations (the hub's config files cannot be fetched here: SD2
base's from its published model card values, CLIP ViT-L/14's from openai's release,
DPT-Hybrid's from transformers' conversion script), 7.4 GB in float32, for benchmarks.
Weights come from torch's default initialisers under torch.manual_seed(seed).
"""

import argparse
import json
import shutil
from pathlib import Path

import torch

from ..make_it_3d.folders import INDEX_NAME, SD_PIPELINE_CLASS
from ..shap_e.loader import quiet_libraries
from .shap_e.bpe_vocab import write_tokenizer

MARKER_NAME = "RANDOM_WEIGHTS_TEST_MODEL.txt"
FOLDER_NAMES = {"stable_diffusion": "stable-diffusion-2-base", "clip": "clip-vit-large-patch14",
                "depth": "dpt-hybrid-midas"}

SD = {
    "tiny": {
        "vocab_size": 1024,
        "text_encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             max_position_embeddings=77, hidden_act="gelu", projection_dim=32),
        "unet": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                     attention_head_dim=8, use_linear_projection=True),
        "vae": dict(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=8, sample_size=32),
    },
    "full": {
        "vocab_size": 49408,
        # OpenCLIP ViT-H/14's text tower, as SD 2 uses it (penultimate layer: 23 of 24)
        "text_encoder": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                             max_position_embeddings=77, hidden_act="gelu", projection_dim=512),
        "unet": dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                     cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True),
        "vae": dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, sample_size=768),
    },
}
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 prediction_type="epsilon", skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
CLIP = {
    "tiny": dict(text=dict(vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, max_position_embeddings=77),
                 vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             image_size=32, patch_size=8), projection_dim=32),
    "full": dict(text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, max_position_embeddings=77),
                 vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                             image_size=224, patch_size=14), projection_dim=768),
}
DPT = {
    "tiny": dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=64,
                 backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 32, 32], fusion_hidden_size=16,
                 backbone_featmap_shape=[1, 64, 4, 4],
                 backbone=dict(depths=[1, 1, 1], hidden_sizes=[16, 32, 64, 128], embedding_size=16, num_groups=8)),
    "full": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 image_size=384, backbone_out_indices=[2, 5, 8, 11], neck_hidden_sizes=[256, 512, 768, 768],
                 fusion_hidden_size=256, backbone_featmap_shape=[1, 1024, 24, 24], backbone=dict(depths=[3, 4, 9])),
}


def _marker(folder: Path, slot: str, size: str, seed: int) -> None:
    (folder / MARKER_NAME).write_text(
        f"RANDOM WEIGHTS - NOT the real {FOLDER_NAMES[slot]}. Guidance from this folder is noise.\n"
        "Written by backend/test_models/make_it_3d.py to test loading and the refine job end to end.\n"
        f"slot={slot} size={size} seed={seed}\n"
    )


def _stable_diffusion(folder: Path, size: str) -> None:
    import diffusers
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    cfg = SD[size]
    tokenizer = CLIPTokenizer.from_pretrained(write_tokenizer(folder / "tokenizer", cfg["vocab_size"]))
    text_config = CLIPTextConfig(vocab_size=cfg["vocab_size"], bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                 **cfg["text_encoder"])
    CLIPTextModel(text_config).save_pretrained(folder / "text_encoder")
    UNet2DConditionModel(**cfg["unet"]).save_pretrained(folder / "unet")
    AutoencoderKL(latent_channels=4, scaling_factor=0.18215, **cfg["vae"]).save_pretrained(folder / "vae")
    PNDMScheduler(**SCHEDULER).save_pretrained(folder / "scheduler")
    index = {"_class_name": SD_PIPELINE_CLASS, "_diffusers_version": diffusers.__version__,
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None],
             "feature_extractor": [None, None], "requires_safety_checker": False}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


def _clip(folder: Path, size: str) -> None:
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIP[size]
    common = dict(hidden_act="quick_gelu")
    config = CLIPConfig(text_config={**cfg["text"], **common}, vision_config={**cfg["vision"], **common},
                        projection_dim=cfg["projection_dim"])
    CLIPModel(config).save_pretrained(folder)


def _dpt(folder: Path, size: str) -> None:
    from transformers import DPTConfig, DPTForDepthEstimation

    cfg = dict(DPT[size])
    backbone = dict(model_type="bit", global_padding="same", layer_type="bottleneck",
                    out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True, **cfg.pop("backbone"))
    config = DPTConfig(is_hybrid=True, patch_size=16, readout_type="project", reassemble_factors=[1, 1, 1, 0.5],
                       backbone_config=backbone, **cfg)
    DPTForDepthEstimation(config).save_pretrained(folder)


MAKERS = {"stable_diffusion": _stable_diffusion, "clip": _clip, "depth": _dpt}


def make_test_models(out_dir, size: str = "tiny", seed: int = 0) -> dict[str, Path]:
    """Write the three folders (replacing what is there); returns {slot: folder}."""
    if size not in SD:
        raise ValueError(f"size must be tiny or full, got {size!r}")
    quiet_libraries()
    out_dir = Path(out_dir)
    folders = {}
    for index, (slot, make) in enumerate(MAKERS.items()):
        folder = out_dir / FOLDER_NAMES[slot]
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + index)  # one stream per slot
            make(folder, size)
        _marker(folder, slot, size, seed)
        folders[slot] = folder
    return folders


def is_test_model(folder) -> bool:
    return (Path(folder) / MARKER_NAME).is_file()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.test_models.make_it_3d",
                                     description="Write random-weight Make-It-3D model folders.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=sorted(SD), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for slot, folder in make_test_models(args.out, args.size, args.seed).items():
        print(f"{slot} {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
