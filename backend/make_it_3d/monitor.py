"""What the job hears of each iteration: cancel before it, progress (stage, fraction,
loss) and an occasional preview image after it, and the time it took (for the CPU
estimate). The optimisation loops know only this object."""

import time
from typing import Callable

import numpy as np
import torch

from ..bridge.errors import Cancelled

ProgressFn = Callable[[str, float, float | None], None]
PreviewFn = Callable[[np.ndarray, str, int], None]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> (H, W, 3) uint8 on the CPU."""
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


class IterationMonitor:
    def __init__(self, stage: str, total: int, progress: ProgressFn | None = None,
                 should_cancel: Callable[[], bool] | None = None, preview: PreviewFn | None = None,
                 preview_every: int = 0, on_timing: Callable[[int, float], None] | None = None):
        self.stage, self.total = stage, total
        self.progress, self.should_cancel = progress, should_cancel
        self.preview, self.preview_every = preview, preview_every
        self.on_timing = on_timing
        self.history: list[dict] = []
        self._started = None

    def before(self, iteration: int) -> None:
        """Raises Cancelled when the user asked; called before each iteration."""
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()
        self._started = time.perf_counter()

    def after(self, iteration: int, loss: float, terms: dict, image: torch.Tensor | None = None) -> None:
        seconds = time.perf_counter() - self._started
        self.history.append({"iteration": iteration, "loss": loss, "seconds": seconds, **terms})
        if self.progress is not None:
            self.progress(self.stage, (iteration + 1) / max(1, self.total), loss)
        if self.preview is not None and image is not None and self.preview_every and (
                (iteration + 1) % self.preview_every == 0 or iteration + 1 == self.total):
            self.preview(to_uint8(image), self.stage, iteration)
        if self.on_timing is not None:
            self.on_timing(iteration, seconds)
