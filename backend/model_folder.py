"""Which model folders a job means, and whether they hold what its family needs, checked
without torch.

Standard library only (the hub download is imported only for a hub id), so the model
server's front can refuse a wrong --model in a second without importing torch (~200 MB)
just to look at a folder. The loaders use the same checks. Each family declares its
model slots (backend/families/contract.py: what a folder holds, its check, its hint);
this module asks them: a folder of another family is named as such ("... is a Shap-E
folder, not TripoSR"), so a wrong choice is never reported as a broken download, and a
folder that holds model folders rather than a model names them.
"""

from dataclasses import dataclass
from pathlib import Path

from .bridge.errors import ModelNotFoundError, WrongModelError
from .bridge.options import check_family_takes, looks_like_hub_id
from .families import diffusers_layout
from .families.contract import ExtraJob
from .families.registry import (
    EXTRA_JOBS_BY_NAME,
    FAMILIES,
    FAMILIES_BY_NAME,
    declared,
    default_family,
    job_needing,
    slot_for_repo,
    slot_holding,
)

MAX_LISTED_SUBFOLDERS = 64  # a parent folder's entries looked at for model folders


@dataclass(frozen=True)
class FolderKind:
    family: str  # a family's or extra job's identifier, "diffusers" (another diffusers pipeline) or "unknown"
    task: str | None = None  # the input its model takes: "image" or "text"
    detail: str = ""  # for another diffusers pipeline: its class name
    slot: object = None  # the ModelSlot whose files the folder holds


def detect_family(folder) -> FolderKind:
    """What a folder holds, from its file names and small text files alone."""
    folder = Path(folder).expanduser()
    held = slot_holding(folder)
    if held is not None:
        family, task, slot = held
        return FolderKind(family.identifier, task, slot=slot)
    if diffusers_layout.has_index(folder):
        return FolderKind("diffusers", None, diffusers_layout.pipeline_class(folder) or "no _class_name")
    needing = job_needing({slot.identifier for _, slot in model_folders_inside(folder)}) if folder.is_dir() else None
    if needing is not None:  # one model folder per slot of a family that needs several
        return FolderKind(needing[0].identifier, needing[1])
    return FolderKind("unknown")


def family_of_model(model: str) -> FolderKind:
    """The family and task of a --model argument: a folder's contents, or an official hub
    id (an unknown hub id is taken to be the first family's, e.g. a TripoSR fine-tune)."""
    if looks_like_hub_id(str(model)):
        known = slot_for_repo(str(model))
        if known is None:
            family = default_family("image")
            return FolderKind(family.identifier, "image", slot=family.slots_for("image")[0])
        return FolderKind(known[0].identifier, known[1], slot=known[2])
    return detect_family(model)


def model_kind(model) -> tuple[str, str]:
    """(family or extra job, task) a --model is for: its folder's or hub id's, else the
    first family's image model (whose check then says what the folder lacks)."""
    kind = family_of_model(model)
    if kind.family in FAMILIES_BY_NAME or kind.family in EXTRA_JOBS_BY_NAME:
        return kind.family, kind.task
    return FAMILIES[0].identifier, FAMILIES[0].tasks[0]


def family_for_job(task: str, family: str | None = None, model: str | None = None) -> str:
    """The family of a command line's jobs: the one asked for (--family), else the model's
    (its folder or official hub id), else the first family that starts from `task`'s input
    (TripoSR for images, Shap-E for prompts)."""
    if family is None and model:
        found = family_of_model(model).family
        family = found if found in FAMILIES_BY_NAME else None
    return family or default_family(task).identifier


def foreign_folder_message(folder, family: str) -> str | None:
    """What to say when `family` was given a folder of another family or another diffusers
    pipeline; None when the folder is not recognisably someone else's."""
    kind = detect_family(folder)
    wanting = declared(family)
    wanted = wanting.label
    if kind.family in (family, "unknown") or kind.slot in wanting.all_slots():
        return None  # its own, or a slot it shares with the family (or job) that declared it first
    if kind.family == "diffusers":
        return f"{folder} holds a diffusers {kind.detail}, not {wanted}"
    owner = declared(kind.family)
    held = kind.slot.described if kind.slot is not None else f"a folder of {owner.label}'s model folders"
    if isinstance(wanting, ExtraJob):
        needed = " or ".join(slot.described for slot in wanting.all_slots())
        return f"{folder} is {held}, not {wanted}'s: give {needed}"
    if isinstance(owner, ExtraJob):
        return f"{folder} is {held}, not {wanted}: {owner.use_hint}"
    return f"{folder} is {held}, not {wanted}: choose the {owner.label} model family for it"


def job_slots(family: str, task: str) -> tuple:
    """The model slots a job of this family (or extra job) and input needs
    (WrongModelError when the family does not start from that input)."""
    if family in FAMILIES_BY_NAME:
        check_family_takes(family, task)
    return declared(family).slots_for(task)


def _single_slot(family: str, task: str):
    found = job_slots(family, task)
    if len(found) != 1:
        names = ", ".join(slot.label for slot in found)
        raise WrongModelError(f"{FAMILIES_BY_NAME[family].label} needs {len(found)} model folders ({names}): "
                              "give the folder that holds them, or each one by its slot")
    return found[0]


def model_folders_inside(folder: Path) -> list:
    """(subfolder, its slot) for the model folders directly inside `folder`."""
    found = []
    try:
        entries = sorted(entry for entry in folder.iterdir() if entry.is_dir())[:MAX_LISTED_SUBFOLDERS]
    except OSError:
        return []
    for entry in entries:
        held = slot_holding(entry)
        if held is not None:
            found.append((entry, held[2]))
    return found


def _parent_folder_message(folder: Path, slot) -> str | None:
    inside = model_folders_inside(folder)
    if not inside:
        return None
    listed = ", ".join(f"{path} ({held.label})" for path, held in inside)
    return f"{folder} holds no {slot.label} itself, but model folders inside it: {listed}: give the one for this job"


def check_slot_folder(folder, slot, family: str) -> Path:
    """The folder, if it holds `slot`'s model; else an error saying what to do."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        raise ModelNotFoundError(f"{folder} is a file: the model is the folder that holds {slot.contents}; "
                                 "give that folder")
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {folder} does not exist: {slot.hint}")
    foreign = foreign_folder_message(folder, family)
    if foreign:
        raise WrongModelError(foreign)
    if not slot.holds(folder) and slot_holding(folder) is None:
        inside = _parent_folder_message(folder, slot)
        if inside:
            raise ModelNotFoundError(inside)
    return slot.check(folder)


def check_model_dir(model_dir, family: str | None = None, task: str = "image") -> Path:
    """The folder, if it holds `family`'s model for `task` (a family whose jobs need one
    folder; the first registered family by default); else an error saying what to do."""
    family = family or FAMILIES[0].identifier
    return check_slot_folder(model_dir, _single_slot(family, task), family)


def resolve_slot_dir(model, slot, family: str) -> Path:
    """A local folder for `slot`, or a hub repo id fetched into the cache (only when asked)."""
    path = Path(model).expanduser()
    if path.is_dir() or not looks_like_hub_id(str(model)):
        return check_slot_folder(path, slot, family)
    known = slot_for_repo(str(model))
    if known is not None and known[2] is not slot:
        owner = known[0].label
        if known[0].identifier == family:
            raise WrongModelError(f"{model} holds the {known[2].label}, not the {slot.label}")
        raise WrongModelError(f"{model} holds {owner}, not {FAMILIES_BY_NAME[family].label}: choose the "
                              f"{owner} model family for it")
    try:
        from .setup import hub
    except ImportError:
        raise ModelNotFoundError(f"{model} is not a folder, and hub downloads are not available") from None
    return check_slot_folder(hub.fetch_slot(str(model), slot), slot, family)


def resolve_model_dir(model, family: str | None = None, task: str = "image") -> Path:
    """The one folder of a job that needs one (see resolve_model_folders for the others)."""
    family = family or FAMILIES[0].identifier
    return resolve_slot_dir(model, _single_slot(family, task), family)


def resolve_model_folders(model, family: str, task: str) -> dict:
    """slot id -> folder for every model a job of this family (or extra job) and input
    needs. `model`: one folder or hub id (a family with one slot), a folder holding one
    model folder per slot (as `make-test-model` writes them), or a dict slot id -> folder
    or hub id. A slot the job may go without (ExtraJob.optional_slots) is left out when
    it is not there; a folder of one of its slots alone is taken as that slot's."""
    owner = declared(family)
    needed = job_slots(family, task)
    optional = set(getattr(owner, "optional_slots", ()))
    if isinstance(model, dict):
        unknown = set(model) - {slot.identifier for slot in needed}
        missing = [slot.label for slot in needed if slot.identifier not in model and slot.identifier not in optional]
        if unknown or missing:
            raise ModelNotFoundError(f"{owner.label} needs {', '.join(s.label for s in needed)}"
                                     + (f"; missing: {', '.join(missing)}" if missing else "")
                                     + (f"; not its slots: {', '.join(sorted(unknown))}" if unknown else ""))
        return {slot.identifier: resolve_slot_dir(model[slot.identifier], slot, family) for slot in needed
                if slot.identifier in model}
    if len(needed) == 1:
        return {needed[0].identifier: resolve_slot_dir(model, needed[0], family)}
    parent = Path(model).expanduser()
    held = slot_holding(parent)
    if held is not None and held[2] in needed and optional >= {s.identifier for s in needed if s is not held[2]}:
        return resolve_model_folders({held[2].identifier: str(parent)}, family, task)
    inside = {held.identifier: path for path, held in model_folders_inside(parent)} if parent.is_dir() else {}
    return resolve_model_folders({slot.identifier: inside.get(slot.identifier, parent / slot.identifier)
                                  for slot in needed if slot.identifier in inside or slot.identifier not in optional},
                                 family, task)

