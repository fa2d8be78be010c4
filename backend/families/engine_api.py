"""The torch half of the family contract: what an engine is handed and hands back.

An engine module (a family's `engine.py`) provides

    load(folders: {slot id: Path}, task, device: torch.device, precision) -> loaded model
        (with .family, .task, .device, .model_dir, .load_seconds, .precision, .weights_bytes)
    run(loaded, job: JobInput, settings, clock: StageClock, chunk_size=None, **extras) -> Surface
        its own stages (declared in its Family) up to the surface, reported through the
        clock; extras it does not know are ignored (the server's batched `encode`,
        the benchmark's `reference_mode`)
    encode_batch(loaded, prepared: list) -> list   (optional: the server batches it)

and the job function (backend/pipeline.py) does the rest: the mesh stage or the raw
surface's colours, the same for every family.
"""

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..bridge.errors import Cancelled


@dataclass
class JobInput:
    """What one job starts from: an image (path, bytes, PIL image or uint8 array) or a prompt."""

    image: object = None
    prompt: str | None = None

    @property
    def task(self) -> str:
        """"image" when there is a picture (with a prompt too for a family that asks for
        one), "text" for a prompt alone."""
        return "text" if self.image is None else "image"


@dataclass
class Surface:
    """A family's result, before the shared mesh stage."""

    vertices: np.ndarray  # (N, 3) float32, Blender's frame (z up, the input view looking along +y)
    faces: np.ndarray  # (M, 3) int32, wound so normals point outward
    color_at: Callable  # points (K, 3) torch float32, Blender's frame -> rgb (K, 3) in [0, 1] (the mesh stage's)
    vertex_colors: Callable[[], np.ndarray]  # () -> (N, 4) uint8 RGBA of `vertices` (the raw surface's)
    prepared_image: np.ndarray  # (H, W, 3) uint8: what the model saw ((0, 0, 3) for a prompt)
    notes: list = field(default_factory=list)  # warnings for the user


class StageClock:
    """Progress, cancel and seconds per stage for one job: start(stage) checks for a cancel
    and reports 0, done(stage) reports 1 and records the time (after the GPU finishes)."""

    def __init__(self, progress: Callable[[str, float], None] | None, should_cancel: Callable[[], bool] | None,
                 device=None):
        self.report = progress or (lambda stage, fraction: None)
        self.should_cancel = should_cancel
        self.timings = {}
        self._started = {}
        self._cuda = device is not None and getattr(device, "type", str(device)) == "cuda"

    def check(self) -> None:
        """Raise Cancelled when the job was asked to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()

    def _synchronize(self):
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def start(self, stage: str) -> None:
        self.check()
        self._synchronize()
        self._started[stage] = time.perf_counter()
        self.report(stage, 0.0)

    def done(self, stage: str) -> None:
        self._synchronize()
        self.timings[stage] = time.perf_counter() - self._started[stage]
        self.report(stage, 1.0)
