"""One image or prompt through the worker or a model server, and a folder of images or a
file of prompts: the work behind the operators.

A `GenerateRun` only talks to the session's job client (submit, poll, cancel: a
WorkerClient or a ServerClient, worker_session decides); it never touches
the scene until `finish` builds the object, so a cancelled or failed job leaves nothing
behind. What the UI shows of it lives in job_state.STATUS.
"""

import math
import os
import time
from dataclasses import dataclass, field

import bpy

from ..backend.bridge import atomic_files
from ..backend.bridge.errors import BackendError
from ..backend.bridge.options import FAMILIES_BY_NAME, OPTIONS_BY_NAME
from ..backend.bridge.prompts import read_prompts
from ..backend.bridge.settings import GenerateSettings, job_stages
from ..backend.families.registry import STAGE_WEIGHTS
from . import image_source, mesh_builder, prompt_source, worker_session
from .job_run import JobRun, overall_fraction
from .job_state import STATUS

GRID_SPACING = 2.5  # the families' objects fit in a cube of side 2 at most
# Custom properties of an object, besides its source and settings: what makes it again
PROPERTY_PROMPT = "image_to_3d_prompt"
PROPERTY_SEED = "image_to_3d_seed"


@dataclass
class RunOptions:
    """Everything a run needs besides its image: the backend's settings and how the
    object is made (see backend/bridge/options.py)."""

    settings: GenerateSettings = field(default_factory=GenerateSettings)
    shading: str = OPTIONS_BY_NAME["shading"].default
    rest_on_cursor: bool = False

    def properties(self, model: str) -> dict:
        """Stored on the object; equal dicts mean equal results (batch re-runs skip them)."""
        return {**self.settings.to_dict(), "model": model}


class GenerateRun(JobRun):
    """Submit one image or prompt, follow its events, hand back the JobResult or the error."""

    def __init__(self, image, options: RunOptions, client=None):
        """image: an image_source.ImageInput or a prompt_source.PromptInput."""
        super().__init__(client or worker_session.client())
        self.image = image
        self.options = options
        self.detail = None  # a long job's progress in words ("coarse 120/400, loss 0.031")
        self.preview = None  # the latest preview event (a long job's picture of its object)
        self.previews = 0  # how many arrived (the operator shows each new one)

    def submit(self):
        family = self.options.settings.family
        return self.client.submit(self.options.settings, **self.image.submit_kwargs(),
                                  **worker_session.job_model(family, self.image.task))

    def progressed(self, event) -> None:
        self.stage, self.detail = event.stage or self.stage, event.detail
        # STAGE_WEIGHTS: each stage's share, declared by the families and the mesh stage;
        # a job counts only the stages it goes through (bridge/settings.py job_stages).
        self.fraction = overall_fraction(event.stage, event.fraction or 0.0, job_stages(self.options.settings),
                                         STAGE_WEIGHTS)

    def previewed(self, event) -> None:
        self.preview, self.previews = event, self.previews + 1

    def model_label(self) -> str:
        return worker_session.model_label(None, self.options.settings.family, self.image.task)

    def describe(self) -> str:
        if self.detail:
            return f"{self.image.name}: {self.detail} ({self.fraction * 100:.0f}%)"
        return f"{self.image.name}: {self.stage} {self.fraction * 100:.0f}%"


def finish(context, job: GenerateRun, location=None, collection=None) -> bpy.types.Object:
    """Turn a finished job's result into the scene object and show the model's input."""
    result = job.result
    model = job.model_label()
    obj = mesh_builder.create_object(
        context, job.image.name, result.vertices, result.faces, result.colors,
        uvs=result.uvs, base_color=result.base_color, normal_map=result.normal_map,
        shading=job.options.shading,
        location=context.scene.cursor.location if location is None else location,
        rest_on_cursor=job.options.rest_on_cursor,
        collection=collection,
        source=job.image.source,
        settings=job.options.properties(model),
    )
    if getattr(job.image, "prompt", None):  # a text job's, or an image's (a family that takes one)
        obj[PROPERTY_PROMPT] = job.image.prompt
    seed_option = FAMILIES_BY_NAME[job.options.settings.family].seed_option
    if seed_option:
        obj[PROPERTY_SEED] = getattr(job.options.settings, seed_option)
    prepared = mesh_builder.show_prepared_image(obj.name, result.prepared_image)  # none for a prompt
    STATUS.last_input_image = prepared.name if prepared else ""
    textures = f"{len(result.base_color)} px textures, " if result.base_color is not None else ""
    STATUS.last_result = (
        f"{obj.name}: {len(result.vertices):,} vertices, {len(result.faces):,} faces, {textures}{job.seconds:.1f} s"
    )
    # a warning (e.g. a tiny object) stays visible in the panel beside the result
    STATUS.last_error = "; ".join(result.notes)
    return obj


def list_images(directory: str, recursive: bool = False) -> list[str]:
    directory = os.path.abspath(bpy.path.abspath(directory))
    if not os.path.isdir(directory):
        raise ValueError(f"{directory} is not a folder")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, f) for f in files if os.path.splitext(f)[1].lower() in image_source.PATH_FORMATS]
        if not recursive:
            break
    return sorted(found)


def batch_collection(context, source: str) -> bpy.types.Collection:
    """One collection per folder (or prompts file), reused by re-runs."""
    base = os.path.basename(os.path.abspath(source).rstrip(os.sep))
    name = f"Image to 3D: {os.path.splitext(base)[0] if os.path.isfile(source) else base or source}"
    collection = bpy.data.collections.get(name)
    if collection is None:
        collection = bpy.data.collections.new(name)
    if collection.name not in context.scene.collection.children and not _linked(context.scene.collection, collection):
        context.scene.collection.children.link(collection)
    return collection


def _linked(parent, collection) -> bool:
    return any(child == collection or _linked(child, collection) for child in parent.children)


class BatchRun:
    """Every image of a folder, or every prompt of a prompts file (one object per line), one
    after the other; `step` advances without blocking. A prompts file's bad lines fail
    alone, before anything runs; a prompt repeated in the file is made once."""

    def __init__(self, context, directory, options: RunOptions, recursive=False, export_dir="", export_format="GLB",
                 prompts_file="", image_prompt=None):
        """image_prompt: the prompt of every image, for a family whose image jobs take one."""
        self.task = "text" if prompts_file else "image"
        self.image_prompt = image_prompt
        self.failed: list[tuple[str, str]] = []  # (image path, prompt or "line N" of the file, message)
        self._bad_lines = set()
        if prompts_file:
            self.directory = os.path.abspath(bpy.path.abspath(prompts_file))
            self.files, repeats = [], []
            for line in read_prompts(self.directory):  # PromptError: no such file, no prompts in it
                if line.problem:
                    self.failed.append((line.label, line.problem))
                    self._bad_lines.add(line.label)
                elif line.text in self.files:
                    repeats.append(line.text)
                else:
                    self.files.append(line.text)
        else:
            self.directory = os.path.abspath(bpy.path.abspath(directory))
            self.files, repeats = list_images(self.directory, recursive), []
        self.options = options
        self.export_dir = bpy.path.abspath(export_dir) if export_dir else ""
        self.export_format = export_format
        self.exported_names: set[str] = set()  # two objects never share an export file
        self.collection = batch_collection(context, self.directory)
        self.origin = tuple(context.scene.cursor.location)
        self.columns = max(1, math.ceil(math.sqrt(len(self.files))))
        done = self._already_done()
        self.skipped = [item for item in self.files if item in done] + repeats
        self.queue = [item for item in self.files if item not in done]  # image paths or prompts
        self.total = len(self.queue) + len(self.failed)
        self.succeeded: list[tuple[str, str]] = []  # (image path or prompt, object name)
        self.stopped = False
        self.current: GenerateRun | None = None
        self.current_item = None
        self.log_path = ""

    def _input(self, item: str):
        if self.task == "text":
            return prompt_source.PromptInput(item)
        source = image_source.from_file(item)
        source.prompt = self.image_prompt
        return source

    def _already_done(self) -> set[str]:
        wanted = self.options.properties(worker_session.model_label(None, self.options.settings.family, self.task))
        done = set()
        for obj in self.collection.all_objects:
            stored = obj.get(mesh_builder.PROPERTY_SETTINGS)
            if stored is not None and stored.to_dict() == wanted and (
                    self.task == "text" or obj.get(PROPERTY_PROMPT) == self.image_prompt):
                done.add(obj.get(mesh_builder.PROPERTY_SOURCE, ""))
        return done

    @property
    def position(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def progress_label(self) -> str:
        current = f" - {self.current.describe()}" if self.current else ""
        return f"{min(self.position + 1, self.total)} of {self.total}{current}"

    def cancel(self) -> None:
        """Stop after the current item; what is done stays."""
        self.stopped = True

    def interrupt(self) -> None:
        """Stop now: the current item is cancelled and counts as not run."""
        self.stopped = True
        if self.current is not None:
            self.current.cancel()
            self.queue.insert(0, self.current_item)
            self.current = None

    def step(self, context) -> bool:
        """Advance the batch a little; True when it is over."""
        if self.current is None:
            if self.stopped or not self.queue:
                return True
            self.current_item = self.queue.pop(0)
            try:
                self.current = GenerateRun(self._input(self.current_item), self.options).start()
            except (BackendError, OSError, ValueError) as error:
                self.failed.append((self.current_item, getattr(error, "message", str(error))))
                return False
        if not self.current.poll():
            return False
        job, item, self.current = self.current, self.current_item, None
        if job.error is not None:
            self.failed.append((item, job.error.message))
            return False
        index = self.files.index(item)
        x, y, z = self.origin
        location = (x + GRID_SPACING * (index % self.columns), y - GRID_SPACING * (index // self.columns), z)
        obj = finish(context, job, location=location, collection=self.collection)
        self.succeeded.append((item, obj.name))
        if self.export_dir:
            from .exporters import export_object

            try:
                export_object(context, obj, self.export_dir, self.export_format, self.exported_names)
            except (RuntimeError, OSError) as error:
                self.failed.append((item, f"export failed: {error}"))
        return False

    def summary(self) -> str:
        parts = [f"{len(self.succeeded)} of {self.total} converted"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} already done")
        if self.failed:
            parts.append(f"{len(self.failed)} failed: " + "; ".join(
                f"{self._label(item)} ({message})" for item, message in self.failed))
        if self.stopped and self.queue:
            parts.append(f"cancelled with {len(self.queue)} left")
        return ", ".join(parts)

    def _label(self, item: str) -> str:
        if self.task == "text":
            return item if item in self._bad_lines else repr(item)
        return os.path.basename(item)

    def write_log(self) -> str:
        """A plain-text log beside the exports (or in the add-on's log folder)."""
        folder = self.export_dir or worker_session.log_dir() or bpy.app.tempdir
        os.makedirs(folder, exist_ok=True)
        # a new file: never over another batch's log of the same second, or a file of the user's
        with atomic_files.create_exclusive(folder, time.strftime("image_to_3d_batch_%Y%m%d_%H%M%S"), ".log") as log:
            self.log_path = log.name
            kind = "prompts" if self.task == "text" else "folder"
            model = worker_session.model_label(None, self.options.settings.family, self.task)
            log.write(f"{kind}: {self.directory}\nsettings: {self.options.properties(model)}\n")
            for path, name in self.succeeded:
                log.write(f"ok      {path} -> {name}\n")
            for path in self.skipped:
                log.write(f"skipped {path} (already converted with these settings)\n")
            for path, message in self.failed:
                log.write(f"FAILED  {path}: {message}\n")
            for path in self.queue:
                log.write(f"not run {path} (cancelled)\n")
            log.write(f"summary: {self.summary()}\n")
        return self.log_path
