"""Folders in diffusers' layout (model_index.json + one folder per component), read
without diffusers: which pipeline a folder holds. Standard library only.

Shared by the families whose models come in that layout (Shap-E, and any later one) and
by model_folder.py, which names another pipeline's folder as such.
"""

import json
from pathlib import Path

from ..bridge.errors import CheckpointError

INDEX_NAME = "model_index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def has_index(folder: Path) -> bool:
    return (Path(folder) / INDEX_NAME).is_file()


def read_index(folder: Path) -> dict:
    """model_index.json as a dict; CheckpointError when it is not readable JSON."""
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / INDEX_NAME} is not readable JSON: {exc}") from None
    if not isinstance(index, dict):
        raise CheckpointError(f"{folder / INDEX_NAME} does not hold a JSON object")
    return index


def pipeline_class(folder: Path) -> str:
    """The diffusers pipeline class a folder's model_index.json names ("" if none)."""
    return str(read_index(folder).get("_class_name", ""))
