"""Model folders: strict loading with readable errors, and no unpickling of code."""

import shutil
import subprocess
import sys

import pytest
import torch

from backend.bridge.errors import CheckpointError, ModelNotFoundError
from backend.triposr.checkpoint import load_tripo
from backend.triposr.config import load_config

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def copy_model(tiny_model_dir, tmp_path, edit=None):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.yaml", folder / "config.yaml")
    state = torch.load(tiny_model_dir / "model.ckpt", weights_only=True)
    if edit:
        edit(state)
    torch.save(state, folder / "model.ckpt")
    return folder


def rename(state):
    state["decoder.layers.0.wieght"] = state.pop("decoder.layers.0.weight")


def remove(state):
    del state["backbone.proj_in.bias"]


def reshape(state):
    state["tokenizer.embeddings"] = torch.zeros(3, 64, 4, 4)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (rename, ["missing keys (1)", "decoder.layers.0.weight", "unexpected keys (1)", "decoder.layers.0.wieght"]),
        (remove, ["missing keys (1)", "backbone.proj_in.bias"]),
        (reshape, ["wrong shape (1)", "tokenizer.embeddings: checkpoint (3, 64, 4, 4), model (3, 64, 8, 8)"]),
    ],
    ids=["renamed", "missing", "misshaped"],
)
def test_key_mismatches_are_listed(tiny_model_dir, tmp_path, edit, expected):
    folder = copy_model(tiny_model_dir, tmp_path, edit)
    with pytest.raises(CheckpointError) as caught:
        load_tripo(folder)
    for text in expected:
        assert text in caught.value.message


def test_cli_exits_non_zero_with_the_listing(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path, remove)
    done = subprocess.run(
        [sys.executable, "-m", "backend", "generate", str(tiny_model_dir / "config.yaml"), "--model", str(folder), "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "missing keys (1)" in done.stderr and "backbone.proj_in.bias" in done.stderr


def test_truncated_checkpoint_is_refused(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path)
    data = (folder / "model.ckpt").read_bytes()
    (folder / "model.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable TripoSR checkpoint"):
        load_tripo(folder)


def test_other_file_is_refused(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path)
    (folder / "model.ckpt").write_text("<html>404 not found</html>")
    with pytest.raises(CheckpointError, match="not a readable TripoSR checkpoint"):
        load_tripo(folder)


class Payload:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_objects_are_never_loaded(tiny_model_dir, tmp_path, capsys):
    folder = copy_model(tiny_model_dir, tmp_path)
    torch.save({"evil": Payload()}, folder / "model.ckpt")
    with pytest.raises(CheckpointError):
        load_tripo(folder)
    assert "unpickled!" not in capsys.readouterr().out


def test_missing_folder_and_files_say_what_to_put_where(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_tripo(tmp_path / "nowhere")
    (tmp_path / "config.yaml").write_text("cond_image_size: 512\n")
    with pytest.raises(ModelNotFoundError, match="lacks model.ckpt"):
        load_tripo(tmp_path)


def test_config_class_names_are_checked_never_imported(tiny_model_dir, tmp_path):
    text = (tiny_model_dir / "config.yaml").read_text().replace(
        "tsr.models.network_utils.NeRFMLP", "os.system"
    )
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(CheckpointError, match="decoder_cls is 'os.system'"):
        load_config(tmp_path / "config.yaml")


def test_config_interpolation_is_resolved(tiny_model_dir):
    assert load_config(tiny_model_dir / "config.yaml").backbone_in_channels == 64
