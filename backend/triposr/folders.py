"""Whether a folder holds TripoSR's model: config.yaml + model.ckpt. Standard library only.

Which family a folder holds at all, and what to say when it is another's, is
backend/model_folder.py's question; this module answers for TripoSR alone.
"""

from pathlib import Path

from ..bridge.errors import ModelNotFoundError
from ..model_files import model_file

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.ckpt"
HUB_REPO = "stabilityai/TripoSR"
CONTENTS = f"{CONFIG_NAME} and {WEIGHTS_NAME}"
HINT = f"put TripoSR's {CONFIG_NAME} and {WEIGHTS_NAME} there, or pass a hub repository id such as {HUB_REPO}"


def holds(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def check_folder(folder: Path) -> Path:
    """The folder, if both files are there (model_folder.py has checked it is a folder
    and not another family's); else what is missing and where it comes from."""
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).exists()]
    if missing:
        raise ModelNotFoundError(
            f"model folder {folder} lacks {' and '.join(missing)}: it needs TripoSR's "
            f"{CONFIG_NAME} and {WEIGHTS_NAME} (from huggingface.co/{HUB_REPO})"
        )
    for name in (CONFIG_NAME, WEIGHTS_NAME):  # regular files inside the folder: no named pipe, no link out
        model_file(folder, name)
    return folder


def hub_files() -> tuple[list, list]:
    return [CONFIG_NAME, WEIGHTS_NAME], []
