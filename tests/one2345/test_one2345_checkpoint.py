"""The reconstruction checkpoint: found where the official download puts it, read without
unpickling code, and refused with a listing when a key or shape does not match (the
reference would silently keep random weights)."""

import shutil

import pytest
import torch
from one2345_cases import FAST_DIR

from backend.bridge.errors import CheckpointError, ModelNotFoundError
from backend.one2345.checkpoint import find_checkpoint, load_reconstruction

SOURCE = FAST_DIR / "ckpt_215000.pth"


def edited(tmp_path, edit):
    checkpoint = torch.load(SOURCE, weights_only=True)
    edit(checkpoint)
    path = tmp_path / "ckpt_215000.pth"
    torch.save(checkpoint, path)
    return path


def rename(ck):
    ck["sdf_network_lod0"]["sdf_layer.lin1.wieght_v"] = ck["sdf_network_lod0"].pop("sdf_layer.lin1.weight_v")


def remove(ck):
    del ck["rendering_network_lod0"]["rgb_fc.4.bias"]


def reshape(ck):
    ck["sdf_network_lod0"]["sparse_costreg_net.conv3.net.0.kernel"] = torch.zeros(27, 16, 16)


def drop_network(ck):
    del ck["pyramid_feature_network"]


def add_entry(ck):
    ck["mystery_network"] = {"weight": torch.zeros(3)}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (rename, ["missing keys (1)", "sdf_network_lod0.sdf_layer.lin1.weight_v",
                  "unexpected keys (1)", "sdf_network_lod0.sdf_layer.lin1.wieght_v"]),
        (remove, ["missing keys (1)", "rendering_network_lod0.rgb_fc.4.bias"]),
        (reshape, ["wrong shape (1)",
                   "sdf_network_lod0.sparse_costreg_net.conv3.net.0.kernel: checkpoint (27, 16, 16), model (27, 16, 32)"]),
        (drop_network, ["missing keys (58)", "pyramid_feature_network.conv0.0.conv.weight", "... and 46 more"]),
        (add_entry, ["unexpected keys (1)", "mystery_network"]),
    ],
    ids=["renamed", "missing", "misshaped", "missing-network", "unknown-entry"],
)
def test_mismatches_are_listed(tmp_path, edit, expected):
    with pytest.raises(CheckpointError) as caught:
        load_reconstruction(edited(tmp_path, edit))
    assert "does not match One-2-3-45's reconstruction network" in caught.value.message
    for text in expected:
        assert text in caught.value.message


def test_training_entries_and_a_second_level_are_ignored(tmp_path):
    def add(ck):
        ck["sdf_network_lod1"] = {"anything": torch.zeros(2)}
        ck["iter_step"] = 7
    model = load_reconstruction(edited(tmp_path, add), volume_size=32)
    reference = torch.load(SOURCE, weights_only=True)["rendering_network_lod0"]
    assert torch.equal(model.rendering_network_lod0.s, reference["s"])


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (b"<html>404 not found</html>", "not a readable One-2-3-45 reconstruction checkpoint"),
], ids=["empty", "html"])
def test_files_that_are_not_checkpoints(tmp_path, content, words):
    path = tmp_path / "ckpt_215000.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=words):
        load_reconstruction(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "ckpt_215000.pth"
    data = SOURCE.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_reconstruction(path)


class Payload:
    """Pickled as a class instance: torch.load(weights_only=True) must refuse it."""


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "ckpt_215000.pth"
    torch.save({"sdf_network_lod0": Payload()}, path)
    with pytest.raises(CheckpointError, match="holds something other than tensors and plain values"):
        load_reconstruction(path)


def test_found_in_the_official_folder_layout(tmp_path):
    folder = tmp_path / "SparseNeuS_demo_v1" / "exp" / "lod0" / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(SOURCE, folder / "ckpt_100000.pth")
    shutil.copy(SOURCE, folder / "ckpt_215000.pth")
    assert find_checkpoint(tmp_path) == folder / "ckpt_215000.pth"  # the last one, as the reference picks
    assert find_checkpoint(folder / "ckpt_100000.pth") == folder / "ckpt_100000.pth"


def test_missing_checkpoint_names_the_places_looked(tmp_path):
    with pytest.raises(ModelNotFoundError, match="exp/lod0/checkpoints/ckpt_215000.pth"):
        find_checkpoint(tmp_path)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        find_checkpoint(tmp_path / "nowhere")


def test_weights_are_the_checkpoints(tmp_path):
    model = load_reconstruction(SOURCE, volume_size=32)
    state = torch.load(SOURCE, weights_only=True)
    for network in ("sdf_network_lod0", "pyramid_feature_network", "rendering_network_lod0"):
        ours = getattr(model, network).state_dict()
        for key, value in state[network].items():
            assert torch.equal(ours[key], value), f"{network}.{key}"
