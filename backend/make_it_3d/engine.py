"""Make-It-3D's engine (the torch half of its family, declaration.py): load TripoSR and the
three guidance models, then picture + prompt -> TripoSR's start -> coarse field -> the
mesh stage on the user's settings -> refined texture, handed back finished
(Surface.finished: the job function does not run the mesh stage again).

The job itself is job.refine_with_details; this module turns the family's options into
RefineOptions, its progress into the clock's (with the loss in words), and its previews
into small images.
"""

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..families.engine_api import JobInput, StageClock, Surface
from ..mesh.asset.stage import AssetResult
from ..triposr import engine as triposr_engine
from ..triposr.declaration import MODEL as TRIPOSR_MODEL
from .declaration import MAKE_IT_3D
from .folders import SLOTS
from .job import check_prompt, encode_framed, refine_with_details
from .loader import MakeIt3DModels, load_models
from .options import RefineOptions

PREVIEW_SIDE = 256  # previews are sent at most this large (the texture stage renders 512)
# the mesh stage's settings when the user's ask for no texture: the refine stage needs one
FORCED_TEXTURE, FORCED_FACES = 1024, 20_000
# the shares of the coarse iterations spent near the reference view and widening (options.py: 100 and 200 of 400)
FRONT_SHARE, WIDEN_SHARE = 0.25, 0.5
# from an empty field, the paper's proportions (RefineOptions.paper: 2000 front, 400 without diffusion, of 7000)
EMPTY_FRONT_SHARE, EMPTY_QUIET_SHARE = 2000 / 7000, 400 / 7000


@dataclass
class LoadedMakeIt3D:
    family: ClassVar[str] = MAKE_IT_3D
    task: ClassVar[str] = "image"
    models: MakeIt3DModels
    triposr: triposr_engine.LoadedModel
    device: str
    model_dir: Path
    load_seconds: float
    precision: str

    @property
    def weights_bytes(self) -> int:
        return self.models.weights_bytes + self.triposr.weights_bytes


def load(folders: dict, task: str, device: torch.device, precision: str = "float32") -> LoadedMakeIt3D:
    """TripoSR (its encoder in `precision`), and Stable Diffusion, CLIP and DPT with the
    guidance in `precision` (float32 or bfloat16; DPT and the fields stay float32)."""
    started = time.perf_counter()
    tripo = triposr_engine.load({TRIPOSR_MODEL.identifier: folders[TRIPOSR_MODEL.identifier]}, task, device, precision)
    models = load_models({slot: folders[slot] for slot in SLOTS}, device.type, precision)
    # what the user named (e.g. the folder holding the four), for the logs and ModelLoaded
    shared = Path(os.path.commonpath([str(Path(folder).absolute()) for folder in folders.values()]))
    return LoadedMakeIt3D(models, tripo, device.type, shared, time.perf_counter() - started, precision)


def native_size(models: MakeIt3DModels) -> int:
    """Stable Diffusion's own picture size (512 for SD 2 base; 32 for the tiny test model)."""
    return int(models.unet.config.sample_size) * models.latent_scale


def refine_options(settings, models: MakeIt3DModels) -> RefineOptions:
    """The job's RefineOptions from the family's options; the sizes the guidance sees follow
    the Stable Diffusion model's own (docs/make_it_3d.md)."""
    coarse = settings.m3d_coarse_iterations
    empty = settings.m3d_start == "EMPTY"
    schedule = (dict(front_iterations=round(coarse * EMPTY_FRONT_SHARE), widen_iterations=0,
                     diffusion_start=round(coarse * EMPTY_QUIET_SHARE)) if empty else
                dict(front_iterations=round(coarse * FRONT_SHARE), widen_iterations=round(coarse * WIDEN_SHARE)))
    size = native_size(models)
    return RefineOptions(
        seed=settings.m3d_seed, remove_background=settings.m3d_remove_background, coarse_iterations=coarse,
        refine_iterations=settings.m3d_refine_iterations, guidance_scale=settings.m3d_guidance,
        render_size=settings.m3d_render_size, sd_size=size, refine_render_size=size,
        surface_resolution=settings.m3d_resolution, preview_every=settings.m3d_preview_every,
        cpu_limit_minutes=settings.m3d_cpu_minutes, **schedule,
    )


def mesh_settings(settings, notes: list):
    """The user's mesh-stage settings, with a texture where they ask for none (the refine
    stage refines one), said in a note."""
    if settings.texture_size:
        return settings
    faces = settings.max_faces or FORCED_FACES
    notes.append(f"Make-It-3D refines a texture: made a {FORCED_TEXTURE} px texture on at most {faces:,} faces "
                 "(the settings asked for vertex colours only)")
    return dataclasses.replace(settings, texture_size=FORCED_TEXTURE, max_faces=faces)


def small(image: np.ndarray) -> np.ndarray:
    """The preview at most PREVIEW_SIDE pixels on a side (block means: no library needed)."""
    factor = math.ceil(max(image.shape[:2]) / PREVIEW_SIDE)
    if factor <= 1:
        return np.ascontiguousarray(image)
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:height, :width].reshape(height // factor, factor, width // factor, factor, 3)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def run(loaded: LoadedMakeIt3D, job: JobInput, settings, clock: StageClock, chunk_size: int | None = None,
        **extras) -> Surface:
    """prepare, encode (TripoSR; not with an empty start), depth, coarse (per iteration),
    surface, the mesh stage's own stages, texture (per iteration); finished here."""
    prompt = check_prompt(job.prompt)  # PromptError: Make-It-3D needs a prompt
    models = loaded.models
    options = refine_options(settings, models)
    notes = []
    meshing = mesh_settings(settings, notes)
    totals = {"coarse": options.coarse_iterations, "texture": options.refine_iterations}

    def progress(stage, fraction, loss):
        if loss is None:
            clock.report(stage, fraction)
            return
        total = totals.get(stage, 1)
        clock.tell(stage, fraction, f"{stage} {round(fraction * total)}/{total}, loss {loss:.4g}")

    def preview(image, stage, iteration):
        clock.show(small(image), stage, iteration + 1)  # iterations done

    start = None  # an empty field, as the paper
    if settings.m3d_start == "TRIPOSR":
        def start(framed):
            return encode_framed(loaded.triposr, framed)

    result, _ = refine_with_details(models, job.image, prompt, start, options, progress, clock.should_cancel, preview,
                                    loaded.triposr.remover, meshing)
    finished = AssetResult(result.vertices, result.faces, result.colors, result.uvs, result.base_color,
                           result.normal_map, dict(result.timings))
    colors = result.colors
    return Surface(result.vertices, result.faces, None, lambda: colors, result.prepared_image,
                   notes + list(result.notes), finished=finished)
