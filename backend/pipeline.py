"""The one job function every entry point uses: image -> coloured mesh in Blender's frame."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .bridge.errors import Cancelled, DeviceError, ModelNotFoundError
from .bridge.options import looks_like_hub_id
from .bridge.settings import GenerateSettings, asset_stage_runs
from .devices import default_chunk, resolve_device
from .mesh.asset.stage import make_asset
from .mesh.coordinates import blender_to_model, model_to_blender
from .mesh.surface import dense_density_grid, extract_mesh, query_colors, sparse_density_grid
from .prepare.background import BackgroundRemover
from .prepare.framing import prepare_image
from .triposr.checkpoint import check_model_dir, load_tripo
from .triposr.model import TripoSR

# float32 reproduces the reference; bfloat16 runs the encoder in half the memory and
# faster, at a measured cost in accuracy (README, "Precision").
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
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


def resolve_model_dir(model: str | Path) -> Path:
    """A local model folder, or a hub repo id fetched into the cache (only when asked)."""
    path = Path(model).expanduser()
    if path.is_dir() or not looks_like_hub_id(str(model)):
        return check_model_dir(path)
    try:
        from .setup.hub import fetch_model
    except ImportError:
        raise ModelNotFoundError(f"{model} is not a folder, and hub downloads are not available") from None
    return check_model_dir(fetch_model(str(model)))


def load_model(model: str | Path, device: str = "auto", precision: str = "float32") -> LoadedModel:
    started = time.perf_counter()
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        # cuDNN convolutions default to TF32, which moves the scene codes by ~5e-4:
        # keep full float32 so results match the reference on every device.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    model_dir = resolve_model_dir(model)
    tripo = load_tripo(model_dir).set_encoder_precision(PRECISIONS[precision]).to(torch_device)
    _synchronize(torch_device)
    return LoadedModel(tripo, torch_device.type, model_dir, time.perf_counter() - started, precision)


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
) -> MeshResult:
    """Run the whole job. `reference_mode` uses the reference algorithm (benchmarks, tests)."""
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
    pixels = torch.from_numpy(prepared).to(device).float().div(255.0).unsqueeze(0)
    codes = model.encode(pixels)[0]
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
        asset = make_asset(model_to_blender(vertices), faces, settings, _color_field(model.field, codes), device,
                           progress=report, should_cancel=should_cancel)
        timings.update(asset.timings)
        return MeshResult(asset.vertices, asset.faces, asset.colors, prepared, timings, notes,
                          asset.corner_uvs, asset.base_color, asset.normal_map)

    stage("colors")
    colors = query_colors(model.field, codes, vertices, chunk)
    done("colors")

    return MeshResult(model_to_blender(vertices), faces, colors, prepared, timings, notes)


def _color_field(field, codes):
    """color_at(points (K, 3), Blender's frame) -> rgb (K, 3) in [0, 1]: what the mesh stage asks."""

    @torch.no_grad()
    def color_at(points: torch.Tensor) -> torch.Tensor:
        return field.density_and_color(codes, blender_to_model(points.to(codes.device, torch.float32)))[1]

    return color_at
