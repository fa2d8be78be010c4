"""Which model folder a job means, and whether it holds the model family the job asks for,
checked without torch.

Standard library only (the hub download is imported only for a hub id), so the model
server's front can refuse a wrong --model in a second without importing torch (~200 MB)
just to look at a folder. The loaders (triposr/checkpoint.py, shap_e/loader.py) use the
same checks. A folder of another family is named as such ("... is a Shap-E folder, not
TripoSR"), so a wrong choice is never reported as a broken download.
"""

from dataclasses import dataclass
from pathlib import Path

from .bridge.errors import ModelNotFoundError, WrongModelError
from .bridge.options import FAMILIES, FAMILIES_BY_NAME, SHAP_E, TRIPOSR, looks_like_hub_id
from .model_files import model_file
from .shap_e import folders as shap_e_folders

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.ckpt"
TRIPOSR_HUB_ID = "stabilityai/TripoSR"
# The official repositories: (family, task) each holds.
HUB_MODELS = {
    TRIPOSR_HUB_ID: (TRIPOSR, "image"),
    **{repo: (SHAP_E, task) for task, repo in shap_e_folders.HUB_REPOS.items()},
}


@dataclass(frozen=True)
class FolderKind:
    family: str  # TRIPOSR, SHAP_E, "diffusers" (another diffusers pipeline) or "unknown"
    task: str | None = None  # the input its model takes: "image" or "text"
    detail: str = ""  # for another diffusers pipeline: its class name


def detect_family(folder) -> FolderKind:
    """What a folder holds, from its file names and model_index.json alone."""
    folder = Path(folder).expanduser()
    if (folder / shap_e_folders.INDEX_NAME).is_file():
        class_name = shap_e_folders.pipeline_class(folder)
        task = shap_e_folders.task_of_pipeline(class_name)
        return FolderKind(SHAP_E, task) if task else FolderKind("diffusers", None, class_name or "no _class_name")
    if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
        return FolderKind(TRIPOSR, "image")
    return FolderKind("unknown")


def family_of_model(model: str) -> FolderKind:
    """The family and task of a --model argument: a folder's contents, or an official hub id."""
    if looks_like_hub_id(str(model)):
        family, task = HUB_MODELS.get(str(model), (TRIPOSR, "image"))
        return FolderKind(family, task)
    return detect_family(model)


def family_for_job(task: str, family: str | None = None, model: str | None = None) -> str:
    """The family of a command line's jobs: the one asked for (--family), else the model's
    (its folder or official hub id), else the first family that starts from `task`'s input
    (TripoSR for images, Shap-E for prompts)."""
    if family is None and model:
        found = family_of_model(model).family
        family = found if found in FAMILIES_BY_NAME else None
    return family or next(f.identifier for f in FAMILIES if task in f.tasks)


def foreign_folder_message(folder, family: str) -> str | None:
    """What to say when `family` was given a folder of another family or another diffusers
    pipeline; None when the folder is not recognisably someone else's."""
    kind = detect_family(folder)
    wanted = FAMILIES_BY_NAME[family].label
    if kind.family in (family, "unknown"):
        return None
    if kind.family == TRIPOSR:
        return (f"{folder} is a TripoSR model folder ({CONFIG_NAME} + {WEIGHTS_NAME}), not {wanted}: "
                "choose the TripoSR model family for it")
    if kind.family == SHAP_E:
        return (f"{folder} is a Shap-E {shap_e_folders.TASK_WORDS[kind.task]} folder "
                f"({shap_e_folders.HUB_REPOS[kind.task]}), not {wanted}: choose the Shap-E model family for it")
    return f"{folder} holds a diffusers {kind.detail}, not {wanted}"


def check_model_dir(model_dir, family: str = TRIPOSR, task: str = "image") -> Path:
    """The folder, if it holds `family`'s model for `task`; else an error saying what to do."""
    model_dir = Path(model_dir).expanduser()
    if family == SHAP_E:
        return _check_shap_e(model_dir, task)
    if model_dir.is_file():
        raise ModelNotFoundError(
            f"{model_dir} is a file: the model is the folder that holds TripoSR's {CONFIG_NAME} "
            f"and {WEIGHTS_NAME}; give that folder"
        )
    if not model_dir.is_dir():
        raise ModelNotFoundError(
            f"model folder {model_dir} does not exist: put TripoSR's {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} there, or pass a hub repository id such as {TRIPOSR_HUB_ID}"
        )
    foreign = foreign_folder_message(model_dir, TRIPOSR)
    if foreign:
        raise WrongModelError(foreign)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (model_dir / n).exists()]
    if missing:
        raise ModelNotFoundError(
            f"model folder {model_dir} lacks {' and '.join(missing)}: it needs TripoSR's "
            f"{CONFIG_NAME} and {WEIGHTS_NAME} (from huggingface.co/{TRIPOSR_HUB_ID})"
        )
    for name in (CONFIG_NAME, WEIGHTS_NAME):  # regular files inside the folder: no named pipe, no link out
        model_file(model_dir, name)
    return model_dir


def _check_shap_e(folder: Path, task: str) -> Path:
    hint = shap_e_folders.hint(task)
    if folder.is_file():
        raise ModelNotFoundError(f"{folder} is a file: the model is a folder, {hint}")
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {folder} does not exist: {hint}")
    foreign = foreign_folder_message(folder, SHAP_E)
    if foreign:
        raise WrongModelError(f"{foreign}; for Shap-E {hint}")
    return shap_e_folders.check_folder(folder, task)


def resolve_model_dir(model: str | Path, family: str = TRIPOSR, task: str = "image") -> Path:
    """A local model folder, or a hub repo id fetched into the cache (only when asked)."""
    path = Path(model).expanduser()
    if path.is_dir() or not looks_like_hub_id(str(model)):
        return check_model_dir(path, family, task)
    known = HUB_MODELS.get(str(model))
    if known is not None and known[0] != family:
        raise WrongModelError(f"{model} holds {FAMILIES_BY_NAME[known[0]].label}, not "
                              f"{FAMILIES_BY_NAME[family].label}: choose the {FAMILIES_BY_NAME[known[0]].label} "
                              "model family for it")
    try:
        from .setup import hub
    except ImportError:
        raise ModelNotFoundError(f"{model} is not a folder, and hub downloads are not available") from None
    folder = hub.fetch_shap_e(str(model), task) if family == SHAP_E else hub.fetch_model(str(model))
    return check_model_dir(folder, family, task)
