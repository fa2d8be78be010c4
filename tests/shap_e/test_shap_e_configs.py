"""The full-size configs build models of Shap-E's sizes (on the meta device: no memory)."""

import pytest
import torch

from backend.test_models.shap_e import configs


def count(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_component_sizes(size):
    from diffusers import PriorTransformer
    from diffusers.pipelines.shap_e.renderer import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, CLIPVisionModel

    cfg = configs.SIZES[size]
    with torch.device("meta"):
        text = CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_encoder"]))
        vision = CLIPVisionModel(CLIPVisionConfig(**cfg["image_encoder"]))
        priors = {task: PriorTransformer(**cfg[f"prior_{task}"]) for task in ("text", "image")}
        renderer = ShapERenderer(**{**cfg["renderer"], "param_shapes": tuple(map(tuple, cfg["renderer"]["param_shapes"]))})
    # the latent feeds the renderer's first four weights, row for row
    for prior in priors.values():
        assert sum(rows for rows, _ in cfg["renderer"]["param_shapes"]) == prior.config.num_embeddings
        assert cfg["renderer"]["d_latent"] == prior.config.embedding_dim
    assert priors["text"].config.embedding_proj_dim == cfg["text_encoder"]["projection_dim"]
    assert priors["image"].config.embedding_proj_dim == cfg["image_encoder"]["hidden_size"]
    if size == "full":
        # millions of parameters (CLIP ViT-L/14's towers: 123.7 M and 303.2 M; docs/shap_e.md)
        assert count(text) == pytest.approx(123.7, abs=0.1)
        assert count(vision) == pytest.approx(303.2, abs=0.1)
        assert count(priors["text"]) == pytest.approx(315.7, abs=0.1)
        assert count(priors["image"]) == pytest.approx(316.0, abs=0.1)
        assert count(renderer) == pytest.approx(226.3, abs=0.1)
