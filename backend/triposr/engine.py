"""TripoSR's engine (the torch half of its family, declaration.py): load the checkpoint,
then image -> prepared picture -> triplane -> density grid -> surface, with its colour
field for the mesh stage."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from ..devices import default_chunk
from ..families.engine_api import JobInput, StageClock, Surface
from ..mesh.coordinates import blender_to_model, model_to_blender
from ..mesh.surface import dense_density_grid, extract_mesh, query_colors, sparse_density_grid
from ..prepare.background import BackgroundRemover
from ..prepare.framing import prepare_image
from .checkpoint import load_tripo
from .declaration import MODEL, TRIPOSR
from .model import TripoSR

# float32 reproduces the reference; bfloat16 runs the encoder in half the memory and
# faster, at a measured cost in accuracy (README, "Precision").
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


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


def load(folders: dict, task: str, device: torch.device, precision: str = "float32") -> LoadedModel:
    started = time.perf_counter()
    model_dir = folders[MODEL.identifier]
    tripo = load_tripo(model_dir).set_encoder_precision(PRECISIONS[precision]).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return LoadedModel(tripo, device.type, model_dir, time.perf_counter() - started, precision)


def encode_batch(loaded: LoadedModel, prepared: list) -> list:
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


def color_field(triplane_field, codes):
    """color_at(points (K, 3), Blender's frame) -> rgb (K, 3) in [0, 1]: what the mesh stage asks."""

    @torch.no_grad()
    def color_at(points: torch.Tensor) -> torch.Tensor:
        return triplane_field.density_and_color(codes, blender_to_model(points.to(codes.device, torch.float32)))[1]

    return color_at


def run(loaded: LoadedModel, job: JobInput, settings, clock: StageClock, chunk_size: int | None = None,
        reference_mode: bool = False, encode: Callable[[np.ndarray], torch.Tensor] | None = None,
        **extras) -> Surface:
    """prepare, encode, field, surface. `reference_mode` uses TripoSR's reference algorithm
    for the density grid (benchmarks, tests); `encode(prepared) -> scene codes` replaces
    the encoder call (the server's batcher)."""
    model, device = loaded.model, torch.device(loaded.device)
    chunk = chunk_size or default_chunk(device)
    notes = []

    clock.start("prepare")
    prepared = prepare_image(job.image, settings.foreground_ratio, settings.remove_background, loaded.remover, notes)
    clock.done("prepare")

    clock.start("encode")
    codes = encode(prepared) if encode is not None else encode_batch(loaded, [prepared])[0]
    clock.done("encode")

    clock.start("field")

    def on_field(fraction):
        clock.report("field", fraction)

    if reference_mode:
        volume = dense_density_grid(model.field, codes, settings.resolution, should_cancel=clock.should_cancel,
                                    progress=on_field)
        volume = volume.cpu()  # the reference extracts the surface on the CPU (PyMCubes)
    else:
        volume = sparse_density_grid(model.field, codes, settings.resolution, settings.threshold, chunk,
                                     should_cancel=clock.should_cancel, progress=on_field)
    clock.done("field")

    clock.start("surface")
    vertices, faces = extract_mesh(volume, settings.threshold, model.cfg.radius)
    del volume
    clock.done("surface")

    return Surface(model_to_blender(vertices), faces, color_field(model.field, codes),
                   lambda: query_colors(model.field, codes, vertices, chunk), prepared, notes)
