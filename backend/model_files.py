"""Every file a model loader opens: a regular file inside the model folder.

Standard library only (the server's front and the add-on's readiness lines check
folders without torch). Checked before any loader - ours, diffusers', transformers' -
is handed the folder:

- a name read from a file of the folder (a safetensors shard index's weight map) must
  be a plain file name beside that file: `../../elsewhere.safetensors` is refused;
- a file (or a component folder) may be a link, but it must resolve inside the model
  folder, or - for a folder in the Hugging Face cache, which links each file of a
  snapshot to its repository's blob store - inside that blob store;
- it must be a regular file: a named pipe would make the loader wait forever.
"""

import json
import os
from pathlib import Path, PurePosixPath

from .bridge.errors import CheckpointError, ModelNotFoundError
from .bridge.regular_files import FileTooLarge, NotRegularFile, kind_of, read_regular

MAX_INDEX_BYTES = 64 << 20  # a shard index lists tensor names: a few MB at most


def allowed_roots(folder: Path) -> list[Path]:
    """Where the folder's files may resolve to: the folder, and for a hub cache snapshot
    (<repo>/snapshots/<revision>) the repository's blob store (<repo>/blobs)."""
    root = Path(folder).expanduser().resolve()
    roots = [root]
    blobs = root.parent.parent / "blobs"
    if root.parent.name == "snapshots" and blobs.is_dir():
        roots.append(blobs.resolve())
    return roots


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def plain_name(name) -> bool:
    """A file name without folders: no separators, not '.' or '..', not absolute."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and ":" not in name and "\0" not in name)


def checked_path(folder: Path, relative: str, roots: list[Path] | None = None) -> Path:
    """folder/relative, resolving inside the folder (or its blob store); CheckpointError if not."""
    folder = Path(folder).expanduser()
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or any(not plain_name(part) for part in parts):
        raise CheckpointError(f"{folder}: {relative!r} is not a path inside the model folder")
    path = folder.joinpath(*parts)
    resolved = path.resolve()
    if not _inside(resolved, roots or allowed_roots(folder)):
        raise CheckpointError(
            f"{path} leads to {resolved}, outside the model folder: a model's files must all be inside its "
            "folder; copy the file there instead of linking it")
    return path


def model_file(folder: Path, relative: str, roots: list[Path] | None = None) -> Path:
    """folder/relative if it is a regular file inside the folder; ModelNotFoundError when it
    is missing or not a file (a named pipe, a device, a folder), CheckpointError outside."""
    path = checked_path(folder, relative, roots)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ModelNotFoundError(f"{path} does not exist") from None
    except OSError as exc:
        raise ModelNotFoundError(f"{path} cannot be read: {exc.strerror or exc}") from None
    kind = kind_of(mode)
    if kind != "a file":
        raise ModelNotFoundError(f"{path} is {kind}, not a file: put the model's own file there")
    return path


def check_component(folder: Path, component: str | None = None) -> None:
    """Every file directly in folder/component (what the libraries may open there; the
    folder itself without a component, e.g. a transformers model's), and the shards a
    safetensors index there names."""
    roots = allowed_roots(folder)
    part = checked_path(folder, component, roots) if component else Path(folder).expanduser()
    prefix = f"{component}/" if component else ""
    if not part.is_dir():
        return  # the caller says what is missing
    for entry in sorted(os.listdir(part)):
        if (part / entry).is_dir() and not (part / entry).is_symlink():
            continue  # the libraries read no subfolders of a component
        model_file(folder, f"{prefix}{entry}", roots)
        if entry.endswith(".safetensors.index.json"):
            for shard in shard_names(part / entry):
                model_file(folder, f"{prefix}{shard}", roots)


def read_small_json(path: Path, limit: int, what: str):
    """A small JSON file of a model folder, read as a regular file of at most `limit`
    bytes; CheckpointError "PATH is not a readable WHAT: why" otherwise."""
    try:
        data, _ = read_regular(path, limit)
        return json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = "too large" if isinstance(exc, FileTooLarge) else exc.kind if isinstance(exc, NotRegularFile) else exc
        raise CheckpointError(f"{path} is not a readable {what}: {reason}") from None


def shard_names(index_path: Path) -> list[str]:
    """The files a safetensors shard index's weight map names, each a plain file name
    beside the index; CheckpointError otherwise."""
    index = read_small_json(index_path, MAX_INDEX_BYTES, "shard index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path} is not a shard index: it has no weight_map of tensor names to files")
    for name in weight_map.values():
        if not plain_name(name):
            raise CheckpointError(
                f"{index_path}: its weight map names {name!r}, not a file beside the index; a model's files "
                "must all be inside its folder (is the folder damaged, or not what it claims to be?)")
        if not name.endswith(".safetensors"):
            raise CheckpointError(f"{index_path}: its weight map names {name!r}, not a .safetensors file")
    return sorted(set(weight_map.values()))
