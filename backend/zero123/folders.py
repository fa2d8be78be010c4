"""Whether a folder holds Zero123-XL for the views, and whether a file holds LoFTR's
weights for the elevation estimate. Standard library only.

Zero123-XL comes from bennyguo/zero123-xl-diffusers: Zero123-XL converted to diffusers'
layout (model_index.json, unet/, vae/, image_encoder/, clip_camera_projection/,
scheduler/, feature_extractor/) with threestudio's converter. Each weighted component
holds three safetensors files: `<stem>.safetensors` and `<stem>.fp16.safetensors` (by
the converter's default, the training weights) and `<stem>.fp16_ema.safetensors` (made
with --extract_ema: the exponential moving average that One-2-3-45 samples with, inside
`model.ema_scope()`). Only the fp16_ema files are read; nothing pickled ever is.

LoFTR: `indoor_ds_new.ckpt` as One-2-3-45 ships it (hub repository One-2-3-45/code), read
with torch.load(weights_only=True) by loftr.py.
"""

import json
from pathlib import Path

from ..bridge.errors import CheckpointError, ModelNotFoundError, WrongModelError

INDEX_NAME = "model_index.json"
HUB_REPO = "bennyguo/zero123-xl-diffusers"
PIPELINE_CLASS = "Zero123Pipeline"
VARIANT = "fp16_ema"
# model_index.json entries the loader uses, with the class it builds for each (never
# the class a file names, so no folder can choose the code that runs).
COMPONENTS = {
    "unet": ("diffusers", "UNet2DConditionModel"),
    "vae": ("diffusers", "AutoencoderKL"),
    "image_encoder": ("transformers", "CLIPVisionModelWithProjection"),
    "clip_camera_projection": (None, "CLIPCameraProjection"),
    "scheduler": ("diffusers", "DDIMScheduler"),
}
CONFIG_FILES = {
    "unet": "config.json",
    "vae": "config.json",
    "image_encoder": "config.json",
    "clip_camera_projection": "config.json",
    "scheduler": "scheduler_config.json",
}
WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model",
                "image_encoder": "model", "clip_camera_projection": "diffusion_pytorch_model"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

LOFTR_HUB_REPO = "One-2-3-45/code"
LOFTR_HUB_PATH = "elevation_estimate/utils/weights/indoor_ds_new.ckpt"
LOFTR_FILE_NAME = "indoor_ds_new.ckpt"


def weights_name(component: str) -> str:
    return f"{WEIGHT_STEMS[component]}.{VARIANT}.safetensors"


def hint() -> str:
    return (f"use a folder of {HUB_REPO} in diffusers' layout (model_index.json and the component "
            f"folders with their *.{VARIANT}.safetensors files), the hub id {HUB_REPO} to download it, or "
            "'python -m backend make-test-model zero123 DIR' for random test weights")


def loftr_hint() -> str:
    return (f"use {LOFTR_FILE_NAME} from the hub repository {LOFTR_HUB_REPO} ({LOFTR_HUB_PATH}) in a folder, "
            "'python -m backend make-test-model zero123 DIR' for random test weights, "
            "or give the elevation yourself")


def hub_files() -> tuple[list[str], list[str]]:
    """(required, optional) paths in HUB_REPO that a download fetches: the configs and the
    EMA weights in half precision (never the training weights or pickles)."""
    required = [INDEX_NAME] + [f"{c}/{name}" for c, name in CONFIG_FILES.items()]
    required += [f"{c}/{weights_name(c)}" for c in WEIGHT_STEMS]
    return required, ["feature_extractor/preprocessor_config.json"]


def holds(folder) -> bool:
    """Whether model_index.json names Zero123's pipeline (the slot's quick check)."""
    return is_zero123_folder(folder)


def is_zero123_folder(folder) -> bool:
    """Whether model_index.json names Zero123's pipeline (the check model_folder.py needs)."""
    try:
        index = json.loads((Path(folder) / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(index, dict) and index.get("_class_name") == PIPELINE_CLASS


def _read_index(folder: Path) -> dict:
    try:
        index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"{folder} has no {INDEX_NAME}: it is not a model in diffusers' layout; {hint()}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / INDEX_NAME} is not readable JSON: {exc}") from None
    if not isinstance(index, dict):
        raise CheckpointError(f"{folder / INDEX_NAME} does not hold a JSON object")
    return index


def _check_weights(folder: Path, component: str) -> None:
    part = folder / component
    if (part / weights_name(component)).is_file():
        return
    present = sorted(p.name for p in part.iterdir()) if part.is_dir() else []
    if any(name.endswith(".safetensors") for name in present):
        raise CheckpointError(
            f"{part} lacks {weights_name(component)}: it has {', '.join(present)}, but One-2-3-45 "
            f"samples with the EMA weights, which {HUB_REPO} keeps in the *.{VARIANT}.safetensors "
            "files (download them)")
    if any(name.endswith(PICKLE_SUFFIXES) for name in present):
        raise CheckpointError(
            f"{part} has only pickled weights ({', '.join(present)}); they are never loaded because a "
            f"pickle can run code. Put {weights_name(component)} there ({HUB_REPO} has it).")
    raise CheckpointError(f"{part} lacks its weights, {weights_name(component)} (incomplete download?)")


def check_folder(folder) -> Path:
    """The folder, if it is a complete Zero123-XL folder; else an error saying what to do."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        raise ModelNotFoundError(f"{folder} is a file: Zero123-XL is a folder; {hint()}")
    if not folder.is_dir():
        raise ModelNotFoundError(f"Zero123-XL folder {folder} does not exist: {hint()}")
    index = _read_index(folder)
    held = index.get("_class_name")
    if held != PIPELINE_CLASS:
        raise WrongModelError(f"{folder} holds a diffusers {held or 'pipeline without _class_name'}, "
                              f"not Zero123 ({PIPELINE_CLASS}); {hint()}")
    for component, (_library, class_name) in COMPONENTS.items():
        entry = index.get(component)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] == class_name):
            raise CheckpointError(f"{folder / INDEX_NAME}: component {component!r} is {entry!r}, "
                                  f"expected its class to be {class_name!r}")
        if not (folder / component / CONFIG_FILES[component]).is_file():
            raise CheckpointError(f"{folder / component} lacks {CONFIG_FILES[component]} (incomplete download?)")
        if component in WEIGHT_STEMS:
            _check_weights(folder, component)
    return folder


def loftr_hub_files() -> tuple[list[str], list[str]]:
    """(required, optional) paths in LOFTR_HUB_REPO that a download fetches."""
    return [LOFTR_HUB_PATH], []


def loftr_file_in(folder) -> Path | None:
    """The weights file in a LoFTR folder: at its top, or where a download of
    LOFTR_HUB_REPO puts it (LOFTR_HUB_PATH); None when neither is there."""
    folder = Path(folder)
    return next((path for path in (folder / LOFTR_FILE_NAME, folder / LOFTR_HUB_PATH) if path.is_file()), None)


def holds_loftr(folder) -> bool:
    return loftr_file_in(folder) is not None


def check_loftr_folder(folder) -> Path:
    """The folder, if it holds indoor_ds_new.ckpt (model_folder.py has checked it is a folder)."""
    if loftr_file_in(folder) is None:
        raise ModelNotFoundError(f"LoFTR folder {folder} lacks {LOFTR_FILE_NAME}: {loftr_hint()}")
    return Path(folder)


def check_loftr_file(path) -> Path:
    """The weights file: `path` itself, or the one in a LoFTR folder (loftr.py checks the tensors)."""
    path = Path(path).expanduser()
    if path.is_dir():
        inside = loftr_file_in(path)
        if inside is not None:
            return inside
        raise ModelNotFoundError(f"{path} is a folder without {LOFTR_FILE_NAME}: {loftr_hint()}")
    if not path.is_file():
        raise ModelNotFoundError(f"LoFTR weights {path} do not exist: {loftr_hint()}")
    return path
