"""Shap-E's engine (the torch half of its family, declaration.py): load a folder, then
prompt or image -> latent by diffusion -> surface in Blender's frame, with its colour
field for the mesh stage.

Diffusion runs in diffusers' own pipeline (output_type="latent"), so conditioning,
classifier-free guidance and the Heun scheduler are diffusers' code; decode.py turns
the latent into the mesh. ShapEPipeline.__call__ in diffusers 0.42 takes no step
callback (no callback_on_step_end), so progress and cancel hook the one per-step hook
it has: its loop is `for t in self.progress_bar(timesteps)`, and this job swaps that
method, for the call's duration, for a generator that checks should_cancel() before
each prior evaluation and reports progress after it.
"""

import contextlib
from typing import Callable

import numpy as np
import torch

from ..bridge.errors import Cancelled, InputImageError, WrongModelError
from ..families.engine_api import JobInput, StageClock, Surface
from .declaration import SLOT_WORDS
from .decode import color_field, decode_surface, default_chunk, vertex_colors
from .folders import HUB_REPOS, TASK_WORDS
from .frames import shap_e_to_blender, srgb_to_bytes
from .inputs import check_prompt, prepare_image
from .loader import LoadedShapE, load_shap_e

NO_PICTURE = np.zeros((0, 0, 3), dtype=np.uint8)  # a text job's "model input"
PREVIEW_SIDE = 512  # the picture sent back as the image job's model input, at most this large


@contextlib.contextmanager
def observe_steps(pipeline, on_step: Callable[[int, int], None], should_cancel: Callable[[], bool] | None):
    """While active, the pipeline's denoising loop calls on_step(done, total) after each
    prior evaluation and raises Cancelled between evaluations when should_cancel()."""

    def stepping(iterable=None, total=None):
        steps = list(iterable)
        on_step(0, len(steps))
        for done, timestep in enumerate(steps, start=1):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            yield timestep
            on_step(done, len(steps))

    pipeline.progress_bar = stepping  # an instance attribute hides the method
    try:
        yield
    finally:
        del pipeline.progress_bar


def load(folders: dict, task: str, device: torch.device, precision: str = "float32") -> LoadedShapE:
    return load_shap_e(folders[SLOT_WORDS[task][0]], task, device, precision)


def run(loaded: LoadedShapE, job: JobInput, settings, clock: StageClock, chunk_size: int | None = None,
        **extras) -> Surface:
    """One job: a prompt (the text model) or an image (the image model). Stages, each
    reported from 0 to 1: prepare, encode, diffusion (per prior evaluation: about 2 x
    steps with Heun), field (per chunk), surface."""
    pipe, device = loaded.pipeline, torch.device(loaded.device)
    task = job.task
    if task != loaded.task:
        raise WrongModelError(
            f"the loaded model is Shap-E {TASK_WORDS[loaded.task]} ({HUB_REPOS[loaded.task]}), but this "
            f"job is {TASK_WORDS[task]}: it needs {HUB_REPOS[task]}"
        )

    clock.start("prepare")
    notes, prepared = [], NO_PICTURE
    if task == "text":
        if job.image is not None:
            raise InputImageError("a text job takes a prompt, not an image")
        condition, notes = check_prompt(pipe.tokenizer, job.prompt)
    else:
        condition = prepare_image(job.image)
        shown = condition.copy()
        shown.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))  # for the user's eyes only: CLIP resizes anyway
        prepared = np.asarray(shown)
    clock.done("prepare")

    def on_step(count, total):
        if count == 0:  # the pipeline has encoded the condition and starts denoising
            clock.done("encode")
            clock.start("diffusion")
        elif count < total:  # the last one is reported by done("diffusion")
            clock.report("diffusion", count / total)

    clock.start("encode")
    # A CPU generator: the same starting noise on every device (diffusers draws it on
    # the CPU and moves it), so a seed names one shape wherever it runs.
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    guidance = settings.text_guidance if task == "text" else settings.image_guidance
    with observe_steps(pipe, on_step, clock.should_cancel):
        latents = pipe(condition, num_inference_steps=settings.steps, guidance_scale=guidance,
                       generator=generator, output_type="latent").images
    clock.done("diffusion")

    def on_decode(name, fraction):  # decode_surface opens each stage at 0 and closes it at 1
        if fraction == 0.0:
            clock.start(name)
        elif fraction >= 1.0:
            clock.done(name)
        else:
            clock.report(name, fraction)

    renderer, chunk = pipe.shap_e_renderer, chunk_size or default_chunk(device)
    params, vertices, faces = decode_surface(renderer, latents[0], settings.shap_e_resolution, chunk,
                                             clock.should_cancel, on_decode)
    vertices, faces = shap_e_to_blender(vertices.cpu().numpy()), faces.cpu().numpy().astype(np.int32)

    def raw_colors():
        colors = vertex_colors(renderer, params, torch.from_numpy(vertices).to(device), chunk, clock.should_cancel)
        return srgb_to_bytes(colors.cpu().numpy())

    return Surface(vertices, faces, color_field(renderer, params), raw_colors, prepared, notes)
