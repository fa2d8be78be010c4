"""Folders in diffusers' layout (model_index.json + one folder per component), read
without diffusers: which pipeline a folder holds. Standard library only.

Shared by the families whose models come in that layout (Shap-E, and any later one) and
by model_folder.py, which names another pipeline's folder as such.
"""

import json
from pathlib import Path

from ..bridge.errors import CheckpointError
from ..bridge.regular_files import read_regular
from ..model_files import checked_path

INDEX_NAME = "model_index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_INDEX_BYTES = 1 << 20


def has_index(folder: Path) -> bool:
    return (Path(folder) / INDEX_NAME).is_file()


def read_json_object(folder: Path, name: str) -> dict:
    """A folder's small JSON file (model_index.json, a component's config.json) as a dict;
    CheckpointError when it is not readable JSON holding an object."""
    folder = Path(folder)
    try:  # a regular file inside the folder (model_files.py), of a sane size
        data, _ = read_regular(checked_path(folder, name), MAX_INDEX_BYTES)
        document = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / name} is not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{folder / name} does not hold a JSON object")
    return document


def read_index(folder: Path) -> dict:
    """model_index.json as a dict; CheckpointError when it is not readable JSON."""
    return read_json_object(folder, INDEX_NAME)


def pipeline_class(folder: Path) -> str:
    """The diffusers pipeline class a folder's model_index.json names ("" if none)."""
    name = read_index(folder).get("_class_name", "")
    if not isinstance(name, str):
        raise CheckpointError(f"{Path(folder) / INDEX_NAME}: _class_name must name the pipeline's class as text, "
                              f"got {type(name).__name__} {json.dumps(name)[:80]}: is the file damaged?")
    return name
