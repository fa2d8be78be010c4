"""The one job function every entry point uses: image or prompt -> coloured mesh in
Blender's frame, for every model family (settings.family): TripoSR here, Shap-E in
backend/shap_e/ (imported only when a job asks for it: diffusers is slow to import)."""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from .bridge.errors import Cancelled, DeviceError, OutOfMemoryError, WrongModelError
from .bridge.options import FAMILIES_BY_NAME, SHAP_E, TRIPOSR, check_family_takes
from .bridge.settings import GenerateSettings, asset_stage_runs, job_resolution
from .devices import default_chunk, resolve_device
from .mesh.asset.stage import make_asset
from .mesh.coordinates import blender_to_model, model_to_blender
from .mesh.surface import dense_density_grid, extract_mesh, query_colors, sparse_density_grid
from .model_folder import resolve_model_dir
from .prepare.background import BackgroundRemover
from .prepare.framing import prepare_image
from .triposr.checkpoint import load_tripo
from .triposr.fast_encoder import EncoderKernels, apply_encoder_kernels
from .triposr.model import TripoSR

# float32 reproduces the reference; bfloat16 runs the encoder in half the memory and
# faster, at a measured cost in accuracy (README, "Precision").
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
ENCODER_KERNELS_ENV = "IMAGE_TO_3D_ENCODER_KERNELS"


@dataclass
class LoadedModel:
    family: ClassVar[str] = TRIPOSR
    task: ClassVar[str] = "image"
    model: TripoSR
    device: str
    model_dir: Path
    load_seconds: float
    precision: str = "float32"
    remover: BackgroundRemover = field(default_factory=BackgroundRemover)

    @property
    def weights_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


@dataclass
class MeshResult:
    vertices: np.ndarray  # (N, 3) float32, Blender frame
    faces: np.ndarray  # (M, 3) int32, outward winding
    colors: np.ndarray  # (N, 4) uint8 RGBA
    prepared_image: np.ndarray  # (H, W, 3) uint8, what the model saw
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # warnings for the user (e.g. a tiny object)
    # with a texture (settings.texture_size > 0), from the mesh stage (backend/mesh/asset/):
    uvs: np.ndarray | None = None  # (M, 3, 2) float32, per face corner, v up (Blender's)
    base_color: np.ndarray | None = None  # (T, T, 3) uint8 sRGB, top row first
    normal_map: np.ndarray | None = None  # (T, T, 3) uint8 tangent space, top row first; None when off


def load_model(model: str | Path, device: str = "auto", precision: str = "float32", family: str = TRIPOSR,
               task: str = "image", encoder_kernels: str | None = None):
    """The model for jobs of `family` starting from `task`'s input: a LoadedModel for
    TripoSR, a shap_e.loader.LoadedShapE for Shap-E (the text or the image model).
    A folder of another family or task raises WrongModelError before anything loads.

    encoder_kernels (TripoSR on CUDA, float32): faster kernels for the same float32
    results, e.g. "linear=bf16x6,attention=flash,graph" (triposr/fast_encoder.py);
    None takes $IMAGE_TO_3D_ENCODER_KERNELS where the model runs in float32 on CUDA (so
    a worker or a server's replicas get them without a new option), else torch's own."""
    started = time.perf_counter()
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    check_family_takes(family, task)
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        # cuDNN convolutions default to TF32, which moves the scene codes by ~5e-4:
        # keep full float32 so results match the reference on every device.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if family == SHAP_E:
        from .shap_e.loader import load_shap_e

        return load_shap_e(model, task, torch_device, precision)
    model_dir = resolve_model_dir(model)
    tripo = load_tripo(model_dir).set_encoder_precision(PRECISIONS[precision]).to(torch_device)
    if encoder_kernels is None and torch_device.type == "cuda" and precision == "float32":
        encoder_kernels = os.environ.get(ENCODER_KERNELS_ENV)
    if encoder_kernels:
        try:
            apply_encoder_kernels(tripo, EncoderKernels.parse(encoder_kernels), torch_device)
        except ValueError as exc:
            raise DeviceError(f"encoder_kernels {encoder_kernels!r}: {exc}") from None
    _synchronize(torch_device)
    return LoadedModel(tripo, torch_device.type, model_dir, time.perf_counter() - started, precision)


def encode_images(loaded: LoadedModel, prepared: list) -> list:
    """Scene codes of prepared images (uint8 (H, W, 3) each), in one forward pass.

    Each image is resized on its own, as when it is encoded alone, so sizes may differ;
    the batch then shares the network. On the CPU the codes are bit for bit those of a
    batch of one (tests/test_server_batching.py); on a GPU the kernels may differ by
    batch size (bench/serve_bench.py checks the meshes).
    """
    device = torch.device(loaded.device)
    tokenizer = loaded.model.image_tokenizer
    resized = [tokenizer.resize(torch.from_numpy(image).to(device).float().div(255.0).unsqueeze(0)) for image in prepared]
    return list(loaded.model.encode_resized(torch.cat(resized)))


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def generate_mesh(
    loaded: LoadedModel,
    image,
    settings: GenerateSettings,
    progress: Callable[[str, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    chunk_size: int | None = None,
    reference_mode: bool = False,
    encode: Callable[[np.ndarray], torch.Tensor] | None = None,
    prompt: str | None = None,
) -> MeshResult:
    """Run the whole job: `image`, or `prompt` for a text job, with the loaded model of
    settings.family. `reference_mode` uses TripoSR's reference algorithm (benchmarks, tests).

    `encode(prepared) -> scene codes` replaces TripoSR's encoder call: the server passes
    one that gathers the prepared images of concurrent jobs into one encode_images batch.
    """
    if settings.family != loaded.family:
        raise WrongModelError(f"the loaded model is {FAMILIES_BY_NAME[loaded.family].label}, but this job asks "
                              f"for {FAMILIES_BY_NAME[settings.family].label}")
    if settings.family == SHAP_E:
        from .shap_e.job import generate_mesh as generate_shap_e

        return generate_shap_e(loaded, settings, image, prompt, progress, should_cancel, chunk_size)
    if prompt is not None:
        check_family_takes(TRIPOSR, "text")  # raises: TripoSR takes images
    model, device = loaded.model, torch.device(loaded.device)
    chunk = chunk_size or default_chunk(device)
    timings = {}
    report = progress or (lambda stage, fraction: None)

    def stage(name):
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        _synchronize(device)
        timings[name] = time.perf_counter()
        report(name, 0.0)

    def done(name):
        _synchronize(device)
        timings[name] = time.perf_counter() - timings[name]
        report(name, 1.0)

    notes = []
    stage("prepare")
    prepared = prepare_image(image, settings.foreground_ratio, settings.remove_background, loaded.remover, notes)
    done("prepare")

    stage("encode")
    codes = encode(prepared) if encode is not None else encode_images(loaded, [prepared])[0]
    done("encode")

    stage("field")
    def on_field(fraction):
        report("field", fraction)

    if reference_mode:
        volume = dense_density_grid(model.field, codes, settings.resolution, should_cancel=should_cancel, progress=on_field)
        volume = volume.cpu()  # the reference extracts the surface on the CPU (PyMCubes)
    else:
        volume = sparse_density_grid(
            model.field, codes, settings.resolution, settings.threshold, chunk,
            should_cancel=should_cancel, progress=on_field,
        )
    done("field")

    stage("surface")
    vertices, faces = extract_mesh(volume, settings.threshold, model.cfg.radius)
    del volume
    done("surface")

    if asset_stage_runs(settings):
        asset = make_asset(model_to_blender(vertices), faces, settings, color_field(model.field, codes), device,
                           progress=report, should_cancel=should_cancel)
        timings.update(asset.timings)
        return MeshResult(asset.vertices, asset.faces, asset.colors, prepared, timings, notes,
                          asset.corner_uvs, asset.base_color, asset.normal_map)

    stage("colors")
    colors = query_colors(model.field, codes, vertices, chunk)
    done("colors")

    return MeshResult(model_to_blender(vertices), faces, colors, prepared, timings, notes)


MIN_RETRY_CHUNK = 1024


def generate_mesh_within_memory(
    loaded: LoadedModel,
    image,
    settings: GenerateSettings,
    progress: Callable[[str, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    warn: Callable[[str], None] | None = None,
    remedy: str = " or choose the CPU device",
    encode: Callable[[np.ndarray], torch.Tensor] | None = None,
    prompt: str | None = None,
) -> MeshResult:
    """generate_mesh, once more with 1/8 of the chunk size if CUDA runs out of memory.

    The worker and the server's replicas both run jobs through this, so a GPU that runs
    out behaves the same everywhere. `warn` hears about the retry; `remedy` ends the final
    message (a server's client cannot choose the CPU).
    """

    def attempt(chunk_size):
        return generate_mesh(loaded, image, settings, progress, should_cancel, chunk_size, encode=encode, prompt=prompt)

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


def color_field(field, codes):
    """color_at(points (K, 3), Blender's frame) -> rgb (K, 3) in [0, 1]: what the mesh stage asks."""

    @torch.no_grad()
    def color_at(points: torch.Tensor) -> torch.Tensor:
        return field.density_and_color(codes, blender_to_model(points.to(codes.device, torch.float32)))[1]

    return color_at
