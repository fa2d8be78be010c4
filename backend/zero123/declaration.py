"""The views job as the registry sees it: its two model slots (Zero123-XL, LoFTR), its
options and its stages. Standard library only (the job module, job.py, imports torch
when a job runs).

The One-2-3-45 family reuses these very objects: ZERO123_XL and LOFTR as its own model
slots (one folder, one preference, one download for both), and VIEWS_OPTIONS for the
views it draws before it reconstructs (docs/CONTRACTS.md, "The views job").
"""

import importlib

from ..bridge.option import Option
from ..families.contract import ExtraJob, ModelSlot, Stage
from . import folders

VIEWS = "VIEWS"

ZERO123_XL = ModelSlot(
    identifier="zero123_xl", label="Zero123-XL model", preference="zero123_model_path", hub_repo=folders.HUB_REPO,
    holds=folders.holds, check=folders.check_folder,
    contents=f"{folders.INDEX_NAME} and the component folders with their *.{folders.VARIANT}.safetensors files",
    described=f"a Zero123-XL folder ({folders.HUB_REPO})", hint=folders.hint(),
    hub_files=folders.hub_files, download_size="2.5 GB",
    licence="CreativeML OpenRAIL-M (Zero123-XL is fine-tuned from Stable Diffusion; the repository says MIT)",
    needs_background_model=True,
)

LOFTR = ModelSlot(
    identifier="loftr", label="LoFTR matcher (elevation)", preference="loftr_model_path",
    hub_repo=folders.LOFTR_HUB_REPO, holds=folders.holds_loftr, check=folders.check_loftr_folder,
    contents=folders.LOFTR_FILE_NAME, described=f"a LoFTR folder ({folders.LOFTR_FILE_NAME})",
    hint=folders.loftr_hint(), hub_files=folders.loftr_hub_files, download_size="46 MB", licence="Apache-2.0",
)

# As One-2-3-45 runs them: 75 steps for the 8 first views, 50 for the 32 nearby ones
# (two thirds: one option), guidance 3, the elevation estimated from LoFTR matches.
ESTIMATE_ELEVATION = Option(
    "views_estimate_elevation", "Estimate Elevation", bool, True,
    "Estimate the camera's height above the object from the first views (LoFTR); off: use Elevation",
    flag="--no-estimate-elevation")  # the views CLI has none (--elevation turns it off); One-2-3-45's generate has
ELEVATION = Option(
    "views_elevation", "Elevation", float, 0.0,
    "Degrees the picture's camera looks down on the object (0: level, 30: from above), instead of the estimate",
    minimum=-70.0, maximum=70.0, flag="--elevation")
STEPS = Option(
    "views_steps", "Steps", int, 75,
    "Diffusion steps of the 8 first views; the 32 nearby views take two thirds (One-2-3-45: 75 and 50)",
    minimum=2, maximum=1000, soft_maximum=150, flag="--steps")
GUIDANCE = Option(
    "views_guidance", "Guidance", float, 3.0, "How closely the views follow the picture (classifier-free guidance)",
    minimum=0.0, maximum=100.0, soft_maximum=10.0, flag="--guidance")
SEED = Option(
    "views_seed", "Seed", int, 0, "Starting noise: the same seed and options give the same views",
    minimum=0, maximum=2**31 - 1, flag="--seed")
REMOVE_BACKGROUND = Option(
    "views_remove_background", "Remove Background", bool, True,
    "Cut the object out of opaque images (rembg)", flag="--no-remove-bg")
VIEWS_OPTIONS = (ESTIMATE_ELEVATION, ELEVATION, STEPS, GUIDANCE, SEED, REMOVE_BACKGROUND)

# "auto": float16 on CUDA (as One-2-3-45 samples under autocast), float32 elsewhere
PRECISIONS = ("auto", "float32", "float16")

# Progress stages, in order. With the elevation given only prepare and views run.
STAGES = (Stage("prepare", 0.02), Stage("first_views", 0.4), Stage("elevation", 0.03), Stage("views", 0.55))


def nearby_steps(steps: int) -> int:
    """Steps of the 32 nearby views for `steps` of the first views (75 -> 50)."""
    return max(2, round(steps * 2 / 3))


def job_stages(settings) -> tuple:
    """The stages a views job with these settings reports, in order."""
    if settings.views_estimate_elevation:
        return tuple(stage.name for stage in STAGES)
    return ("prepare", "views")


def slots_needed(settings) -> tuple:
    """The model slots a views job with these settings needs (LoFTR only to estimate)."""
    return (ZERO123_XL, LOFTR) if settings.views_estimate_elevation else (ZERO123_XL,)


def _engine():
    return importlib.import_module(".job", __package__)


def _test_models(out_dir, size: str, seed: int, tasks=("image",)) -> dict:
    from pathlib import Path

    maker = importlib.import_module("..test_models.zero123", __package__)
    out = Path(out_dir)
    return {ZERO123_XL.identifier: maker.make_test_model(out / ZERO123_XL.identifier, size, seed),
            LOFTR.identifier: maker.make_test_loftr(out / LOFTR.identifier, size, seed).parent}


JOB = ExtraJob(
    identifier=VIEWS, label="Views",
    description="Zero123-XL's pictures of the object from 40 cameras around it, as One-2-3-45 draws them",
    tasks=("image",), options=VIEWS_OPTIONS, slots={"image": (ZERO123_XL, LOFTR)}, stages=STAGES,
    engine=_engine, test_models=_test_models, test_model_sizes=("tiny", "full"), test_model_name="zero123",
    seed_option=SEED.name, optional_slots=(LOFTR.identifier,),
    use_hint="it is for the views: python -m backend views, or Generate Views in Blender",
)
