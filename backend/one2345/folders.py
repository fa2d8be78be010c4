"""The reconstruction's model folder, checked without torch (the model slot's checks).

A folder holds One-2-3-45's checkpoint, ckpt_215000.pth, directly or where the official
download keeps it (`SparseNeuS_demo_v1/exp/lod0/checkpoints/` of the hub repository
One-2-3-45/code); the lexicographically last ckpt*.pth, as the reference picks it. A
small optional `sparseneus.json` may set the cost volume's size (only the random test
models do: a smaller volume is quicker). Standard library only: the server's front and
the add-on's readiness lines ask the same questions. checkpoint.py reads the file.
"""

from pathlib import Path

from ..bridge.errors import CheckpointError, ModelNotFoundError
from ..model_files import model_file, read_small_json

HUB_REPO = "One-2-3-45/code"
HUB_PATH = "SparseNeuS_demo_v1/exp/lod0/checkpoints/ckpt_215000.pth"
FILE_NAME = "ckpt_215000.pth"
CHECKPOINT_PATTERN = "ckpt*.pth"
# where a folder may keep it: directly, or as the official download lays it out
SEARCHED_FOLDERS = ("", "checkpoints", "exp/lod0/checkpoints", "SparseNeuS_demo_v1/exp/lod0/checkpoints")
SETTINGS_NAME = "sparseneus.json"
DEMO_VOLUME_SIZE = 96  # One-2-3-45's demo conf: vol_dims 96
VOLUME_SIZES = (16, 128)  # what sparseneus.json may ask for
MAX_SETTINGS_BYTES = 4096


def hint() -> str:
    return (f"use {FILE_NAME} from the hub repository {HUB_REPO} ({HUB_PATH}) in a folder, or click Download "
            "(python -m backend.setup.hub)")


def hub_files() -> tuple[list[str], list[str]]:
    """(required, optional) paths in HUB_REPO that a download fetches."""
    return [HUB_PATH], []


def checkpoint_in(folder) -> Path | None:
    """The checkpoint a folder holds (the last ckpt*.pth by name in the first searched
    place that has one), or None."""
    folder = Path(folder).expanduser()
    for sub in SEARCHED_FOLDERS:
        place = folder / sub
        found = sorted(place.glob(CHECKPOINT_PATTERN)) if place.is_dir() else []
        if found:
            return found[-1]
    return None


def holds(folder) -> bool:
    return Path(folder).is_dir() and checkpoint_in(folder) is not None


def find_checkpoint(path_or_folder) -> Path:
    """A .pth file, or a folder holding one (checkpoint_in); ModelNotFoundError otherwise."""
    path = Path(path_or_folder).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise ModelNotFoundError(f"{path} does not exist: give the reconstruction checkpoint ({FILE_NAME}) "
                                 f"or the folder that holds it")
    found = checkpoint_in(path)
    if found is None:
        places = ", ".join(str(path / sub / FILE_NAME) for sub in SEARCHED_FOLDERS)
        raise ModelNotFoundError(f"no reconstruction checkpoint (ckpt*.pth) in {path}: looked for {places}; {hint()}")
    return found


def volume_size(folder) -> int:
    """The cost volume's voxels per axis: sparseneus.json's volume_size, else the demo's 96."""
    path = Path(folder).expanduser() / SETTINGS_NAME
    if not path.exists():
        return DEMO_VOLUME_SIZE
    settings = read_small_json(path, MAX_SETTINGS_BYTES, "settings file")
    size = settings.get("volume_size") if isinstance(settings, dict) else None
    low, high = VOLUME_SIZES
    if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
        raise CheckpointError(f"{path}: volume_size must be a whole number from {low} to {high} "
                              f"(One-2-3-45's demo uses {DEMO_VOLUME_SIZE}), got {size!r}")
    return size


def check_folder(folder) -> Path:
    """The folder, if it holds a reconstruction checkpoint as a regular file inside it
    (and a readable sparseneus.json, when there is one); else an error saying what to do.
    The checkpoint's tensors are checked when it loads (checkpoint.py)."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        raise ModelNotFoundError(f"{folder} is a file: the SparseNeuS model is the folder that holds {FILE_NAME}; "
                                 "give that folder")
    if not folder.is_dir():
        raise ModelNotFoundError(f"SparseNeuS folder {folder} does not exist: {hint()}")
    found = checkpoint_in(folder)
    if found is None:
        raise ModelNotFoundError(f"SparseNeuS folder {folder} lacks {FILE_NAME} (or another ckpt*.pth, directly or "
                                 f"in {SEARCHED_FOLDERS[-1]}/): {hint()}")
    model_file(folder, found.relative_to(folder).as_posix())
    volume_size(folder)
    return folder
