"""Component configurations of Shap-E's two diffusers folders, full-size and tiny.

Full-size sources (the hub's config files cannot be fetched here):
- priors: diffusers' scripts/convert_shap_e_to_diffusers.py (PRIOR_CONFIG, PRIOR_IMAGE_CONFIG);
- renderer: ShapERenderer's defaults (the script's RENDERER_CONFIG is empty);
- text and image encoders: CLIP ViT-L/14, which Shap-E's own code loads
  (shap_e/models/generation/pretrained_clip.py: clip_name="ViT-L/14", text feature 768,
  image grid 16 x 16 = 256 patch tokens of width 1024); the priors' embedding_proj_dim
  (768 for text, 1024 for images) agree;
- scheduler: Heun with the "exp" schedule over 1024 steps, predicting the sample, Karras
  sigmas, clipped to [-1, 1] (diffusers' Shap-E tests; Shap-E's diffusion config);
- image processor: CLIP's 224 px resize, centre crop and normalisation.

Tiny: the same structure with every width cut down, so a pipeline runs in a second on
a CPU. The renderer's params_proj splits the prior's latent rows among the first four
MLP weights, so sum(rows of param_shapes) == num_embeddings and d_latent ==
embedding_dim in both sizes.
"""

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

_PRIOR_COMMON = {
    "additional_embeddings": 0,
    "time_embed_act_fn": "gelu",
    "norm_in_type": "layer",
    "encoder_hid_proj_type": None,
    "added_emb_type": None,
}

FULL = {
    "vocab_size": 49408,
    "text_encoder": {
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
        "projection_dim": 768,
    },
    "image_encoder": {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "image_size": 224, "patch_size": 14, "hidden_act": "quick_gelu", "projection_dim": 768,
    },
    "image_size": 224,
    "prior_text": {
        **_PRIOR_COMMON, "num_attention_heads": 16, "attention_head_dim": 64, "num_layers": 24,
        "embedding_dim": 1024, "num_embeddings": 1024, "time_embed_dim": 4096,
        "embedding_proj_dim": 768, "clip_embed_dim": 2048,
    },
    "prior_image": {
        **_PRIOR_COMMON, "num_attention_heads": 8, "attention_head_dim": 128, "num_layers": 24,
        "embedding_dim": 1024, "num_embeddings": 1024, "time_embed_dim": 4096,
        "embedding_proj_dim": 1024, "embedding_proj_norm_type": "layer", "clip_embed_dim": 2048,
    },
    "renderer": {
        "param_shapes": [[256, 93], [256, 256], [256, 256], [256, 256]], "d_latent": 1024,
        "d_hidden": 256, "n_output": 12, "n_hidden_layers": 6, "act_fn": "swish",
        "insert_direction_at": 4, "background": [255.0, 255.0, 255.0],
    },
}

TINY = {
    "vocab_size": 1024,
    "text_encoder": {
        "vocab_size": 1024, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
        "projection_dim": 32,
    },
    "image_encoder": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu", "projection_dim": 32,
    },
    "image_size": 32,
    "prior_text": {
        **_PRIOR_COMMON, "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2,
        "embedding_dim": 16, "num_embeddings": 32, "time_embed_dim": 64,
        "embedding_proj_dim": 32, "clip_embed_dim": 32,
    },
    "prior_image": {
        **_PRIOR_COMMON, "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2,
        "embedding_dim": 16, "num_embeddings": 32, "time_embed_dim": 64,
        "embedding_proj_dim": 32, "embedding_proj_norm_type": "layer", "clip_embed_dim": 32,
    },
    "renderer": {
        "param_shapes": [[8, 93], [8, 8], [8, 8], [8, 8]], "d_latent": 16,
        "d_hidden": 8, "n_output": 12, "n_hidden_layers": 6, "act_fn": "swish",
        "insert_direction_at": 4, "background": [255.0, 255.0, 255.0],
    },
}

SIZES = {"tiny": TINY, "full": FULL}

SCHEDULER = {
    "num_train_timesteps": 1024,
    "beta_schedule": "exp",
    "prediction_type": "sample",
    "use_karras_sigmas": True,
    "clip_sample": True,
    "clip_sample_range": 1.0,
}


def image_processor_config(size: int) -> dict:
    return {
        "do_resize": True, "size": {"shortest_edge": size}, "resample": 3,  # bicubic
        "do_center_crop": True, "crop_size": {"height": size, "width": size},
        "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }
