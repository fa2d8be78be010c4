"""The Make-It-3D job: picture + prompt (+ TripoSR's result) -> textured mesh.

    refine(models, picture, prompt, start, options, progress, should_cancel, preview)
        -> MeshResult (backend/mesh/result.py: vertices, faces, colors, uvs, base_color, normal_map)

Stages, each reported through progress(stage, fraction, loss): prepare, depth,
coarse (per iteration, with its loss), surface, the mesh stage's own (cleanup,
decimate, colors, unwrap, bake; loss None), texture (per iteration). Cancel is
checked before every iteration and between stages (backend.bridge.errors.Cancelled);
preview(image uint8 (H, W, 3), stage, iteration) receives the current render every
options.preview_every iterations. One seed decides every random draw: the same inputs
and seed repeat the result on the same device.

Off a CUDA GPU options.measure_iterations coarse iterations after the first (which warms
up) are timed, and a run that would take longer than options.cpu_limit_minutes is
refused, three iterations in, with DeviceError
("Make-It-3D needs a GPU: about N minutes on this CPU ..., or run it here anyway with
--cpu-minutes 0").

`start` may also be a function of the framed picture that returns the TripoStart (the
family's engine passes TripoSR's encoder so): it runs as the stage "encode", after
"prepare". `mesh_settings` (a GenerateSettings) are the mesh stage's options when the
caller has its own (the family's engine: the user's); else the options' own.
"""

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..bridge.errors import Cancelled, DeviceError, PromptError
from ..bridge.prompts import clean_prompt
from ..bridge.settings import GenerateSettings
from ..mesh.asset.stage import make_asset
from ..mesh.coordinates import blender_to_model, model_to_blender
from ..mesh.result import MeshResult
from ..mesh.surface import dense_density_grid, extract_mesh
from .cameras import reference_camera
from .coarse import Reference, optimise_field, shrink
from .declaration import CPU_LIMIT
from .field import TripoStart, empty_field, from_triposr
from .guidance import StableDiffusionGuidance
from .monitor import IterationMonitor, PreviewFn, ProgressFn
from .options import RefineOptions
from .perception import picture_depth
from .picture import framed_picture, on_background, picture_tensors, triposr_input
from .texture import refine_texture

SURFACE_CHUNK = 1 << 16


@dataclass
class RefineDetails:
    """What the benchmark and tests look at besides the mesh."""

    coarse_history: list = field(default_factory=list)
    texture_history: list = field(default_factory=list)
    texture_stats: dict = field(default_factory=dict)
    estimate_minutes: float | None = None


def check_prompt(prompt) -> str:
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise PromptError("Make-It-3D needs a prompt: a few words saying what the picture shows, "
                          "e.g. \"a red wooden chair\" (Stable Diffusion judges the unseen sides by it)")
    return clean_prompt(prompt)


def encode_start(loaded_triposr, picture, options: RefineOptions | None = None, remover=None) -> TripoStart:
    """TripoSR's scene codes for the picture, framed as the refine job frames it (TripoSR's
    loaded model, backend.pipeline.load_model(..., family="TRIPOSR"), in; not changed)."""
    options = options or RefineOptions()
    return encode_framed(loaded_triposr, framed_picture(picture, options.foreground_ratio, options.remove_background,
                                                        remover))


class _Clock:
    def __init__(self, device, progress, should_cancel):
        self.device, self.progress, self.should_cancel = device, progress, should_cancel
        self.timings, self._started = {}, {}

    def start(self, name):
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()
        self._started[name] = time.perf_counter()
        self.progress(name, 0.0, None)

    def done(self, name):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[name] = time.perf_counter() - self._started[name]
        self.progress(name, 1.0, None)


def _budget(options: RefineOptions, device, details: RefineDetails):
    """on_timing for the coarse stage: off CUDA, refuse a run that would take too long."""
    measured = []

    def on_timing(iteration, seconds):
        # the first iteration (warming up) is not counted; the median of the next few is
        if device.type == "cuda" or iteration == 0 or len(measured) >= options.measure_iterations:
            return
        measured.append(seconds)
        if len(measured) < options.measure_iterations:
            return
        per_iteration = statistics.median(measured)
        iterations = options.coarse_iterations + options.refine_iterations
        minutes = per_iteration * iterations / 60.0
        details.estimate_minutes = minutes
        if options.cpu_limit_minutes and minutes > options.cpu_limit_minutes:
            where = "this CPU" if device.type == "cpu" else f"this {device.type.upper()} device"
            rounded = max(1, round(minutes))
            raise DeviceError(
                f"Make-It-3D needs a GPU: about {rounded} minute{'' if rounded == 1 else 's'} on {where} "
                f"({per_iteration:.1f} s per iteration, {iterations} iterations). Run it on a CUDA GPU "
                "(the model server can lend one), or lower the iterations; to run it here anyway, set the "
                f"{CPU_LIMIT.label} to 0, no limit ({CPU_LIMIT.cli_flag} 0)."
            )

    return on_timing


def reference_for(models, framed, options, device) -> Reference:
    """The picture (framed_picture) as the coarse stage uses it, with DPT's depth."""
    picture, mask = picture_tensors(framed, options.render_size, device)
    large, large_mask = picture_tensors(framed, options.sd_size, device)
    depth = picture_depth(models, on_background(large, large_mask, 1.0).permute(2, 0, 1), options.render_size)
    return Reference(reference_camera(options), picture, mask, shrink(mask), depth.to(device),
                     large.permute(2, 0, 1).contiguous(), large_mask[None])


def encode_framed(loaded_triposr, framed) -> TripoStart:
    """TripoSR's scene codes of a picture framed already (framed_picture)."""
    from ..triposr.engine import encode_batch

    codes = encode_batch(loaded_triposr, [triposr_input(framed)])[0]
    return TripoStart(loaded_triposr.model.field, codes)


def refine_with_details(models, picture, prompt, start=None, options: RefineOptions | None = None,
                        progress: ProgressFn | None = None, should_cancel: Callable[[], bool] | None = None,
                        preview: PreviewFn | None = None, remover=None, mesh_settings=None):
    """refine(), and the RefineDetails beside its MeshResult."""
    options = options or RefineOptions()
    prompt = check_prompt(prompt)
    device = models.device
    report = progress or (lambda stage, fraction, loss: None)
    clock = _Clock(device, report, should_cancel)
    details = RefineDetails()
    use_checkpoint = device.type == "cuda" if options.checkpoint is None else options.checkpoint
    generator = torch.Generator(device=device).manual_seed(options.seed)

    clock.start("prepare")
    framed = framed_picture(picture, options.foreground_ratio, options.remove_background, remover)
    guidance = StableDiffusionGuidance(models, prompt, options.negative_prompt)
    clock.done("prepare")

    if callable(start):
        clock.start("encode")
        start = start(framed)
        clock.done("encode")

    clock.start("depth")
    reference = reference_for(models, framed, options, device)
    clock.done("depth")

    clock.start("coarse")
    if start is None:
        coarse_field = empty_field(torch.Generator().manual_seed(options.seed), device)
    else:
        coarse_field = from_triposr(start, options.train_decoder).to(device)
    monitor = IterationMonitor("coarse", options.coarse_iterations, report, should_cancel, preview,
                               options.preview_every, _budget(options, device, details))
    details.coarse_history = optimise_field(coarse_field, models, guidance, reference, options, generator, monitor,
                                            use_checkpoint)
    clock.done("coarse")

    clock.start("surface")
    threshold = options.threshold if start is not None else options.empty_threshold
    with torch.no_grad():
        volume = dense_density_grid(coarse_field, coarse_field.planes, options.surface_resolution, SURFACE_CHUNK,
                                    should_cancel=should_cancel)
        vertices, faces = extract_mesh(volume, threshold, coarse_field.radius)
    del volume
    clock.done("surface")

    @torch.no_grad()
    def color_at(points):
        return coarse_field.density_and_color(blender_to_model(points.to(device, torch.float32)))[1]

    settings = mesh_settings or GenerateSettings(max_faces=options.max_faces, texture_size=options.texture_size,
                                                 normal_map=options.normal_map)
    asset = make_asset(model_to_blender(vertices), faces, settings, color_at, device,
                       progress=lambda stage, fraction: report(stage, fraction, None), should_cancel=should_cancel)
    clock.timings.update(asset.timings)
    colors, base_color = asset.colors, asset.base_color
    if settings.texture_size:  # with 0 iterations too: the texels the picture shows take its colours
        clock.start("texture")
        picture_large, mask_large = picture_tensors(framed, options.refine_render_size, device)
        texture_monitor = IterationMonitor("texture", options.refine_iterations, report, should_cancel, preview,
                                           options.preview_every)
        base_color, colors, details.texture_stats = refine_texture(
            asset, models, guidance, reference, picture_large, mask_large, options, generator, texture_monitor)
        details.texture_history = texture_monitor.history
        clock.done("texture")
    notes = []
    if details.texture_stats:
        share = details.texture_stats["texels_from_picture"] / max(1, details.texture_stats["texels"])
        notes.append(f"{share:.0%} of the texture comes from the picture; the rest was refined with the prompt")
    result = MeshResult(asset.vertices, asset.faces, colors, triposr_input(framed), clock.timings, notes,
                        asset.corner_uvs, base_color, asset.normal_map)
    return result, details


def refine(models, picture, prompt, start=None, options: RefineOptions | None = None,
           progress: ProgressFn | None = None, should_cancel: Callable[[], bool] | None = None,
           preview: PreviewFn | None = None, remover=None):
    """The job (module docstring). models: loader.load_models(...); picture: a path, bytes,
    PIL image or (H, W, 3|4) array, with transparency around the object (or background
    removal on); start: encode_start(...)'s TripoSR result, or None for an empty field."""
    return refine_with_details(models, picture, prompt, start, options, progress, should_cancel, preview, remover)[0]
