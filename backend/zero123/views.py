"""The 32 views of the unseen sides, as One-2-3-45's run.py makes them (stage1_run,
stage2_run), each stage's views in one batch.

With the elevation estimated (LoFTR weights given):
  1. stage 1, views 0..3 at the input's elevation (stage1_steps);
  2. stage 2 of view 0: 4 nearby views (stage2_steps), from view 0 as a saved PNG;
  3. the polar angle from those 4 views (elevation.py), 90 when that fails;
  4. stage 1, the second ring: views 4..7 (polar <= 75) or 8..11;
  5. stage 2 of the 7 other stage-1 views: 28 views in one batch.
With the elevation given, stage 1 is one batch of 8 and stage 2 one batch of 32.
"""

import time
from typing import Callable

import numpy as np

from ..bridge.errors import Cancelled, InputImageError
from .conditioning import condition, to_model_range
from .elevation import estimate_polar
from .inputs import prepare_input
from .plan import ViewPose, camera_to_world, plan, quantise, second_ring
from .result import View, ViewsResult
from .sampler import ViewNoise, decode, evaluations, sample_latents

STAGE1_STEPS = 75
STAGE2_STEPS = 50
GUIDANCE = 3.0
ETA = 1.0
ELEVATION_RANGE = (-70.0, 70.0)  # beyond it the nearby views of the top or bottom ring pass the pole
# Progress stages (declaration.STAGES): with the elevation estimated, "first_views" (4
# views and the 4 nearby views of view 0), "elevation", then "views" (the rest);
# with it given, "views" alone. Each view stage's fraction counts its UNet evaluations.
STAGES = ("prepare", "first_views", "elevation", "views")

Progress = Callable[[str, float], None]


def _check_elevation(elevation) -> float | None:
    if elevation is None:
        return None
    if isinstance(elevation, bool) or not isinstance(elevation, (int, float)) or not np.isfinite(elevation):
        raise InputImageError(f"the elevation must be a number of degrees, got {elevation!r}")
    low, high = ELEVATION_RANGE
    if not low <= elevation <= high:
        raise InputImageError(f"the elevation must be between {low:g} and {high:g} degrees above the horizon "
                              f"(the nearby views would pass over the pole), got {elevation:g}")
    return float(elevation)


class _Run:
    """The state of one generate_views call: progress over all UNet evaluations."""

    def __init__(self, loaded, seed, guidance, progress, should_cancel, noise_for):
        self.loaded, self.seed, self.guidance = loaded, seed, guidance
        self.progress, self.should_cancel = progress, should_cancel
        self.noise_for = noise_for or (lambda ids: ViewNoise(seed, ids))
        self.stage, self.done, self.total = "views", 0, 1
        self.timings = {"stage1": 0.0, "stage2": 0.0}

    def report(self, stage: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(stage, fraction)

    def check(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()

    def begin(self, stage: str, evaluations_in_stage: int) -> None:
        """A progress stage of views: its fraction counts these UNet evaluations."""
        self.check()
        self.stage, self.done, self.total = stage, 0, evaluations_in_stage
        self.report(stage, 0.0)

    def draw(self, poses: list[ViewPose], sources: dict, steps: int, stage: str) -> dict:
        """Draw the views `poses` (all of one stage) in one batch; sources: id -> picture."""
        started = time.perf_counter()
        names = list(sources)
        images = to_model_range(np.stack([sources[n] for n in names]))
        cond = condition(self.loaded, images, [names.index(p.source) for p in poses],
                         [p.d_polar for p in poses], [p.d_azimuth for p in poses])
        done_before = self.done

        def step(index, total):
            self.done = done_before + index
            self.report(self.stage, self.done / self.total)

        latents = sample_latents(self.loaded, cond, steps, self.guidance, self.noise_for([p.view_id for p in poses]),
                                 ETA, step, self.should_cancel)
        pictures = decode(self.loaded, latents, should_cancel=self.should_cancel)
        self.timings[stage] += time.perf_counter() - started
        return {p.view_id: picture for p, picture in zip(poses, pictures)}


def generate_views(loaded, image, elevation: float | None = None, *, matcher=None, stage1_steps: int = STAGE1_STEPS,
                   stage2_steps: int = STAGE2_STEPS, guidance: float = GUIDANCE, seed: int = 0,
                   remove_background: bool = True, remover=None, prepared: bool = False, progress: Progress | None = None,
                   should_cancel: Callable[[], bool] | None = None, noise_for=None) -> ViewsResult:
    """The 8 first-stage and 32 nearby views of the object in `image` with their poses.

    image: a path, encoded bytes, PIL image or uint8 array (prepared as inputs.py says), or
    with prepared=True the (256, 256, 3) uint8 picture on white as it is.
    elevation: degrees above the horizon of the input's camera; None estimates it with
    `matcher` (loftr.load_loftr), which is then required.
    progress(stage, fraction) with STAGES; should_cancel() is polled before every UNet
    step and between stages (raises Cancelled). noise_for(view_ids) -> sampler.NoiseSource replaces the
    seeded noise (tests hand in the reference's).
    """
    started = time.perf_counter()
    elevation = _check_elevation(elevation)
    if elevation is None and matcher is None:
        raise InputImageError("estimating the elevation needs LoFTR's weights (indoor_ds_new.ckpt); give them, "
                              "or give the elevation of the picture's camera in degrees")
    with_estimate = elevation is None
    run = _Run(loaded, seed, guidance, progress, should_cancel, noise_for)
    run.report("prepare", 0.0)
    picture = np.asarray(image, dtype=np.uint8) if prepared else prepare_input(image, remove_background, remover)
    if picture.shape != (256, 256, 3):
        raise InputImageError(f"a prepared picture must be 256 x 256 RGB, got {picture.shape}")
    run.report("prepare", 1.0)
    sources = {"input": picture}
    notes = []
    per_pass = evaluations(stage1_steps) + evaluations(stage2_steps)
    if with_estimate:
        run.begin("first_views", per_pass)
        first = [v for v in plan(90) if v.stage == 1][:4]
        stage1 = run.draw(first, sources, stage1_steps, "stage1")
        nearby0 = [v for v in plan(90) if v.source == "0"]
        stage2 = run.draw(nearby0, {"0": quantise(stage1["0"])}, stage2_steps, "stage2")
        run.report("elevation", 0.0)
        estimate_started = time.perf_counter()
        estimate = estimate_polar(matcher, [stage2[v.view_id] for v in nearby0], loaded.unet.device)
        run.timings["elevation"] = time.perf_counter() - estimate_started
        run.report("elevation", 1.0)
        polar, estimated = estimate.polar, estimate.estimated
        notes += [estimate.note] if estimate.note else []
        views = plan(polar)
        ring = [str(i) for i in second_ring(polar)]
        run.begin("views", per_pass)
        stage1.update(run.draw([v for v in views if v.view_id in ring], sources, stage1_steps, "stage1"))
        rest = [v for v in views if v.stage == 2 and v.source != "0"]
    else:
        polar, estimated = 90.0 - elevation, False
        views = plan(polar)
        run.begin("views", per_pass)
        stage1 = run.draw([v for v in views if v.stage == 1], sources, stage1_steps, "stage1")
        stage2, rest = {}, [v for v in views if v.stage == 2]
    stage2.update(run.draw(rest, {k: quantise(p) for k, p in stage1.items()}, stage2_steps, "stage2"))
    cameras = camera_to_world([v.polar for v in views], [v.azimuth for v in views])
    made = [View(v, stage1[v.view_id] if v.stage == 1 else stage2[v.view_id], c) for v, c in zip(views, cameras)]
    run.timings["total"] = time.perf_counter() - started
    return ViewsResult(picture, polar, estimated, made[:8], made[8:], seed, run.timings, notes)

