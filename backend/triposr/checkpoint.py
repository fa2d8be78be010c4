"""Load a model folder (config.yaml + model.ckpt) strictly and safely."""

import re
import zipfile
from pathlib import Path

import torch

from ..bridge.errors import CheckpointError
from ..families.checkpoint_files import listing, load_weights_only
from ..model_folder import check_slot_folder
from .config import load_config
from .declaration import MODEL, TRIPOSR
from .folders import CONFIG_NAME, HUB_REPO, WEIGHTS_NAME
from .model import TripoSR

_TENSOR_RECORD = re.compile(r"[^/]+/data/\d+")


def read_state_dict(path: Path) -> dict:
    """torch.load with weights_only: tensors only, nothing executable is unpickled.

    The file is checked first, so a broken one gets our words rather than torch's (whose
    messages name its internals and suggest weights_only=False, which we never do).
    """
    again = f"download {WEIGHTS_NAME} again (huggingface.co/{HUB_REPO})"
    state = load_weights_only(path, "TripoSR checkpoint", again, mmap=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a dictionary of tensors")
    if _recorded_bytes(path) != _storage_bytes(state):
        # mmap skips torch's own size check: a short record would map the bytes after it
        raise CheckpointError(f"{path} is not a readable TripoSR checkpoint: it is damaged (its tensors' "
                              f"data does not add up); {again}")
    return state


def _recorded_bytes(path: Path) -> int:
    """Bytes of the tensor records in the checkpoint's archive (<archive>/data/<n>)."""
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist() if _TENSOR_RECORD.fullmatch(info.filename))


def _storage_bytes(state: dict) -> int:
    """Bytes the loaded tensors' storages say they hold, each storage counted once."""
    storages = {tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes() for tensor in state.values()}
    return sum(storages.values())


def check_state_dict(expected: dict, found: dict, source: str) -> None:
    """Exact match of names and shapes, or one error that lists every difference."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(found[k].shape)}, model {tuple(expected[k].shape)}"
        for k in set(expected) & set(found)
        if tuple(found[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or misshaped:
        parts = [f"{source} does not match its config.yaml:"]
        if missing:
            parts.append(listing("missing keys", missing))
        if unexpected:
            parts.append(listing("unexpected keys", unexpected))
        if misshaped:
            parts.append(listing("keys with the wrong shape", misshaped))
        raise CheckpointError("\n".join(parts))


def load_tripo(model_dir: Path) -> TripoSR:
    """Build the model its config describes and fill it from the checkpoint (on the CPU)."""
    model_dir = check_slot_folder(model_dir, MODEL, TRIPOSR)
    cfg = load_config(model_dir / CONFIG_NAME)
    with torch.device("meta"):
        model = TripoSR(cfg)
    state = read_state_dict(model_dir / WEIGHTS_NAME)
    check_state_dict(model.state_dict(), state, str(model_dir / WEIGHTS_NAME))
    state = {k: v.float() for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.image_tokenizer.init_constants()  # buffers the checkpoint does not hold
    return model.eval().requires_grad_(False)
