"""How long the views will take off a GPU, said before most of the work (as Make-It-3D's
CPU estimate): the second UNet step of the first batch is timed (the first warms up), its
seconds per view scaled to every view step of the job; a job over the CPU Time Limit is
refused with that estimate and what to do.
"""

import math
import time
from typing import Callable

from ..bridge.errors import DeviceError
from ..zero123.declaration import nearby_steps
from ..zero123.sampler import evaluations

FIRST_VIEWS = 8  # stage-1 views (One-2-3-45's plan)
NEARBY_VIEWS = 32  # stage-2 views
FIRST_BATCH = {True: 4, False: 8}  # views in the first batch: estimating the elevation, or given


def view_steps(settings) -> int:
    """UNet evaluations of one view (both guidance halves), summed over every view of a job
    (2,176 for 75 steps)."""
    return FIRST_VIEWS * evaluations(settings.views_steps) + NEARBY_VIEWS * evaluations(nearby_steps(settings.views_steps))


class CpuBudget:
    """watch(stage, fraction): the views' progress, timed. Raises DeviceError once the
    estimate passes `limit_minutes` (0: no limit); on CUDA it only passes progress on."""

    def __init__(self, settings, device_type: str, label: str, limit_option, clock: Callable[[], float] = time.perf_counter):
        self.limit = getattr(settings, limit_option.name)
        self.option = limit_option
        self.device_type, self.label, self.clock = device_type, label, clock
        self.batch = FIRST_BATCH[bool(settings.views_estimate_elevation)]
        self.total = view_steps(settings)
        self.per_step = evaluations(settings.views_steps)  # the first batch's UNet evaluations
        self.times: list[float] = []
        self.estimate_minutes: float | None = None

    def watch(self, stage: str, fraction: float) -> None:
        """Called with the views' progress ("first_views" or "views": the first batch's
        steps are its first reports)."""
        if self.device_type == "cuda" or self.estimate_minutes is not None or stage not in ("first_views", "views"):
            return
        self.times.append(self.clock())
        if len(self.times) < 3:  # the start, then steps 1 (warming up) and 2
            return
        seconds_per_view = (self.times[2] - self.times[1]) / self.batch
        self.estimate_minutes = seconds_per_view * self.total / 60.0
        if self.limit and self.estimate_minutes > self.limit:
            where = "this CPU" if self.device_type == "cpu" else f"this {self.device_type.upper()} device"
            minutes = max(1, math.ceil(self.estimate_minutes))
            raise DeviceError(
                f"{self.label} needs a GPU: its views would take about {_duration(minutes)} on {where} "
                f"({seconds_per_view:.1f} s per view and step, {self.total:,} view steps). Run it on a CUDA GPU (the "
                f"model server can lend one), or lower the views' steps; to run it here anyway, set the "
                f"{self.option.label} to 0, no limit ({self.option.cli_flag} 0).")


def _duration(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    return f"{minutes / 60:.1f} hours"
