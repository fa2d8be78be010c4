"""What a model family declares, without torch: the contract every family fulfils.

Standard library only, so the bridge, the model server's front and the Blender side can
read every family's inputs, options, model folders and stages. The torch half of a
family (its engine: load a model, run a job up to the surface) is imported only where
jobs run, through `Family.engine()`; docs/CONTRACTS.md describes both halves.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..bridge.errors import CheckpointError, ModelNotFoundError
from ..bridge.option import Option

TASKS = ("image", "text")  # what a job starts from: an image, or a text prompt
TASK_WORDS = {"image": "an image", "text": "a text prompt"}


@dataclass(frozen=True)
class ModelSlot:
    """One model folder a family's jobs need (TripoSR's checkpoint, Shap-E's text model).

    The folder's checks read file names and small text files only (no torch): the
    worker, the server's front and the add-on's readiness lines ask the same questions.
    """

    identifier: str  # stable: the test-model maker's and a multi-folder job's key
    label: str  # "TripoSR model": what the user reads
    preference: str  # the add-on preference holding its folder (kept across versions)
    hub_repo: str  # the official repository (Download fetches it)
    holds: Callable[[Path], bool]  # True when a folder's files say it is this slot's model
    check: Callable[[Path], Path]  # the folder, or a BackendError saying what is missing or wrong
    contents: str  # what the folder holds, e.g. "config.yaml and model.ckpt"
    described: str  # a folder of this slot in other slots' messages: "a TripoSR model folder (...)"
    hint: str  # how to get a folder (ends the messages about a missing one)
    hub_files: Callable[[], tuple[list, list]]  # (required, optional) paths a download fetches
    download_size: str = ""  # "1.7 GB", shown beside Download
    licence: str = ""
    needs_background_model: bool = False  # Download also fetches rembg's u2net (opaque pictures)
    hub_revision: str | None = None  # the repository's revision a download fetches (None: main)


@dataclass(frozen=True)
class Stage:
    """One progress stage of a job, with its rough share of a job's time (for one overall
    percentage: a diffusion's steps outweigh everything else)."""

    name: str
    weight: float


class _Declared:
    """What a family and an extra job share: model slots per input, stages, a command name."""

    @property
    def command_name(self) -> str:
        return self.test_model_name or self.label.lower().replace(" ", "-")

    def slots_for(self, task: str) -> tuple:
        return tuple(self.slots.get(task, ()))

    def all_slots(self) -> tuple:
        """Every slot once, in declaration order (a slot may serve several inputs)."""
        seen = {}
        for task in self.tasks:
            for slot in self.slots_for(task):
                seen.setdefault(slot.identifier, slot)
        return tuple(seen.values())

    def stage_names(self) -> tuple:
        return tuple(stage.name for stage in self.stages)


@dataclass(frozen=True)
class Family(_Declared):
    """A model family: the inputs it turns into objects and all the rest the shared parts
    need to know of it. The registry (registry.py) is the one list of families."""

    identifier: str  # the `family` option's value, e.g. "TRIPOSR"
    label: str
    description: str
    tasks: tuple  # inputs it starts from (TASKS)
    options: tuple  # its own job options (Option); the registry tags them with this family
    slots: dict  # task -> tuple of ModelSlot: the model folders a job from that input needs
    stages: tuple  # Stage, in order, up to and including "surface"; the mesh stage's follow
    engine: Callable[[], object]  # imports and returns the engine module (torch side)
    test_models: Callable  # (out_dir: Path, size: str, seed: int, tasks: tuple) -> {slot id: folder}
    test_model_sizes: tuple = ("tiny",)  # the first is the default
    resolution_option: str | None = None  # the option to lower when memory runs out
    seed_option: str | None = None  # the option naming the starting noise, when the job draws any
    test_model_name: str = ""  # `make-test-model NAME`; default: the label in lower case
    prompt_with_image: bool = False  # its image jobs need a text prompt too (what to make of the picture)
    # None: the job function runs the shared mesh stage after "surface". A tuple of Stage:
    # the engine finishes the result itself (Surface.finished: a family that optimises the
    # mesh stage's output, as Make-It-3D refines its texture) and reports these stages after
    # "surface", the mesh stage's names among them (their weights are the registry's).
    finishing_stages: tuple | None = None
    notes: dict = field(default_factory=dict)  # free words for the README/help (speed, memory)

    @property
    def finishes_mesh(self) -> bool:
        """True when its engine runs the mesh stage itself (finishing_stages declared)."""
        return self.finishing_stages is not None


@dataclass(frozen=True)
class ExtraJob(_Declared):
    """A job of the registry that makes no object (the views job: pictures of the object
    from other sides). Its model slots are listed with the families' (preferences,
    downloads, `make-test-model`, the folder checks); its options and stages are its own
    (a settings class of their own, its own protocol messages and entry points). A family
    may reuse its very ModelSlot objects and Option declarations (One-2-3-45 reuses the
    views job's)."""

    identifier: str  # "VIEWS": upper case, never a family's
    label: str  # "Views"
    description: str
    tasks: tuple  # inputs it starts from (TASKS)
    options: tuple  # its options (Option), named apart from every family's
    slots: dict  # task -> tuple of ModelSlot
    stages: tuple  # Stage, in order
    engine: Callable[[], object]  # imports and returns its job module (torch side)
    test_models: Callable  # (out_dir, size, seed, tasks) -> {slot id: folder}
    test_model_sizes: tuple = ("tiny",)
    test_model_name: str = ""
    seed_option: str | None = None
    optional_slots: tuple = ()  # slot ids a job may go without (the job says when it needs them)
    use_hint: str = ""  # how a user runs it, for messages about its model folders


# What a plug-in module outside the project builds its Family from (see registry.py):
# the same classes, whichever copy of the package imported it.
API = {"Family": Family, "ExtraJob": ExtraJob, "ModelSlot": ModelSlot, "Stage": Stage, "Option": Option, "TASKS": TASKS,
       "ModelNotFoundError": ModelNotFoundError, "CheckpointError": CheckpointError}
