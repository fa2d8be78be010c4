"""Whether a folder is a complete Shap-E model for a task. Standard library only.

A Shap-E folder is diffusers' layout of openai/shap-e (text -> 3D, ShapEPipeline) or
openai/shap-e-img2img (image -> 3D, ShapEImg2ImgPipeline): model_index.json and one
folder per component. Only safetensors weights are ever loaded; a component that has
nothing but pickled weights (.bin, .pt, .ckpt) is refused. Which family a folder holds
at all is backend/model_folder.py's question.
"""

from pathlib import Path

from ..bridge.errors import CheckpointError, WrongModelError
from ..families.diffusers_layout import INDEX_NAME, PICKLE_SUFFIXES, has_index, pipeline_class, read_index
from ..model_files import check_component

HUB_REPOS = {"text": "openai/shap-e", "image": "openai/shap-e-img2img"}
PIPELINE_CLASSES = {"text": "ShapEPipeline", "image": "ShapEImg2ImgPipeline"}
TASK_WORDS = {"text": "text-to-3D", "image": "image-to-3D"}

_COMMON = {
    "prior": ("diffusers", "PriorTransformer"),
    "scheduler": ("diffusers", "HeunDiscreteScheduler"),
    "shap_e_renderer": ("shap_e", "ShapERenderer"),
}
# model_index.json entries a folder must have, exactly: the loader builds these classes
# itself, so no folder can make diffusers import code of its choosing.
COMPONENTS = {
    "text": {**_COMMON, "text_encoder": ("transformers", "CLIPTextModelWithProjection"),
             "tokenizer": ("transformers", "CLIPTokenizer")},
    "image": {**_COMMON, "image_encoder": ("transformers", "CLIPVisionModel"),
              "image_processor": ("transformers", "CLIPImageProcessor")},
}
# Files each component needs; alternatives separated by "|".
REQUIRED_FILES = {
    "prior": ["config.json"],
    "shap_e_renderer": ["config.json"],
    "text_encoder": ["config.json"],
    "image_encoder": ["config.json"],
    "scheduler": ["scheduler_config.json"],
    "tokenizer": ["tokenizer.json|vocab.json", "tokenizer.json|merges.txt"],
    "image_processor": ["preprocessor_config.json"],
}
# Fetched when the hub has them, not required (the loader copes without).
OPTIONAL_FILES = {"tokenizer": ["tokenizer_config.json", "special_tokens_map.json"]}
WEIGHTED = {"prior": "diffusion_pytorch_model", "shap_e_renderer": "diffusion_pytorch_model",
            "text_encoder": "model", "image_encoder": "model"}


def task_of_pipeline(class_name: str) -> str | None:
    return next((task for task, name in PIPELINE_CLASSES.items() if name == class_name), None)


def holds(folder: Path, task: str) -> bool:
    """True when the folder's model_index.json names the task's pipeline (CheckpointError
    when that file is not readable JSON)."""
    return has_index(folder) and task_of_pipeline(pipeline_class(folder)) == task


def hint(task: str) -> str:
    return (
        f"use a folder of {HUB_REPOS[task]} in diffusers' layout (model_index.json and the "
        f"component folders), the hub id {HUB_REPOS[task]} to download it, or "
        f"'python -m backend make-test-model shap-e DIR' for random test weights"
    )


def hub_files(task: str) -> tuple[list[str], list[str]]:
    """(required, optional) files of the task's hub repository, as paths in it: what a
    download fetches (full-precision safetensors only, never fp16 copies or pickles)."""
    required, optional = [INDEX_NAME], []
    for component in COMPONENTS[task]:
        required += [f"{component}/{names.split('|')[-1]}" for names in REQUIRED_FILES[component]]
        optional += [f"{component}/{name}" for name in OPTIONAL_FILES.get(component, [])]
        if component in WEIGHTED:
            required.append(f"{component}/{WEIGHTED[component]}.safetensors")
    return required, optional


def _check_weights(folder: Path, component: str) -> None:
    stem = WEIGHTED[component]
    part = folder / component
    if (part / f"{stem}.safetensors").is_file() or (part / f"{stem}.safetensors.index.json").is_file():
        return
    pickles = sorted(p.name for p in part.iterdir() if p.suffix in PICKLE_SUFFIXES) if part.is_dir() else []
    if pickles:
        raise CheckpointError(
            f"{part} has only pickled weights ({', '.join(pickles)}); they are never loaded because "
            f"a pickle can run code. Put {stem}.safetensors there (the hub has it)."
        )
    raise CheckpointError(f"{part} lacks its weights, {stem}.safetensors (incomplete download?)")


def check_folder(folder: Path, task: str) -> Path:
    """The folder, if it is a complete Shap-E folder for `task` (model_folder.py has made
    sure it is a Shap-E folder at all); else a clear error."""
    if task not in PIPELINE_CLASSES:
        raise ValueError(f"task must be one of {', '.join(PIPELINE_CLASSES)}, got {task!r}")
    index = read_index(folder)
    held = task_of_pipeline(pipeline_class(folder))
    if held != task:
        raise WrongModelError(
            f"{folder} is Shap-E's {TASK_WORDS[held]} model ({HUB_REPOS[held]}), "
            f"but this job is {TASK_WORDS[task]}: it needs {HUB_REPOS[task]}"
        )
    for component, (library, class_name) in COMPONENTS[task].items():
        entry = index.get(component)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] == class_name):
            raise CheckpointError(
                f"{folder / INDEX_NAME}: component {component!r} is {entry!r}, expected [{library!r}, {class_name!r}]"
            )
        check_component(folder, component)  # links out, named pipes, shard maps pointing elsewhere
        missing = [alts for alts in REQUIRED_FILES[component]
                   if not any((folder / component / name).is_file() for name in alts.split("|"))]
        if missing:
            raise CheckpointError(
                f"{folder / component} lacks {', '.join(m.replace('|', ' or ') for m in missing)} (incomplete download?)"
            )
        if component in WEIGHTED:
            _check_weights(folder, component)
    return folder
