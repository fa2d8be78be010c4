"""Whether a folder is a complete model for one of Make-It-3D's three model slots.
Standard library only (the Blender side and the installer can ask without torch).

Slots, each in the layout its library saves:
- "stable_diffusion": Stable Diffusion 2 base in diffusers' layout (model_index.json, then
  unet/, vae/, text_encoder/, tokenizer/, scheduler/): the SDS and denoising prior;
- "clip": CLIP ViT-L/14 in transformers' layout (config.json, model.safetensors): the
  CLIP loss between a denoised view and the picture;
- "depth": DPT-Hybrid (MiDaS 3.0) in transformers' layout: the picture's relative depth.

Weights are safetensors, except DPT's, whose main hub revision has only
pytorch_model.bin: that one file is read by the loader with torch.load(weights_only=True)
(tensors only, no code). Any other pickled weights are refused.
"""

from pathlib import Path

from ..bridge.errors import CheckpointError, ModelNotFoundError, WrongModelError
from ..families.diffusers_layout import read_json_object
from ..model_files import check_component

SLOTS = ("stable_diffusion", "clip", "depth")
LABELS = {"stable_diffusion": "Stable Diffusion 2 (base)", "clip": "CLIP ViT-L/14", "depth": "DPT-Hybrid (MiDaS)"}
HUB_REPOS = {"stable_diffusion": "stabilityai/stable-diffusion-2-base", "clip": "openai/clip-vit-large-patch14",
             "depth": "Intel/dpt-hybrid-midas"}
# Intel/dpt-hybrid-midas keeps safetensors in a pull request's revision (the hub's
# safetensors conversion); its main revision has pytorch_model.bin only.
HUB_REVISIONS = {"stable_diffusion": "main", "clip": "main", "depth": "refs/pr/7"}
LICENCES = {"stable_diffusion": "CreativeML Open RAIL++-M", "clip": "MIT", "depth": "Apache-2.0"}

INDEX_NAME = "model_index.json"
CONFIG_NAME = "config.json"
SD_PIPELINE_CLASS = "StableDiffusionPipeline"
# model_index.json entries the loader uses, with the class it builds for each itself
# (never the class a file names); the scheduler's class is free (only its betas are read).
SD_COMPONENTS = {
    "unet": ("diffusers", "UNet2DConditionModel"),
    "vae": ("diffusers", "AutoencoderKL"),
    "text_encoder": ("transformers", "CLIPTextModel"),
    "tokenizer": ("transformers", "CLIPTokenizer"),
    "scheduler": ("diffusers", None),
}
SD_FILES = {
    "unet": ["config.json", "diffusion_pytorch_model.safetensors"],
    "vae": ["config.json", "diffusion_pytorch_model.safetensors"],
    "text_encoder": ["config.json", "model.safetensors"],
    "tokenizer": ["vocab.json", "merges.txt"],
    "scheduler": ["scheduler_config.json"],
}
SD_OPTIONAL = ["tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"]
MODEL_TYPES = {"clip": "clip", "depth": "dpt"}
WEIGHTS = {"clip": ["model.safetensors"], "depth": ["model.safetensors", "pytorch_model.bin"]}
# the one pickle the loader reads, with torch.load(weights_only=True)
SAFE_PICKLES = {"depth": "pytorch_model.bin"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
NOTHING = "no model this tool knows"


def hint(slot: str) -> str:
    return (f"use a folder of {HUB_REPOS[slot]} ({LABELS[slot]}) as its library saves it, the hub id "
            f"{HUB_REPOS[slot]} to download it, or 'python -m backend.test_models.make_it_3d DIR' "
            "for random test weights")


def hub_files(slot: str) -> tuple[list[str], list[str]]:
    """(required, optional) paths in the slot's hub repository at HUB_REVISIONS[slot]:
    what a download fetches (full-precision safetensors, never fp16 copies or pickles)."""
    _check_slot(slot)
    if slot == "stable_diffusion":
        required = [INDEX_NAME] + [f"{part}/{name}" for part, names in SD_FILES.items() for name in names]
        return required, list(SD_OPTIONAL)
    optional = ["preprocessor_config.json"]
    return [CONFIG_NAME, "model.safetensors"], optional


def _check_slot(slot: str) -> None:
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {', '.join(SLOTS)}, got {slot!r}")


def describe(folder: Path) -> str:
    """What a folder seems to hold, in a few words (for the message about a wrong folder)."""
    folder = Path(folder)
    if (folder / INDEX_NAME).is_file():
        try:
            return f"a diffusers pipeline ({read_json_object(folder, INDEX_NAME).get('_class_name', 'unnamed')})"
        except CheckpointError:
            return "a diffusers pipeline"
    if (folder / CONFIG_NAME).is_file():
        try:
            return f"a transformers model of type {read_json_object(folder, CONFIG_NAME).get('model_type', 'unknown')!r}"
        except CheckpointError:
            return "a model with an unreadable config.json"
    if (folder / "config.yaml").is_file():
        return "a TripoSR model"
    return NOTHING


def _wrong(folder: Path, slot: str) -> WrongModelError | ModelNotFoundError:
    what = describe(folder)
    if what == NOTHING:
        return ModelNotFoundError(f"{folder} holds no model: {hint(slot)}")
    return WrongModelError(f"{folder} holds {what}, not {LABELS[slot]}: {hint(slot)}")


def _refuse_pickles(part: Path, expected: list[str]) -> None:
    pickles = sorted(p.name for p in part.iterdir() if p.suffix in PICKLE_SUFFIXES) if part.is_dir() else []
    if pickles:
        raise CheckpointError(
            f"{part} has only pickled weights ({', '.join(pickles)}); they are never loaded because a "
            f"pickle can run code. Put {' or '.join(expected)} there (the hub has it)."
        )


def _check_stable_diffusion(folder: Path) -> None:
    if not (folder / INDEX_NAME).is_file():
        raise _wrong(folder, "stable_diffusion")
    index = read_json_object(folder, INDEX_NAME)
    if index.get("_class_name") != SD_PIPELINE_CLASS:
        raise _wrong(folder, "stable_diffusion")
    for component, (library, class_name) in SD_COMPONENTS.items():
        check_component(folder, component)  # links out, named pipes, shard maps pointing elsewhere
        entry = index.get(component)
        ok = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)
        if ok and class_name is not None:
            ok = entry[1] == class_name
        if not ok:
            raise CheckpointError(f"{folder / INDEX_NAME}: component {component!r} is {entry!r}, "
                                  f"expected [{library!r}, {class_name or 'a scheduler'!r}]")
        missing = [name for name in SD_FILES[component] if not (folder / component / name).is_file()]
        weights = [name for name in missing if name.endswith(".safetensors")]
        if weights:
            _refuse_pickles(folder / component, weights)
        if missing:
            raise CheckpointError(f"{folder / component} lacks {', '.join(missing)} (incomplete download?)")


def _check_transformers(folder: Path, slot: str) -> None:
    if not (folder / CONFIG_NAME).is_file():
        raise _wrong(folder, slot)
    config = read_json_object(folder, CONFIG_NAME)
    check_component(folder)  # links out, named pipes, shard maps pointing elsewhere
    if config.get("model_type") != MODEL_TYPES[slot]:
        raise _wrong(folder, slot)
    if slot == "depth" and not config.get("is_hybrid", False):
        raise WrongModelError(f"{folder} holds a DPT model without the hybrid (ResNet + ViT) backbone, not "
                              f"{LABELS[slot]}: {hint(slot)}")
    if not any((folder / name).is_file() for name in WEIGHTS[slot]):
        _refuse_pickles(folder, WEIGHTS[slot])
        raise CheckpointError(f"{folder} lacks its weights, {' or '.join(WEIGHTS[slot])} (incomplete download?)")


def check_folder(folder, slot: str) -> Path:
    """The folder, if it is a complete model for `slot`; else ModelNotFoundError (no such
    folder), WrongModelError (a folder of another model) or CheckpointError (incomplete)."""
    _check_slot(slot)
    if folder is None or str(folder) == "":
        raise ModelNotFoundError(f"no folder was given for {LABELS[slot]}: {hint(slot)}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"the {LABELS[slot]} folder {folder} does not exist: {hint(slot)}")
    if slot == "stable_diffusion":
        _check_stable_diffusion(folder)
    else:
        _check_transformers(folder, slot)
    return folder


def check_folders(folders: dict) -> dict:
    """{slot: folder} for every slot, each checked; a missing slot is an error."""
    if not isinstance(folders, dict):
        raise ValueError("folders must map each slot (stable_diffusion, clip, depth) to a folder")
    unknown = sorted(set(folders) - set(SLOTS))
    if unknown:
        raise ValueError(f"unknown model slots {', '.join(unknown)}: the slots are {', '.join(SLOTS)}")
    return {slot: check_folder(folders.get(slot), slot) for slot in SLOTS}
