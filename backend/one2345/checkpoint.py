"""Find, read and check One-2-3-45's reconstruction checkpoint (ckpt_215000.pth), strictly.

The reference loads each network inside a try/except that only prints "load fails", so a
checkpoint with a renamed, missing or mis-shaped tensor silently runs on random weights.
Here every key and shape of the four networks must match, or one error lists them all.
The file is read with torch.load(weights_only=True): plain tensors and Python values, no
code is unpickled.
"""

from pathlib import Path

import torch

from ..bridge.errors import CheckpointError
from ..families.checkpoint_files import listing, load_weights_only
from .folders import DEMO_VOLUME_SIZE, HUB_PATH, HUB_REPO, find_checkpoint
from .folders import volume_size as folder_volume_size
from .model import SparseNeuS

# top-level entries the reference reads or ignores (training state, a second level of detail)
OTHER_ENTRIES = ("optimizer", "iter_step", "val_step", "sdf_network_lod1", "rendering_network_outside",
                 "rendering_network_lod1", "variance_network_lod1", "pyramid_feature_network_lod1")
_AGAIN = f"download {HUB_PATH} again (huggingface.co/{HUB_REPO})"


def read_checkpoint(path: Path) -> dict:
    """torch.load(weights_only=True), with our words for a file that is not a checkpoint."""
    checkpoint = load_weights_only(path, "One-2-3-45 reconstruction checkpoint", _AGAIN)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} does not hold a dictionary of networks (found {type(checkpoint).__name__})")
    return checkpoint


def check_checkpoint(model: SparseNeuS, checkpoint: dict, source: str) -> dict:
    """Every network's keys and shapes exactly as the model has them, or one CheckpointError
    that lists each difference (network.key). Returns {network: state dict}."""
    missing, unexpected, misshaped = [], [], []
    states = {}
    for network in SparseNeuS.NETWORKS:
        expected = getattr(model, network).state_dict()
        found = checkpoint.get(network)
        if not isinstance(found, dict):
            missing += [f"{network}.{key}" for key in expected]
            continue
        states[network] = found
        for key, tensor in expected.items():
            if key not in found:
                missing.append(f"{network}.{key}")
            elif not isinstance(found[key], torch.Tensor):
                misshaped.append(f"{network}.{key}: checkpoint holds a {type(found[key]).__name__}, not a tensor")
            elif tuple(found[key].shape) != tuple(tensor.shape):
                misshaped.append(f"{network}.{key}: checkpoint {tuple(found[key].shape)}, model {tuple(tensor.shape)}")
        unexpected += [f"{network}.{key}" for key in found if key not in expected]
    unexpected += [name for name in checkpoint if name not in SparseNeuS.NETWORKS and name not in OTHER_ENTRIES]
    if missing or unexpected or misshaped:
        parts = [f"{source} does not match One-2-3-45's reconstruction network (SparseNeuS lod0, "
                 f"ckpt_215000.pth's layout):"]
        if missing:
            parts.append(listing("missing keys", sorted(missing)))
        if unexpected:
            parts.append(listing("unexpected keys", sorted(unexpected)))
        if misshaped:
            parts.append(listing("keys with the wrong shape", sorted(misshaped)))
        raise CheckpointError("\n".join(parts))
    return states


def load_reconstruction(path_or_folder, device="cpu", volume_size: int | None = None) -> SparseNeuS:
    """The network filled from the checkpoint, on `device`. volume_size: the cost volume's
    voxels per axis (None: the folder's sparseneus.json, else 96 as One-2-3-45's demo conf;
    smaller only for tests)."""
    path = find_checkpoint(path_or_folder)
    if volume_size is None:
        volume_size = folder_volume_size(path_or_folder) if Path(path_or_folder).is_dir() else DEMO_VOLUME_SIZE
    checkpoint = read_checkpoint(path)
    with torch.device("meta"):
        model = SparseNeuS(volume_size)
    states = check_checkpoint(model, checkpoint, str(path))
    for network, state in states.items():
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
        getattr(model, network).load_state_dict(state, strict=True, assign=True)
    return model.to(device).requires_grad_(False)
