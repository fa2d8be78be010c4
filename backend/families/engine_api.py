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
surface's colours, the same for every family; except for a family that declares
finishing_stages (contract.Family): its engine runs the mesh stage itself (on the
user's settings) and hands the finished mesh back in Surface.finished.

Long jobs say more than a fraction through the clock: clock.tell(stage, fraction, text)
("coarse 120/400, loss 0.031") and clock.show(image, stage, iteration) (a small preview
of the object being made); an entry point that does not listen gets plain progress.
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
        """"text" for a prompt alone; else "image" (a picture, with a prompt too for a
        family that asks for one; an image job without its picture fails at its prepare)."""
        return "text" if self.image is None and self.prompt is not None else "image"


@dataclass
class Surface:
    """A family's result, before the shared mesh stage."""

    vertices: np.ndarray  # (N, 3) float32, Blender's frame (z up, the input view looking along +y)
    faces: np.ndarray  # (M, 3) int32, wound so normals point outward
    color_at: Callable  # points (K, 3) torch float32, Blender's frame -> rgb (K, 3) in [0, 1] (the mesh stage's)
    vertex_colors: Callable[[], np.ndarray]  # () -> (N, 4) uint8 RGBA of `vertices` (the raw surface's)
    prepared_image: np.ndarray  # (H, W, 3) uint8: what the model saw ((0, 0, 3) for a prompt)
    notes: list = field(default_factory=list)  # warnings for the user
    # the finished mesh (mesh.asset.stage.AssetResult) of a family that runs the mesh stage
    # itself (Family.finishing_stages); the job function returns it as it is
    finished: object = None


DetailFn = Callable[[str, float, str], None]  # (stage, fraction, words such as "coarse 120/400, loss 0.031")
PreviewFn = Callable[[np.ndarray, str, int], None]  # (image (H, W, 3) uint8, stage, iteration)


class StageClock:
    """Progress, cancel and seconds per stage for one job: start(stage) checks for a cancel
    and reports 0, done(stage) reports 1 and records the time (after the GPU finishes).
    tell() is progress with words, show() a preview image: for the entry points that
    listen (detail, preview), else plain progress and nothing."""

    def __init__(self, progress: Callable[[str, float], None] | None, should_cancel: Callable[[], bool] | None,
                 device=None, detail: DetailFn | None = None, preview: PreviewFn | None = None):
        self.report = progress or (lambda stage, fraction: None)
        self.should_cancel = should_cancel
        self._detail, self._preview = detail, preview
        self.timings = {}
        self._started = {}
        self._cuda = device is not None and getattr(device, "type", str(device)) == "cuda"

    def check(self) -> None:
        """Raise Cancelled when the job was asked to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()

    def tell(self, stage: str, fraction: float, text: str) -> None:
        """Progress with words: to `detail` when given (instead of progress), else progress."""
        if self._detail is not None:
            self._detail(stage, fraction, text)
        else:
            self.report(stage, fraction)

    def show(self, image: np.ndarray, stage: str, iteration: int) -> None:
        """A preview image (H, W, 3) uint8 of the object being made, to `preview` when given."""
        if self._preview is not None:
            self._preview(image, stage, iteration)

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
