"""Model folders and token files (issue 24): every file a loader opens is a regular file
inside the model folder (shard indexes included), named pipes are refused instead of
waited on, and a malformed model_index.json is named cleanly. Through the CLI, which
loads the way the worker and the server's replicas do."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.bridge.errors import CheckpointError, ModelNotFoundError
from backend.model_files import shard_names
from backend.model_folder import check_model_dir
from backend.shap_e.declaration import SHAP_E

REPO_ROOT = Path(__file__).resolve().parents[1]
PICTURE = REPO_ROOT / "assets" / "example.png"
FAST = ["--steps", "2", "--resolution", "16"]


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "backend", "generate", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def shard_prior(folder: Path, shard_name: str) -> Path:
    """Replace the prior's weights by a shard index naming `shard_name` for every tensor;
    the weights go where that name leads (relative to the prior's folder)."""
    from safetensors import safe_open

    prior = folder / "prior"
    weights = prior / "diffusion_pytorch_model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        names = list(handle.keys())
    target = (prior / shard_name).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(weights, target)
    index = {"metadata": {"total_size": target.stat().st_size}, "weight_map": {name: shard_name for name in names}}
    (prior / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return target


@pytest.fixture
def text_copy(shap_e_dirs, tmp_path) -> Path:
    folder = tmp_path / "shap-e"
    shutil.copytree(shap_e_dirs["text"], folder)
    return folder


# ---------------------------------------------------------------- shard indexes and links


def test_a_shard_index_pointing_outside_the_folder_is_refused(text_copy, tmp_path):
    outside = shard_prior(text_copy, "../../elsewhere.safetensors")
    assert outside == tmp_path / "elsewhere.safetensors"  # it exists: the loader would find it there
    done = run_cli("--prompt", "a red chair", "--model", text_copy, "--out", tmp_path / "out", *FAST)
    assert done.returncode == 2, done.stderr
    assert "weight map names '../../elsewhere.safetensors'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_shard_index_beside_its_shards_still_loads(text_copy, tmp_path):
    shard_prior(text_copy, "diffusion_pytorch_model-00001-of-00001.safetensors")
    done = run_cli("--prompt", "a red chair", "--model", text_copy, "--out", tmp_path / "out", *FAST)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "a_red_chair.glb").is_file()


@pytest.mark.parametrize("name, words", [
    ("/etc/passwd.safetensors", "not a file beside the index"),
    ("sub/x.safetensors", "not a file beside the index"),
    ("..", "not a file beside the index"),
    (7, "not a file beside the index"),
    ("weights.bin", "not a .safetensors file"),
])
def test_shard_index_names_are_plain_safetensors_file_names(tmp_path, name, words):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "fine.safetensors", "b": name}}))
    with pytest.raises(CheckpointError, match=words):
        shard_names(index)


def test_a_component_file_linked_outside_the_folder_is_refused(text_copy, tmp_path):
    config = text_copy / "prior" / "config.json"
    shutil.move(config, tmp_path / "config.json")
    config.symlink_to(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="outside the model folder"):
        check_model_dir(text_copy, SHAP_E, "text")


def test_a_hub_cache_snapshot_linking_into_its_blob_store_is_accepted(tmp_path, tiny_model_dir):
    """huggingface_hub's cache: snapshots/<revision>/<file> -> ../../blobs/<hash>."""
    repo = tmp_path / "models--stabilityai--TripoSR"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for number, name in enumerate(("config.yaml", "model.ckpt")):
        shutil.copy(tiny_model_dir / name, repo / "blobs" / f"blob{number}")
        (snapshot / name).symlink_to(f"../../blobs/blob{number}")
    assert check_model_dir(snapshot) == snapshot


def test_a_checkpoint_linked_outside_the_folder_is_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.yaml", folder)
    (folder / "model.ckpt").symlink_to(tiny_model_dir / "model.ckpt")
    done = run_cli(PICTURE, "--model", folder, "--out", tmp_path / "out", "--resolution", "32")
    assert done.returncode == 2 and "outside the model folder" in done.stderr, done.stderr


# ---------------------------------------------------------------- named pipes


def test_a_config_that_is_a_named_pipe_is_named_as_such_without_waiting(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "model.ckpt", folder)
    os.mkfifo(folder / "config.yaml")
    done = run_cli(PICTURE, "--model", folder, "--out", tmp_path / "out", "--resolution", "32", timeout=60)
    assert done.returncode == 2
    assert "config.yaml is a named pipe (FIFO), not a file" in done.stderr and "lacks" not in done.stderr


def test_a_config_that_is_a_device_is_named_as_such(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "model.ckpt", folder)
    (folder / "config.yaml").symlink_to("/dev/null")
    with pytest.raises((ModelNotFoundError, CheckpointError), match="config.yaml"):
        check_model_dir(folder)  # /dev/null lies outside the folder, and is a device: refused either way


def test_a_token_file_that_is_a_named_pipe_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "token")
    done = run_cli(PICTURE, "--server", "http://127.0.0.1:9", "--token-file", tmp_path / "token",
                   "--out", tmp_path / "out", timeout=60)
    assert done.returncode == 2
    assert "token file" in done.stderr and "is a named pipe (FIFO), not a file" in done.stderr


@pytest.mark.parametrize("target, words", [("/dev/null", "is a device"), (".", "is a folder")])
def test_token_files_that_are_devices_or_folders_say_so(tmp_path, target, words):
    from backend.bridge.tokens import TokenFileError, read_token_file

    (tmp_path / "token").symlink_to(target if target.startswith("/") else tmp_path)
    with pytest.raises(TokenFileError, match=words):
        read_token_file(tmp_path / "token")


# ---------------------------------------------------------------- model_index.json


def test_a_class_name_given_as_a_list_is_reported_cleanly(text_copy, tmp_path):
    index = json.loads((text_copy / "model_index.json").read_text())
    index["_class_name"] = ["ShapEPipeline"]
    (text_copy / "model_index.json").write_text(json.dumps(index))
    done = run_cli("--prompt", "a red chair", "--model", text_copy, "--out", tmp_path / "out", *FAST)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "_class_name must name the pipeline's class as text, got list [\"ShapEPipeline\"]" in done.stderr
    assert "['ShapEPipeline']" not in done.stderr
