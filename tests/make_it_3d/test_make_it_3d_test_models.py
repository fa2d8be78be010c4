"""The random-weight folders: marked, repeatable, and (full size) the real models' sizes."""

import pytest
import torch

from backend.test_models.make_it_3d import CLIP, DPT, SD, is_test_model, make_test_models


def test_tiny_folders_are_marked_and_repeat(tmp_path, m3d_dirs):
    again = make_test_models(tmp_path / "again")
    for slot, folder in m3d_dirs.items():
        assert is_test_model(folder)
        weights = sorted(folder.rglob("*.safetensors"))
        assert weights, slot
        for path in weights:
            assert path.read_bytes() == (again[slot] / path.relative_to(folder)).read_bytes(), path


def _parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("part, expected", [("unet", 865_910_724), ("vae", 83_653_863), ("text_encoder", 340_387_840),
                                            ("clip", 427_616_513), ("depth", 122_377_985)])
def test_full_size_configurations_have_the_published_sizes(part, expected):
    """Parameter counts of stabilityai/stable-diffusion-2-base's U-Net (866M), VAE (84M)
    and OpenCLIP-H text encoder (340M) and of CLIP ViT-L/14 (428M), as published; DPT-Hybrid's
    is what transformers' conversion configuration builds (the hub shows about 123M).
    Built on the meta device, so nothing is allocated."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

    full = SD["full"]
    with torch.device("meta"):
        if part == "unet":
            model = UNet2DConditionModel(**full["unet"])
        elif part == "vae":
            model = AutoencoderKL(latent_channels=4, **full["vae"])
        elif part == "text_encoder":
            model = CLIPTextModel(CLIPTextConfig(vocab_size=full["vocab_size"], **full["text_encoder"]))
        elif part == "clip":
            model = CLIPModel(CLIPConfig(text_config=CLIP["full"]["text"], vision_config=CLIP["full"]["vision"],
                                         projection_dim=CLIP["full"]["projection_dim"]))
        else:
            cfg = dict(DPT["full"])
            backbone = dict(model_type="bit", global_padding="same", layer_type="bottleneck",
                            out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True,
                            **cfg.pop("backbone"))
            model = DPTForDepthEstimation(DPTConfig(is_hybrid=True, reassemble_factors=[1, 1, 1, 0.5],
                                                    backbone_config=backbone, **cfg))
    assert _parameters(model) == expected
