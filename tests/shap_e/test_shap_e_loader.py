"""Loading: the right classes, safetensors only, clear errors for broken files; downloads."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.bridge.errors import CheckpointError, ModelNotFoundError, WrongModelError
from backend.pipeline import load_model
from backend.setup import hub
from backend.shap_e.declaration import IMAGE_MODEL, SHAP_E
from backend.shap_e.folders import hub_files


def test_loads_both_pipelines(text_model, image_model):
    from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

    assert isinstance(text_model.pipeline, ShapEPipeline) and text_model.task == "text"
    assert isinstance(image_model.pipeline, ShapEImg2ImgPipeline) and image_model.task == "image"
    assert text_model.device == "cpu" and text_model.family == SHAP_E and text_model.precision == "float32"
    assert text_model.pipeline.tokenizer.model_max_length == 77
    assert text_model.weights_bytes > 0


def test_wrong_family_is_refused_before_loading(text_dir, triposr_dir, tiny_model_dir):
    with pytest.raises(WrongModelError):
        load_model(text_dir, "cpu", family=SHAP_E, task="image")
    with pytest.raises(WrongModelError, match="TripoSR"):
        load_model(triposr_dir, "cpu", family=SHAP_E, task="text")
    with pytest.raises(WrongModelError, match="is a Shap-E text-to-3D folder"):
        load_model(text_dir, "cpu")  # TripoSR, the default family
    with pytest.raises(WrongModelError, match="TripoSR makes objects from images, not from a text prompt"):
        load_model(tiny_model_dir, "cpu", task="text")


@pytest.fixture
def broken_copy(tmp_path, text_dir):
    folder = tmp_path / "broken"
    shutil.copytree(text_dir, folder)
    return folder


def load_text(folder):
    return load_model(folder, "cpu", family=SHAP_E, task="text")


def test_truncated_weights(broken_copy):
    path = broken_copy / "prior" / "diffusion_pytorch_model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="could not be loaded as Shap-E"):
        load_text(broken_copy)


def test_missing_tensor(broken_copy):
    # transformers would fill a missing tensor with random values and only warn
    path = broken_copy / "text_encoder" / "model.safetensors"
    state = load_file(path)
    state.pop(sorted(state)[0])
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing keys"):
        load_text(broken_copy)


def test_misshaped_tensor(broken_copy):
    path = broken_copy / "shap_e_renderer" / "diffusion_pytorch_model.safetensors"
    state = load_file(path)
    state["mlp.mlp.6.bias"] = torch.zeros(5)
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError):
        load_text(broken_copy)


def test_config_that_does_not_match_weights(broken_copy):
    config = json.loads((broken_copy / "prior" / "config.json").read_text())
    config["num_layers"] += 1
    (broken_copy / "prior" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        load_text(broken_copy)


def test_tokenizer_without_its_config_still_reads_77_positions(broken_copy):
    (broken_copy / "tokenizer" / "tokenizer_config.json").unlink()
    assert load_text(broken_copy).pipeline.tokenizer.model_max_length == 77


def test_download_fetches_safetensors_and_configs_only():
    required, optional = hub_files("text")
    assert "prior/diffusion_pytorch_model.safetensors" in required and "tokenizer/vocab.json" in required
    assert all(not name.endswith((".bin", ".pt", ".ckpt")) and ".fp16." not in name for name in required + optional)
    image_required, _ = hub_files("image")
    assert "image_processor/preprocessor_config.json" in image_required and "tokenizer/vocab.json" not in image_required


def test_hub_id_is_downloaded_into_a_checked_folder(monkeypatch, text_dir):
    # the stand-in for huggingface_hub's per-file download: the tiny folder's files
    asked = []

    def fake_download(repo_id, filename, **kwargs):
        asked.append(filename)
        if not (text_dir / filename).is_file():
            from huggingface_hub.errors import EntryNotFoundError

            raise EntryNotFoundError(f"{filename} not found")
        return str(text_dir / filename)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub, "_endpoint_reachable", lambda endpoint: True)
    loaded = load_text("openai/shap-e")
    assert loaded.model_dir == text_dir
    required, optional = hub_files("text")
    assert asked == required + optional


def test_download_failure_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="openai/shap-e-img2img.*by hand"):
        hub.fetch_slot("openai/shap-e-img2img", IMAGE_MODEL, cache_dir=str(tmp_path / "cache"))


def test_a_shap_e_hub_id_given_to_triposr_is_refused_before_downloading(monkeypatch):
    monkeypatch.setattr(hub, "fetch_slot", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(WrongModelError, match="openai/shap-e holds Shap-E, not TripoSR"):
        load_model("openai/shap-e", "cpu")


def test_local_paths_are_never_downloaded(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "fetch_slot", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(ModelNotFoundError):
        load_text(tmp_path / "a" / "b")
    with pytest.raises(ModelNotFoundError):
        load_text("./shap-e")


@pytest.mark.parametrize("task", ["text", "image"])
def test_bfloat16_runs_the_prior_and_encoder_in_bfloat16_and_decodes_in_float32(shap_e_dirs, task):
    import numpy as np

    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh

    loaded = load_model(shap_e_dirs[task], "cpu", precision="bfloat16", family=SHAP_E, task=task)
    encoder = loaded.pipeline.text_encoder if task == "text" else loaded.pipeline.image_encoder
    assert loaded.precision == "bfloat16"
    assert loaded.pipeline.prior.dtype == encoder.dtype == torch.bfloat16
    assert loaded.pipeline.shap_e_renderer.dtype == torch.float32
    settings = GenerateSettings(family=SHAP_E, steps=3, shap_e_resolution=32, seed=5)
    source = dict(image=None, prompt="a chair") if task == "text" else dict(image=np.full((64, 64, 3), 90, np.uint8))
    first, again = (generate_mesh(loaded, settings=settings, **source) for _ in range(2))
    assert len(first.faces) > 0 and first.vertices.dtype == np.float32
    np.testing.assert_array_equal(first.vertices, again.vertices)  # a seed still names one shape
    np.testing.assert_array_equal(first.faces, again.faces)
