"""Folder checks (standard library only) and safe loading: each wrong or incomplete folder
gets a message naming the problem and what to do."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backend.bridge.errors import CheckpointError, ModelNotFoundError, WrongModelError
from backend.make_it_3d.folders import HUB_REPOS, SLOTS, check_folder, check_folders, hub_files

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy_of(tmp_path):
    def copy(folder):
        target = tmp_path / folder.name
        shutil.copytree(folder, target)
        return target
    return copy


def test_folders_module_needs_no_torch():
    code = "import sys, backend.make_it_3d.folders; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_good_folders_pass(m3d_dirs):
    assert check_folders(dict(m3d_dirs)) == m3d_dirs


def test_missing_folder_names_the_hub_repository(tmp_path, m3d_dirs):
    with pytest.raises(ModelNotFoundError, match="does not exist.*stabilityai/stable-diffusion-2-base"):
        check_folder(tmp_path / "nowhere", "stable_diffusion")
    with pytest.raises(ModelNotFoundError, match="holds no model.*openai/clip-vit-large-patch14"):
        check_folder(tmp_path, "clip")
    with pytest.raises(ModelNotFoundError, match="no folder was given for CLIP"):
        check_folders({"stable_diffusion": m3d_dirs["stable_diffusion"], "depth": m3d_dirs["depth"]})
    with pytest.raises(ValueError, match="unknown model slots vae"):
        check_folders({**m3d_dirs, "vae": tmp_path})


def test_each_slot_refuses_the_others_folders(m3d_dirs):
    for slot in SLOTS:
        for other in SLOTS:
            if other == slot:
                continue
            with pytest.raises(WrongModelError, match=f"not .*{HUB_REPOS[slot]}") as caught:
                check_folder(m3d_dirs[other], slot)
            assert caught.value.code == "wrong_model"


def test_triposr_folder_is_named_as_such():
    with pytest.raises(WrongModelError, match="holds a TripoSR model, not CLIP ViT-L/14"):
        check_folder(REPO_ROOT / "tests" / "data" / "tiny", "clip")


def test_pickled_unet_is_refused(m3d_dirs, copy_of):
    folder = copy_of(m3d_dirs["stable_diffusion"])
    unet = folder / "unet"
    (unet / "diffusion_pytorch_model.safetensors").rename(unet / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only pickled weights .*never loaded"):
        check_folder(folder, "stable_diffusion")


def test_incomplete_download_says_what_is_missing(m3d_dirs, copy_of):
    folder = copy_of(m3d_dirs["stable_diffusion"])
    (folder / "tokenizer" / "merges.txt").unlink()
    with pytest.raises(CheckpointError, match="tokenizer lacks merges.txt"):
        check_folder(folder, "stable_diffusion")
    clip = copy_of(m3d_dirs["clip"])
    (clip / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks its weights, model.safetensors"):
        check_folder(clip, "clip")


def test_another_pipeline_is_refused(m3d_dirs, copy_of):
    folder = copy_of(m3d_dirs["stable_diffusion"])
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "ShapEPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(WrongModelError, match=r"a diffusers pipeline \(ShapEPipeline\), not Stable Diffusion 2"):
        check_folder(folder, "stable_diffusion")


def test_dpt_without_hybrid_backbone_is_refused(m3d_dirs, copy_of):
    folder = copy_of(m3d_dirs["depth"])
    config = json.loads((folder / "config.json").read_text())
    config["is_hybrid"] = False
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WrongModelError, match="without the hybrid"):
        check_folder(folder, "depth")


def test_dpt_bin_is_read_with_weights_only(m3d_dirs, copy_of, monkeypatch):
    """Intel/dpt-hybrid-midas's main revision has only pytorch_model.bin: it passes the
    check and loads through torch.load(weights_only=True), with the same tensors."""
    from safetensors.torch import load_file

    from backend.make_it_3d.loader import load_models

    folder = copy_of(m3d_dirs["depth"])
    state = load_file(folder / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    assert check_folder(folder, "depth") == folder

    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    models = load_models({**m3d_dirs, "depth": folder}, "cpu")
    assert calls and all(flag is True for flag in calls)
    loaded = models.depth.state_dict()
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name


def test_hub_files_are_safetensors_and_configs():
    required, optional = hub_files("stable_diffusion")
    assert "model_index.json" in required and "unet/diffusion_pytorch_model.safetensors" in required
    assert not any(name.endswith((".bin", ".ckpt")) or "fp16" in name for name in required + optional)
    assert hub_files("depth")[0] == ["config.json", "model.safetensors"]
    with pytest.raises(ValueError, match="slot must be one of"):
        hub_files("vae")


def test_a_file_linked_from_outside_or_a_named_pipe_is_refused(m3d_dirs, copy_of, tmp_path):
    import os

    folder = copy_of(m3d_dirs["stable_diffusion"])
    outside = tmp_path / "elsewhere.safetensors"
    (folder / "unet" / "diffusion_pytorch_model.safetensors").rename(outside)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="outside the model folder"):
        check_folder(folder, "stable_diffusion")
    clip = copy_of(m3d_dirs["clip"])
    (clip / "model.safetensors").unlink()
    os.mkfifo(clip / "model.safetensors")  # reading it would wait forever
    with pytest.raises(ModelNotFoundError, match="named pipe"):
        check_folder(clip, "clip")
