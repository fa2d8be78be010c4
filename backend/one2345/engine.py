"""One-2-3-45's engine (the torch half of its family, declaration.py): load Zero123-XL,
LoFTR and the SparseNeuS checkpoint, then image -> the cut-out on white (256) -> 32 views
(backend/zero123, as the views job draws them) -> the reconstruction -> the surface in
Blender's frame, with the rendering network as its colour field for the mesh stage.

Stages: prepare, views (one fraction over every UNet step: the first views, the elevation
estimate, the rest), reconstruction (features, cost volume, SDF grid), surface (marching
cubes). The raw surface's colours are the reference's (the rendering network at each
vertex, truncated to bytes); the mesh stage asks the same network at any surface point.
The model input kept with the object is the views' contact sheet (the input on top).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..bridge.errors import WrongModelError
from ..bridge.settings import ViewsSettings
from ..families.engine_api import JobInput, StageClock, Surface
from ..zero123 import job as views_job
from ..zero123.declaration import ELEVATION, ESTIMATE_ELEVATION, LOFTR, VIEWS_OPTIONS, ZERO123_XL, nearby_steps
from ..zero123.result import contact_sheet
from ..zero123.sampler import evaluations
from .budget import CpuBudget
from .checkpoint import load_reconstruction
from .declaration import CPU_LIMIT, ONE2345, SPARSENEUS
from .frames import WORLD_TO_BLENDER, world_to_blender
from .reconstruct import _Steps, colour_points, reconstruct_surface, to_bytes
from .views import view_set_from_views

# the reconstruction's own stages as shares of the family's "reconstruction"
RECONSTRUCTION_SHARES = {"features": (0.0, 0.15), "volume": (0.15, 0.3), "sdf": (0.3, 1.0)}


@dataclass
class LoadedOne2345:
    family: ClassVar[str] = ONE2345
    task: ClassVar[str] = "image"
    views: views_job.LoadedViews  # Zero123-XL and LoFTR, as the views job loads them
    reconstruction: torch.nn.Module  # checkpoint.SparseNeuS
    folders: dict  # slot id -> folder
    device: str
    precision: str  # as asked (the views run as the views job's "auto": float16 on CUDA, float32 elsewhere)
    load_seconds: float = 0.0

    @property
    def model_dir(self) -> Path:
        """The folder holding the three model folders, or the reconstruction's when they are apart."""
        paths = [str(Path(folder).resolve()) for folder in self.folders.values()]
        common = Path(os.path.commonpath(paths))
        return common if common != Path(common.anchor) else Path(self.folders[SPARSENEUS.identifier])

    @property
    def views_precision(self) -> str:
        return self.views.precision

    @property
    def weights_bytes(self) -> int:
        return self.views.weights_bytes + sum(p.numel() * p.element_size() for p in self.reconstruction.parameters())


def load(folders: dict, task: str, device: torch.device, precision: str = "float32") -> LoadedOne2345:
    """folders: {slot id: folder} for Zero123-XL, LoFTR and SparseNeuS (resolve_model_folders)."""
    started = time.perf_counter()
    # the views as Generate Views draws them, so that a seed gives the same views in both
    views = views_job.load({slot.identifier: folders[slot.identifier] for slot in (ZERO123_XL, LOFTR)}, task, device,
                           "auto")
    model = load_reconstruction(folders[SPARSENEUS.identifier], device)
    return LoadedOne2345(views, model, dict(folders), device.type, precision, time.perf_counter() - started)


class _ViewsProgress:
    """The views' stages (prepare, first_views, elevation, views) as the family's prepare
    and views, with one fraction over all UNet steps, told in words ("views 37/250 steps",
    and off a GPU, once measured, the minutes left); the CPU budget watches the steps."""

    def __init__(self, clock: StageClock, budget: CpuBudget, settings):
        self.clock, self.budget = clock, budget
        estimating = bool(settings.views_estimate_elevation)
        # with the estimate, first_views and views are each one pass over the steps
        self.spans = {"first_views": (0.0, 0.5), "elevation": (0.5, 0.5), "views": (0.5, 1.0)} if estimating \
            else {"views": (0.0, 1.0)}
        per_pass = evaluations(settings.views_steps) + evaluations(nearby_steps(settings.views_steps))
        self.steps = per_pass * (2 if estimating else 1)
        self.started = False

    def __call__(self, stage: str, fraction: float) -> None:
        if stage == "prepare":
            if fraction >= 1.0:
                self.clock.done("prepare")
            return
        if not self.started:
            self.clock.start("views")
            self.started = True
        self.budget.watch(stage, fraction)
        low, high = self.spans.get(stage, (0.0, 1.0))
        overall = low + (high - low) * fraction
        if fraction < 1.0 or stage != "views":
            words = f"views {round(overall * self.steps)}/{self.steps} steps"
            if self.budget.estimate_minutes is not None:
                words += f", about {max(1, round(self.budget.estimate_minutes * (1 - overall)))} min left"
            self.clock.tell("views", overall, words)


def color_field(model, surface, chunk: int | None = None):
    """color_at(points (K, 3), Blender's frame) -> rgb (K, 3) in [0, 1]: the rendering
    network at those points (what the mesh stage asks)."""
    to_volume = surface.cond.cameras.world_to_volume()
    linear = to_volume[:3, :3] @ WORLD_TO_BLENDER.T  # Blender -> W -> N
    matrix = torch.from_numpy(linear.T.astype(np.float32)).to(model.device)
    offset = torch.from_numpy(to_volume[:3, 3].astype(np.float32)).to(model.device)

    @torch.no_grad()
    def color_at(points: torch.Tensor) -> torch.Tensor:
        points_n = points.to(model.device, torch.float32) @ matrix + offset
        return colour_points(model, surface.cond, points_n, chunk=chunk)

    return color_at


def elevation_notes(settings) -> list:
    """A note when an elevation was given but the estimate is on (it is then not used)."""
    if settings.views_estimate_elevation and settings.views_elevation != ELEVATION.default:
        return [f"the elevation was estimated: Elevation ({settings.views_elevation:g}) is used only with "
                f"Estimate Elevation off ({ESTIMATE_ELEVATION.cli_flag})"]
    return []


def run(loaded: LoadedOne2345, job: JobInput, settings, clock: StageClock, chunk_size: int | None = None,
        **extras) -> Surface:
    """prepare, views, reconstruction, surface (see the module's words)."""
    if job.prompt is not None:
        raise WrongModelError("One-2-3-45 makes an object from a picture alone: leave the prompt out")
    device = torch.device(loaded.device)
    budget = CpuBudget(settings, device.type, "One-2-3-45", CPU_LIMIT)
    notes = elevation_notes(settings)

    clock.start("prepare")
    views_settings = ViewsSettings(**{option.name: getattr(settings, option.name) for option in VIEWS_OPTIONS})
    progress = _ViewsProgress(clock, budget, settings)
    result = views_job.run_views(loaded.views, job.image, views_settings, progress, clock.should_cancel)
    clock.done("views")
    notes += list(result.notes)

    clock.start("reconstruction")

    def on_reconstruction(stage: str, fraction: float) -> None:
        if stage in RECONSTRUCTION_SHARES:
            low, high = RECONSTRUCTION_SHARES[stage]
            clock.report("reconstruction", low + (high - low) * fraction)
        elif stage == "mesh":
            clock.done("reconstruction")
            clock.start("surface")

    views = view_set_from_views(result.pose_json(), [view.picture for view in result.stage2])
    surface = reconstruct_surface(loaded.reconstruction, views, settings.one2345_resolution, on_reconstruction,
                                  clock.should_cancel)
    vertices, faces = world_to_blender(surface.vertices_world(), surface.faces)
    clock.done("surface")

    def vertex_colors() -> np.ndarray:
        steps = _Steps(clock.report, clock.should_cancel)
        colours = colour_points(loaded.reconstruction, surface.cond, torch.from_numpy(surface.vertices_n), steps,
                                chunk_size, stage="colors")
        rgb = to_bytes(colours.cpu().numpy())
        return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)

    return Surface(vertices, faces.astype(np.int32), color_field(loaded.reconstruction, surface, chunk_size),
                   vertex_colors, contact_sheet(result), notes)
