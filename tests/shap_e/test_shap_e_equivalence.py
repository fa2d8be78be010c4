"""Our job gives diffusers' own Shap-E mesh: same folder, seed, steps and grid.

diffusers loads the folder itself (DiffusionPipeline.from_pretrained) and decodes with
output_type="mesh" (its grid is fixed at 128) or, for other grids, with the renderer's
decode_to_mesh(grid_size=...). Its vertex colours are linear; ours are the sRGB values
the model outputs, so theirs go through the sRGB curve before comparing. Shap-E's frame
is Blender's (backend/shap_e/frames.py: the identity), so vertices compare directly.
"""

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from shap_e_helpers import linear_to_srgb

from backend.bridge.settings import GenerateSettings
from backend.pipeline import generate_mesh
from backend.shap_e.declaration import SHAP_E
from backend.shap_e.frames import srgb_to_bytes
from backend.shap_e.inputs import prepare_image


@pytest.fixture(scope="module")
def reference(shap_e_dirs):
    def load(task):
        pipe = DiffusionPipeline.from_pretrained(shap_e_dirs[task], use_safetensors=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    return {task: load(task) for task in ("text", "image")}


def assert_same_mesh(ours, theirs):
    np.testing.assert_allclose(ours.vertices, theirs.verts.numpy(), rtol=0, atol=1e-5)
    assert np.array_equal(ours.faces, theirs.faces.numpy())
    linear = torch.stack([theirs.vertex_channels[c] for c in "RGB"], dim=1).numpy()
    np.testing.assert_allclose(ours.colors[:, :3].astype(int), srgb_to_bytes(linear_to_srgb(linear))[:, :3].astype(int),
                               atol=1)


def test_text_at_the_defaults_matches_diffusers(text_model, reference):
    prompt = "a red wooden chair"
    ours = generate_mesh(text_model, None, GenerateSettings(family=SHAP_E), prompt=prompt)  # 64 steps, 15, grid 128
    theirs = reference["text"](prompt, num_inference_steps=64, guidance_scale=15.0,
                               generator=torch.Generator().manual_seed(0), output_type="mesh").images[0]
    assert_same_mesh(ours, theirs)


def latents_of(pipe, condition, steps, guidance, seed):
    return pipe(condition, num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed), output_type="latent").images


def test_text_on_another_grid_matches_diffusers(text_model, reference):
    pipe = reference["text"]
    theirs = pipe.shap_e_renderer.decode_to_mesh(latents_of(pipe, "a teapot", 12, 15.0, 1)[0][None], "cpu", grid_size=56)
    ours = generate_mesh(text_model, None, GenerateSettings(family=SHAP_E, seed=1, steps=12, shap_e_resolution=56),
                         prompt="a teapot")
    assert_same_mesh(ours, theirs)


def test_image_matches_diffusers(image_model, reference, disc_picture):
    pipe = reference["image"]
    latents = latents_of(pipe, prepare_image(disc_picture), 16, 3.0, 2)
    theirs = pipe.shap_e_renderer.decode_to_mesh(latents[0][None], "cpu", grid_size=48)
    ours = generate_mesh(image_model, disc_picture, GenerateSettings(family=SHAP_E, seed=2, steps=16, shap_e_resolution=48))
    assert_same_mesh(ours, theirs)
