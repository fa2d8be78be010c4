"""Reading a PyTorch checkpoint a user gave us (.ckpt, .pth): tensors and plain values only
(torch.load with weights_only=True: nothing executable is unpickled), and our words for a
file that is not one, rather than torch's (whose messages name its internals and suggest
weights_only=False, which we never do). Used by the families whose official weights come
as such files (TripoSR's model.ckpt, One-2-3-45's reconstruction checkpoint)."""

import pickle
import zipfile
from pathlib import Path

from ..bridge.errors import CheckpointError

MAX_LISTED = 12  # names shown per kind of difference when a checkpoint does not match


def load_weights_only(path: Path, what: str, again: str, mmap: bool = False):
    """The checkpoint's contents; CheckpointError naming `what` it should have been and how
    to get it `again` when the file is empty, cut short, damaged or holds objects."""
    import torch

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download did not finish; {again}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a readable {what}: the file is cut short ({size:,} bytes) "
                              f"or is another kind of file; {again}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError):
        raise CheckpointError(f"{path} is not a readable {what}: it is damaged, or holds something other than "
                              f"tensors and plain values; {again}") from None


def listing(title: str, names: list) -> str:
    """One kind of difference between a checkpoint and its model, at most MAX_LISTED names."""
    shown = "\n".join(f"    {n}" for n in names[:MAX_LISTED])
    more = f"\n    ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return f"  {title} ({len(names)}):\n{shown}{more}"
