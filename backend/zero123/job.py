"""The views job: the one function every entry point runs (the CLI's `views` command, the
worker's and the server's `generate_views`, Blender's Generate Views through the worker).

    loaded = load_views(model, device="auto", precision="auto")   # model: see load_views
    result = run_views(loaded, image, ViewsSettings(...), progress, should_cancel)
    write_views(result, out_dir)                                     # result.py

The job's options, model slots and stages are declared in declaration.py (registry.VIEWS).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..bridge.errors import DeviceError, ModelNotFoundError, OutOfMemoryError
from ..bridge.settings import ViewsSettings
from ..devices import resolve_device
from .declaration import LOFTR, PRECISIONS, VIEWS, ZERO123_XL, nearby_steps
from .folders import loftr_hint
from .result import ViewsResult, transfer_parts  # noqa: F401 - transfer_parts: the worker's and server's
from .views import generate_views


@dataclass
class LoadedViews:
    """Zero123-XL and (when given) LoFTR, loaded for views jobs."""

    zero123: object  # loader.LoadedZero123
    matcher: object | None  # kornia LoFTR, or None (then the elevation must be given)
    folders: dict  # slot id -> folder
    device: str
    precision: str
    load_seconds: float = 0.0
    family: str = VIEWS  # what the worker keeps the loaded model as (no family: the views job)
    task: str = "image"
    timings: dict = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return Path(self.folders[ZERO123_XL.identifier])

    @property
    def weights_bytes(self) -> int:
        matcher = sum(p.numel() * p.element_size() for p in self.matcher.parameters()) if self.matcher else 0
        return self.zero123.weights_bytes + matcher


def _dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r} for views: choose one of {', '.join(PRECISIONS)}")
    if precision == "float16" and device.type == "cpu":
        raise DeviceError("float16 views need a GPU: choose float32 (or auto) on the CPU")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return torch.float16 if precision == "float16" else torch.float32


def load(folders: dict, task: str, device: torch.device, precision: str = "auto") -> LoadedViews:
    """The engine half (families/engine_api.py's load): folders {slot id: folder} as
    model_folder.resolve_model_folders gives them; LoFTR may be left out."""
    from .loader import load_zero123
    from .loftr import load_loftr

    started = time.perf_counter()
    dtype = _dtype(precision, device)
    zero123 = load_zero123(folders[ZERO123_XL.identifier], device, dtype)
    matcher = load_loftr(folders[LOFTR.identifier], device) if LOFTR.identifier in folders else None
    return LoadedViews(zero123, matcher, dict(folders), device.type, "float16" if dtype == torch.float16 else "float32",
                       time.perf_counter() - started)


def load_views(model, device: str = "auto", precision: str = "auto", with_loftr: bool = True) -> LoadedViews:
    """Views models from `model`: a folder holding the Zero123-XL and LoFTR folders (as
    `make-test-model zero123 OUT` writes them), a Zero123-XL folder alone (then the
    elevation must be given), or a dict slot id -> folder. with_loftr=False leaves LoFTR
    out (jobs that are given the elevation)."""
    from ..model_folder import resolve_model_folders

    folders = resolve_model_folders(model, VIEWS, "image")
    if not with_loftr:
        folders.pop(LOFTR.identifier, None)
    return load(folders, "image", resolve_device(device), precision)


def run_views(loaded: LoadedViews, image, settings: ViewsSettings, progress: Callable[[str, float], None] | None = None,
              should_cancel: Callable[[], bool] | None = None, *, noise_for=None,
              remedy: str = "choose the CPU device") -> ViewsResult:
    """The 40 views of the object in `image` (a path, encoded bytes, PIL image or pixel
    array) with their poses; progress(stage, fraction) with declaration.STAGES;
    Cancelled between UNet steps when should_cancel() says so; OutOfMemoryError (ending
    with `remedy`) when the GPU runs out."""
    if isinstance(settings, dict):
        settings = ViewsSettings.from_dict(settings)
    if not isinstance(settings, ViewsSettings):
        raise TypeError("settings must be a ViewsSettings or a dict of its fields")
    if settings.views_estimate_elevation and loaded.matcher is None:
        raise ModelNotFoundError("estimating the elevation needs the LoFTR folder, which was not given: "
                                 f"{loftr_hint()} (turn Estimate Elevation off, or --elevation DEG)")
    elevation = None if settings.views_estimate_elevation else settings.views_elevation
    try:
        return generate_views(
            loaded.zero123, image, elevation, matcher=loaded.matcher, stage1_steps=settings.views_steps,
            stage2_steps=nearby_steps(settings.views_steps), guidance=settings.views_guidance,
            seed=settings.views_seed, remove_background=settings.views_remove_background, progress=progress,
            should_cancel=should_cancel, noise_for=noise_for,
        )
    except torch.cuda.OutOfMemoryError:
        pass  # out of the except block, so the failed attempt's tensors can be freed
    torch.cuda.empty_cache()
    raise OutOfMemoryError("the GPU ran out of memory drawing the views (about 8 GB in float16): close what else "
                           f"uses it, or {remedy}")
