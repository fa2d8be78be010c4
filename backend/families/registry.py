"""The one list of model families. Standard library only.

Everything that serves several families (the job function, the worker, the server, the
CLI, the benchmarks, downloads, the add-on's preferences, panel and operators) iterates
this list: adding a family is a package with a declaration and an engine, and one line
in BUILT_IN.

A family can also plug in from outside the project, without a line changed here: name
its module in the environment variable IMAGE_TO_3D_FAMILIES (comma-separated module
names) and, unless it is installed, the folders it lives in in IMAGE_TO_3D_FAMILY_PATH
(like PYTHONPATH, which the model process does not inherit from Blender; the
environment is trusted as PYTHONPATH itself is). The module provides
`declare(api) -> Family`, `api` holding this package's contract classes (contract.API),
so the module builds its declaration from the same classes whichever copy of the
package imports it (Blender imports the extension's). Plug-ins are read once, when this
module is first imported, before any list derived from it is built.
"""

import dataclasses
import importlib
import os
import sys
import types
from pathlib import Path

from ..make_it_3d.declaration import FAMILY as MAKE_IT_3D_FAMILY
from ..one2345.declaration import FAMILY as ONE2345_FAMILY
from ..shap_e.declaration import FAMILY as SHAP_E_FAMILY
from ..triposr.declaration import FAMILY as TRIPOSR_FAMILY
from ..zero123.declaration import JOB as VIEWS_JOB
from .contract import API, TASKS, ExtraJob, Family, ModelSlot, Stage

BUILT_IN = (TRIPOSR_FAMILY, SHAP_E_FAMILY, MAKE_IT_3D_FAMILY, ONE2345_FAMILY)
# Jobs that make no object but use model folders (their slots are listed with the
# families' for the preferences, downloads and make-test-model): the views job.
EXTRA_JOBS = (VIEWS_JOB,)
PLUGINS_ENV = "IMAGE_TO_3D_FAMILIES"
PLUGIN_PATH_ENV = "IMAGE_TO_3D_FAMILY_PATH"

# What every job may go through after its family's stages (the mesh stage, then the
# raw surface's colours or the texture's unwrap and bake), with rough shares of its time.
MESH_STAGES = (Stage("cleanup", 0.03), Stage("decimate", 0.03), Stage("colors", 0.15), Stage("unwrap", 0.03),
               Stage("bake", 0.2))


class FamilyDeclarationError(ValueError):
    """A family's declaration breaks the contract (a developer's mistake, said at import)."""


def _checked(family: Family, known: list) -> Family:
    """The family with its options tagged as its own; FamilyDeclarationError on a clash."""
    def refuse(problem):
        raise FamilyDeclarationError(f"model family {family.identifier!r}: {problem}")

    if not isinstance(family, Family):
        raise FamilyDeclarationError(f"a family plug-in returned {type(family).__name__}, not a Family")
    if not family.identifier.isidentifier() or family.identifier != family.identifier.upper():
        refuse("the identifier must be an upper-case name such as MY_FAMILY")
    if any(other.identifier == family.identifier for other in known):
        refuse("a family with this identifier is registered already")
    if not family.tasks or set(family.tasks) - set(TASKS):
        refuse(f"tasks must be some of {', '.join(TASKS)}")
    if set(family.slots) != set(family.tasks) or not all(family.slots_for(task) for task in family.tasks):
        refuse("every input (task) needs at least one model slot, and slots only for its tasks")
    if not family.stages or family.stages[-1].name != "surface":
        refuse("its stages must end with 'surface' (the mesh stage's follow)")
    if set(family.stage_names()) & {stage.name for stage in MESH_STAGES}:
        refuse("its stages may not reuse the mesh stage's names")
    if family.finishing_stages is not None:
        finishing = [stage.name for stage in family.finishing_stages]
        if not all(isinstance(stage, Stage) for stage in family.finishing_stages) or \
                len(set(finishing)) != len(finishing) or set(finishing) & set(family.stage_names()):
            refuse("its finishing stages must be Stages named once, none of them one of its own stages")
    taken_options = {option.name for other in known for option in other.options}
    # a model slot may serve several families (the very same ModelSlot: one folder, one preference)
    taken_slots = {slot.identifier: slot for other in known for slot in other.all_slots()}
    taken_preferences = {slot.preference: slot for other in known for slot in other.all_slots()}
    for option in family.options:
        if option.name in taken_options or option.name in ("family", "preset"):
            refuse(f"option {option.name!r} is another family's (give it a name of its own)")
    for slot in family.all_slots():
        if not isinstance(slot, ModelSlot):
            refuse(f"slot {slot!r} is not a ModelSlot")
        for taken in (taken_slots.get(slot.identifier), taken_preferences.get(slot.preference)):
            if taken is not None and taken != slot:
                refuse(f"model slot {slot.identifier!r} (preference {slot.preference!r}) is another family's")
    for name in (family.resolution_option, family.seed_option):
        if name is not None and name not in {option.name for option in family.options}:
            refuse(f"{name!r} is not one of its options")
    tagged = tuple(dataclasses.replace(option, families=(family.identifier,)) for option in family.options)
    return dataclasses.replace(family, options=tagged)


def _plugin_families(names: str) -> list:
    api = types.SimpleNamespace(**API)
    found = []
    for folder in filter(None, os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep)):
        if folder not in sys.path:
            sys.path.append(folder)
    for name in filter(None, (part.strip() for part in names.split(","))):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{PLUGINS_ENV} names {name!r}, which cannot be imported: {exc}") from exc
        declare = getattr(module, "declare", None)
        if not callable(declare):
            raise FamilyDeclarationError(f"{PLUGINS_ENV}: module {name!r} has no declare(api) function")
        found.append(declare(api))
    return found


def _register_all() -> tuple:
    registered = []
    for family in (*BUILT_IN, *_plugin_families(os.environ.get(PLUGINS_ENV, ""))):
        registered.append(_checked(family, registered))
    return tuple(registered)


def _checked_extra_job(job: ExtraJob, families: tuple) -> ExtraJob:
    """The job, if its identifier, options and slots clash with no family's (a slot it
    shares with a family must be the very same ModelSlot)."""
    def refuse(problem):
        raise FamilyDeclarationError(f"job {job.identifier!r}: {problem}")

    if not job.identifier.isidentifier() or job.identifier != job.identifier.upper():
        refuse("the identifier must be an upper-case name such as VIEWS")
    if any(family.identifier == job.identifier for family in families):
        refuse("a family has this identifier")
    taken = {slot.identifier: slot for family in families for slot in family.all_slots()}
    taken.update({slot.preference: slot for family in families for slot in family.all_slots()})
    for slot in job.all_slots():
        for found in (taken.get(slot.identifier), taken.get(slot.preference)):
            if found is not None and found != slot:
                refuse(f"model slot {slot.identifier!r} (preference {slot.preference!r}) is another family's")
    family_options = {option.name: option for family in families for option in family.options}
    for option in job.options:
        shared = family_options.get(option.name)
        if shared is not None and dataclasses.replace(shared, families=()) != option:
            refuse(f"option {option.name!r} is declared differently by a family")
    if set(job.optional_slots) - {slot.identifier for slot in job.all_slots()}:
        refuse("optional_slots names a slot it does not have")
    return job


FAMILIES = _register_all()
FAMILIES_BY_NAME = {family.identifier: family for family in FAMILIES}
EXTRA_JOBS = tuple(_checked_extra_job(job, FAMILIES) for job in EXTRA_JOBS)
EXTRA_JOBS_BY_NAME = {job.identifier: job for job in EXTRA_JOBS}
VIEWS = EXTRA_JOBS_BY_NAME[VIEWS_JOB.identifier]  # the views job (backend/zero123/)
# name -> weight of every stage any job reports, families' first, in the order jobs go
STAGE_WEIGHTS = {stage.name: stage.weight for family in FAMILIES for stage in family.stages}
STAGE_WEIGHTS.update({stage.name: stage.weight for family in FAMILIES for stage in family.finishing_stages or ()})
STAGE_WEIGHTS.update({stage.name: stage.weight for stage in MESH_STAGES})  # the mesh stage's names keep theirs


def families_taking(task: str) -> tuple:
    return tuple(family for family in FAMILIES if task in family.tasks)


def default_family(task: str) -> Family:
    """The first registered family that starts from this input (TripoSR for images)."""
    return families_taking(task)[0]


def declared(identifier: str):
    """The family or extra job of this identifier (KeyError when there is none)."""
    return FAMILIES_BY_NAME.get(identifier) or EXTRA_JOBS_BY_NAME[identifier]


def slots() -> tuple:
    """(family or extra job, task, slot) for every model folder any job needs, the
    families' first, in declaration order."""
    return tuple((owner, task, slot) for owner in (*FAMILIES, *EXTRA_JOBS) for task in owner.tasks
                 for slot in owner.slots_for(task))


def unique_slots() -> tuple:
    """(family or extra job, slot) for every model slot once (a slot may serve several
    inputs, families and jobs: the first that declares it is named)."""
    seen = {}
    for owner in (*FAMILIES, *EXTRA_JOBS):
        for slot in owner.all_slots():
            seen.setdefault(slot.identifier, (owner, slot))
    return tuple(seen.values())


def slot_for_repo(repo_id: str):
    """(family, task, slot) of an official hub repository, or None."""
    return next((entry for entry in slots() if entry[2].hub_repo == repo_id), None)


def job_needing(slot_ids: set):
    """(family or extra job, task) of the first job whose model slots are exactly these (a
    folder that holds one model folder per slot, as make-test-model writes them), or None."""
    return next(((owner, task) for owner in (*FAMILIES, *EXTRA_JOBS) for task in owner.tasks
                 if len(owner.slots_for(task)) > 1 and {s.identifier for s in owner.slots_for(task)} == slot_ids),
                None)


def slot_holding(folder: Path):
    """(family, task, slot) whose files the folder holds, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return next((entry for entry in slots() if entry[2].holds(folder)), None)
