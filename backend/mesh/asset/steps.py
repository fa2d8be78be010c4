"""Progress, cancellation and timings shared by the asset stage's steps."""

import time
from typing import Callable

import torch

from ...bridge.errors import Cancelled

# progress(stage, fraction), as generate_mesh reports it
ProgressFn = Callable[[str, float], None]
CancelFn = Callable[[], bool]


def check_cancel(should_cancel: CancelFn | None) -> None:
    """Raise Cancelled when the caller asks to stop; called between chunks of work."""
    if should_cancel is not None and should_cancel():
        raise Cancelled()


class StepClock:
    """Times named steps and reports them as the job's progress stages.

    Several steps may report as one stage (rasterising and both bakes are the "bake"
    stage the user sees), each taking its share of that stage's 0..1 by weight.
    `step(name)` checks for cancellation, closes the previous step and returns a
    progress function for the new one that maps its own 0..1 onto its share.
    """

    def __init__(self, stages: dict[str, str], weights: dict[str, float], progress: ProgressFn | None = None,
                 should_cancel: CancelFn | None = None, synchronize: Callable[[], None] | None = None):
        self._stage_of = stages  # step -> stage
        self._share = {}
        for stage in set(stages.values()):
            members = [step for step, owner in stages.items() if owner == stage]
            total = sum(weights.get(step, 1.0) for step in members) or 1.0
            self._share.update({step: weights.get(step, 1.0) / total for step in members})
        self._progress = progress or (lambda stage, fraction: None)
        self.should_cancel = should_cancel
        self._synchronize = synchronize or (lambda: None)
        self._done = dict.fromkeys(stages.values(), 0.0)
        self._current = None
        self._started = 0.0
        self.timings: dict[str, float] = {}

    def step(self, name: str) -> Callable[[float], None]:
        self._close()
        check_cancel(self.should_cancel)
        self._current, self._started = name, time.perf_counter()
        stage = self._stage_of[name]
        start, share = self._done[stage], self._share[name]

        def report(fraction: float) -> None:
            check_cancel(self.should_cancel)
            self._progress(stage, min(1.0, start + share * min(max(fraction, 0.0), 1.0)))

        report(0.0)
        return report

    def finish(self) -> dict[str, float]:
        self._close()
        return self.timings

    def _close(self) -> None:
        if self._current is None:
            return
        self._synchronize()  # GPU work is asynchronous: time it when it is done
        self.timings[self._current] = time.perf_counter() - self._started
        stage = self._stage_of[self._current]
        self._done[stage] += self._share[self._current]
        if self._done[stage] > 1.0 - 1e-9:  # the stage's last step: say it is complete
            self._progress(stage, 1.0)
        self._current = None


class torch_threads:
    """Run a block with `count` torch CPU threads, then restore the caller's setting.

    The asset stage runs its own work on one thread and gives the colour field (a
    matrix-multiply-bound MLP, which does scale) the caller's threads. Its own work is
    scatter/gather bound, or many small operations (the UV work on a 20k-face mesh),
    and with intra-op threads every operation waits at a barrier for all of them: on a
    busy machine (Blender, other programs) that wait is a scheduler time slice.
    Measured on the 2-core machine under load: the floater search on a 125k-face mesh
    took 1.68 s with two threads and 0.07 s with one, the unwrap 4.6 s against 0.25 s.
    """

    def __init__(self, count: int):
        self.count = count

    def __enter__(self):
        self._previous = torch.get_num_threads()
        torch.set_num_threads(self.count)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._previous)
        return False
