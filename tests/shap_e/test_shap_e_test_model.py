"""The random-weight folders: diffusers' layout, safetensors only, reproducible."""

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from backend.shap_e.folders import COMPONENTS
from backend.test_models.shap_e import FOLDER_NAMES, MARKER_NAME, is_test_model, make_test_model


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("variant", ["text", "image"])
def test_layout(shap_e_dirs, variant):
    folder = shap_e_dirs[variant]
    assert folder.name == FOLDER_NAMES[variant] and is_test_model(folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == {"text": "ShapEPipeline", "image": "ShapEImg2ImgPipeline"}[variant]
    assert {k: tuple(v) for k, v in index.items() if not k.startswith("_")} == COMPONENTS[variant]
    files = [p.name for p in folder.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    assert sum(f.endswith(".safetensors") for f in files) == 3


def test_renderer_carries_a_marching_cubes_table(text_dir):
    state = load_file(text_dir / "shap_e_renderer" / "diffusion_pytorch_model.safetensors")
    assert state["mesh_decoder.cases"].dtype == torch.int64 and state["mesh_decoder.masks"].any()


def test_same_seed_same_bytes(tmp_path, text_dir):
    again = make_test_model(tmp_path / "again", "text", "tiny", seed=0)
    assert digest(again) == digest(text_dir)


def test_other_seed_other_weights(tmp_path, image_dir):
    other = make_test_model(tmp_path / "other", "image", "tiny", seed=1)
    ours, theirs = digest(image_dir), digest(other)
    assert ours["prior/diffusion_pytorch_model.safetensors"] != theirs["prior/diffusion_pytorch_model.safetensors"]
    assert ours["image_processor/preprocessor_config.json"] == theirs["image_processor/preprocessor_config.json"]
    assert MARKER_NAME in ours


def test_generic_diffusers_loader_reads_it(shap_e_dirs):
    from diffusers import DiffusionPipeline, ShapEImg2ImgPipeline, ShapEPipeline

    assert isinstance(DiffusionPipeline.from_pretrained(shap_e_dirs["text"], use_safetensors=True), ShapEPipeline)
    assert isinstance(DiffusionPipeline.from_pretrained(shap_e_dirs["image"], use_safetensors=True), ShapEImg2ImgPipeline)
