"""The Shap-E job: prompt or image -> coloured mesh in Blender's frame.

Diffusion runs in diffusers' own pipeline (output_type="latent"), so conditioning,
classifier-free guidance and the Heun scheduler are diffusers' code; decode.py turns
the latent into the mesh. ShapEPipeline.__call__ in diffusers 0.42 takes no step
callback (no callback_on_step_end), so progress and cancel hook the one per-step hook
it has: its loop is `for t in self.progress_bar(timesteps)`, and this job swaps that
method, for the call's duration, for a generator that checks should_cancel() before
each prior evaluation and reports progress after it.
"""

import contextlib
import time
from typing import Callable

import numpy as np
import torch

from ..bridge.errors import Cancelled, InputImageError, WrongModelError
from ..bridge.settings import GenerateSettings, asset_stage_runs
from ..mesh.asset.stage import make_asset
from .decode import color_field, decode_surface, default_chunk, vertex_colors
from .folders import HUB_REPOS, TASK_WORDS
from .frames import shap_e_to_blender, srgb_to_bytes
from .inputs import check_prompt, prepare_image
from .loader import LoadedShapE

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


def generate_mesh(
    loaded: LoadedShapE,
    settings: GenerateSettings,
    image=None,
    prompt: str | None = None,
    progress: Callable[[str, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    chunk_size: int | None = None,
):
    """Run one job: a prompt (the text model) or an image (the image model). Stages, each
    reported from 0 to 1: prepare, encode, diffusion (per prior evaluation: about 2 x
    steps with Heun), field (per chunk), surface, then colors or, when the settings ask
    for it, the mesh stage's (bridge/settings.py job_stages). Returns pipeline.MeshResult."""
    from ..pipeline import MeshResult

    pipe, device = loaded.pipeline, torch.device(loaded.device)
    task = "text" if prompt is not None else "image"
    report = progress or (lambda stage, fraction: None)
    timings, started = {}, {}

    def stage(name):
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started[name] = time.perf_counter()
        report(name, 0.0)

    def done(name):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings[name] = time.perf_counter() - started[name]
        report(name, 1.0)

    if task != loaded.task:
        raise WrongModelError(
            f"the loaded model is Shap-E {TASK_WORDS[loaded.task]} ({HUB_REPOS[loaded.task]}), but this "
            f"job is {TASK_WORDS[task]}: it needs {HUB_REPOS[task]}"
        )

    stage("prepare")
    notes, prepared = [], NO_PICTURE
    if task == "text":
        if image is not None:
            raise InputImageError("a text job takes a prompt, not an image")
        condition, notes = check_prompt(pipe.tokenizer, prompt)
    else:
        condition = prepare_image(image)
        shown = condition.copy()
        shown.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))  # for the user's eyes only: CLIP resizes anyway
        prepared = np.asarray(shown)
    done("prepare")

    def on_step(count, total):
        if count == 0:  # the pipeline has encoded the condition and starts denoising
            done("encode")
            stage("diffusion")
        elif count < total:  # the last one is reported by done("diffusion")
            report("diffusion", count / total)

    stage("encode")
    # A CPU generator: the same starting noise on every device (diffusers draws it on
    # the CPU and moves it), so a seed names one shape wherever it runs.
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    guidance = settings.text_guidance if task == "text" else settings.image_guidance
    with observe_steps(pipe, on_step, should_cancel):
        latents = pipe(condition, num_inference_steps=settings.steps, guidance_scale=guidance,
                       generator=generator, output_type="latent").images
    done("diffusion")

    def on_decode(name, fraction):  # decode_surface opens each stage at 0 and closes it at 1
        if fraction == 0.0:
            stage(name)
        elif fraction >= 1.0:
            done(name)
        else:
            report(name, fraction)

    renderer, chunk = pipe.shap_e_renderer, chunk_size or default_chunk(device)
    params, vertices, faces = decode_surface(renderer, latents[0], settings.shap_e_resolution, chunk, should_cancel,
                                             on_decode)
    vertices, faces = shap_e_to_blender(vertices.cpu().numpy()), faces.cpu().numpy().astype(np.int32)
    if asset_stage_runs(settings):
        asset = make_asset(vertices, faces, settings, color_field(renderer, params), device, progress=report,
                           should_cancel=should_cancel)
        timings.update(asset.timings)
        return MeshResult(asset.vertices, asset.faces, asset.colors, prepared, timings, notes,
                          asset.corner_uvs, asset.base_color, asset.normal_map)
    stage("colors")
    colors = vertex_colors(renderer, params, torch.from_numpy(vertices).to(device), chunk, should_cancel)
    done("colors")
    return MeshResult(vertices, faces, srgb_to_bytes(colors.cpu().numpy()), prepared, timings, notes)
