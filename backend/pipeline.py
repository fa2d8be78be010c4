"""The one job function every entry point uses: image or prompt -> coloured mesh in
Blender's frame, for every model family of the registry (backend/families/).

A family's engine runs its own stages up to the surface (families/engine_api.py); what
follows is the same for all: the mesh stage when the settings ask for it, else the raw
surface's colours. Engines are imported when a job needs them (diffusers, say, is slow
to import).
"""

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .bridge.errors import DeviceError, OutOfMemoryError, WrongModelError
from .bridge.options import PRECISIONS, check_family_takes
from .bridge.settings import GenerateSettings, asset_stage_runs, job_resolution
from .devices import default_chunk, resolve_device
from .families.engine_api import DetailFn, JobInput, PreviewFn, StageClock
from .families.registry import EXTRA_JOBS_BY_NAME, FAMILIES, FAMILIES_BY_NAME, declared
from .mesh.asset.stage import make_asset
from .mesh.result import MeshResult
from .model_folder import resolve_model_folders

__all__ = ["MeshResult", "generate_mesh", "generate_mesh_within_memory", "load_model", "free_gpu_memory"]


def load_model(model: str | Path | dict, device: str = "auto", precision: str = "float32", family: str | None = None,
               task: str = "image"):
    """The model for jobs of `family` (the first registered family by default; or an
    extra job's, such as the views job's) starting from `task`'s input: its engine's loaded model. `model`: a folder or hub id, a folder holding one
    model folder per slot, or a dict slot id -> folder (model_folder.resolve_model_folders).
    A folder of another family or task raises WrongModelError before anything loads."""
    started = time.perf_counter()
    family = family or FAMILIES[0].identifier
    extra_job = EXTRA_JOBS_BY_NAME.get(family)  # the views job: its engine, its own precisions
    if precision not in PRECISIONS and extra_job is None:
        raise DeviceError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if extra_job is None:
        check_family_takes(family, task)
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        # cuDNN convolutions default to TF32, which moves TripoSR's scene codes by ~5e-4:
        # keep full float32 so results match the references on every device.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    folders = resolve_model_folders(model, family, task)
    loaded = declared(family).engine().load(folders, task, torch_device, precision)
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def generate_mesh(
    loaded,
    image,
    settings: GenerateSettings,
    progress: Callable[[str, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    chunk_size: int | None = None,
    reference_mode: bool = False,
    encode: Callable[[np.ndarray], torch.Tensor] | None = None,
    prompt: str | None = None,
    detail: DetailFn | None = None,
    preview: PreviewFn | None = None,
) -> MeshResult:
    """Run the whole job: `image`, or `prompt` for a text job (or with the image, for a
    family whose image jobs take one), with the loaded model of settings.family.
    `reference_mode` and `encode` go to the engine (TripoSR's reference density grid for
    benchmarks; the server's batched encoder). detail(stage, fraction, text) hears the
    progress an engine puts in words (instead of progress), preview(image, stage,
    iteration) the images a long job shows of its object (families/engine_api.py)."""
    family = FAMILIES_BY_NAME[settings.family]
    if settings.family != loaded.family:
        raise WrongModelError(f"the loaded model is {FAMILIES_BY_NAME[loaded.family].label}, but this job asks "
                              f"for {family.label}")
    job = JobInput(image, prompt)
    check_family_takes(settings.family, job.task)
    device = torch.device(loaded.device)
    clock = StageClock(progress, should_cancel, device, detail, preview)
    surface = family.engine().run(loaded, job, settings, clock, chunk_size, reference_mode=reference_mode,
                                  encode=encode)
    if surface.finished is not None:  # the family ran the mesh stage itself (Family.finishing_stages)
        done = surface.finished
        clock.timings.update(done.timings)
        return MeshResult(done.vertices, done.faces, done.colors, surface.prepared_image, clock.timings,
                          surface.notes, done.corner_uvs, done.base_color, done.normal_map)
    if asset_stage_runs(settings):
        asset = make_asset(surface.vertices, surface.faces, settings, surface.color_at, device,
                           progress=clock.report, should_cancel=should_cancel)
        clock.timings.update(asset.timings)
        return MeshResult(asset.vertices, asset.faces, asset.colors, surface.prepared_image, clock.timings,
                          surface.notes, asset.corner_uvs, asset.base_color, asset.normal_map)
    clock.start("colors")
    colors = surface.vertex_colors()
    clock.done("colors")
    return MeshResult(surface.vertices, surface.faces, colors, surface.prepared_image, clock.timings, surface.notes)


MIN_RETRY_CHUNK = 1024


def generate_mesh_within_memory(
    loaded,
    image,
    settings: GenerateSettings,
    progress: Callable[[str, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    warn: Callable[[str], None] | None = None,
    remedy: str = " or choose the CPU device",
    encode: Callable[[np.ndarray], torch.Tensor] | None = None,
    prompt: str | None = None,
    detail: DetailFn | None = None,
    preview: PreviewFn | None = None,
) -> MeshResult:
    """generate_mesh, once more with 1/8 of the chunk size if CUDA runs out of memory.

    The worker and the server's replicas both run jobs through this, so a GPU that runs
    out behaves the same everywhere. `warn` hears about the retry; `remedy` ends the final
    message (a server's client cannot choose the CPU).
    """

    def attempt(chunk_size):
        return generate_mesh(loaded, image, settings, progress, should_cancel, chunk_size, encode=encode, prompt=prompt,
                             detail=detail, preview=preview)

    try:
        return attempt(None)
    except Exception as exc:
        if not _is_cuda_oom(exc):
            raise
    # out of the except block, so the failed attempt's tensors can be freed
    free_gpu_memory()
    smaller = max(MIN_RETRY_CHUNK, default_chunk(torch.device(loaded.device)) // 8)
    if warn is not None:
        warn(f"the GPU ran out of memory; retrying with smaller chunks ({smaller} points)")
    try:
        return attempt(smaller)
    except Exception as exc:
        if not _is_cuda_oom(exc):
            raise
    free_gpu_memory()
    resolution = job_resolution(settings)
    if resolution is None:
        raise OutOfMemoryError(f"the GPU ran out of memory, even with smaller chunks: close what else uses it{remedy}")
    raise OutOfMemoryError(
        f"the GPU ran out of memory at resolution {resolution}, even with smaller chunks: "
        f"lower the resolution setting (e.g. to {max(32, resolution // 2)}){remedy}"
    )


def _is_cuda_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or (
        isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
    )


def free_gpu_memory():
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
