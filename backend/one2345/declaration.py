"""One-2-3-45 as a model family: one picture -> 32 views of its unseen sides (Zero123-XL)
-> a coloured mesh reconstructed from them in one pass (SparseNeuS). Standard library
only (the engine, engine.py, imports torch, diffusers and kornia when a job runs).

An image job needs three model folders: Zero123-XL and LoFTR - the views job's very
ModelSlot objects (backend/zero123/declaration.py: one folder, one preference, one
download for both) - and the reconstruction's checkpoint. The views' options are the
views job's own declarations, so a seed, steps and elevation mean the same in Generate
Views and in Generate 3D (and the same seed gives the same views in both).
"""

import importlib
from pathlib import Path

from ..bridge.option import Option
from ..families.contract import Family, ModelSlot, Stage
from ..zero123.declaration import JOB as VIEWS_JOB
from ..zero123.declaration import LOFTR, VIEWS_OPTIONS, ZERO123_XL
from . import folders

ONE2345 = "ONE2345"

SPARSENEUS = ModelSlot(
    identifier="sparseneus", label="SparseNeuS model (reconstruction)", preference="sparseneus_model_path",
    hub_repo=folders.HUB_REPO, holds=folders.holds, check=folders.check_folder,
    contents=f"{folders.FILE_NAME} (directly or in {folders.SEARCHED_FOLDERS[-1]}/)",
    described=f"a SparseNeuS reconstruction folder ({folders.FILE_NAME})", hint=folders.hint(),
    hub_files=folders.hub_files, download_size="5 MB",
    licence="Apache-2.0 (One-2-3-45's; the hub repository states no other terms)",
)

RESOLUTION = Option(
    "one2345_resolution", "Resolution", int, 256,
    "Marching-cubes grid points per axis of the reconstructed surface (One-2-3-45: 256): detail and time",
    minimum=32, maximum=512, flag="--resolution")
# As Make-It-3D's: measured from the first view steps, so a CPU says how long before the bulk of the work
CPU_LIMIT = Option(
    "one2345_cpu_minutes", "CPU Time Limit", float, 60.0,
    "Off a GPU, refuse a job whose views would take longer than this many minutes, measured from its first "
    "steps (0: run it whatever it takes)", minimum=0.0, soft_maximum=600.0, flag="--cpu-minutes")
OPTIONS = (*VIEWS_OPTIONS, RESOLUTION, CPU_LIMIT)

# One overall percentage: on a GPU the views take about 3/4 of a job, on a CPU nearly all.
# prepare and surface weigh what they weigh for the other families (one table of weights).
STAGES = (Stage("prepare", 0.05), Stage("views", 8.0), Stage("reconstruction", 1.5), Stage("surface", 0.1))

NOTES = {
    "speed": "about 20 s an object on a recent GPU; on a CPU the 32 views take hours",
    "cpu": "on a CPU the 32 views take long (hours on a laptop); the job measures its first steps and stops "
           "with its estimate when that passes the CPU Time Limit",
}


def _engine():
    return importlib.import_module(".engine", __package__)


def _test_models(out_dir, size: str, seed: int, tasks=("image",)) -> dict:
    """One folder per slot in out_dir (zero123_xl/, loftr/, sparseneus/), so `--model
    out_dir` works; `tiny` with a 32^3 cost volume (quick), `full` at the demo's 96^3."""
    made = VIEWS_JOB.test_models(out_dir, size, seed, tasks)
    maker = importlib.import_module("..test_models.one2345", __package__)
    made[SPARSENEUS.identifier] = maker.make_test_folder(Path(out_dir) / SPARSENEUS.identifier, size, seed)
    return made


FAMILY = Family(
    identifier=ONE2345, label="One-2-3-45",
    description="One image to a coloured object reconstructed from 32 generated views (Zero123-XL + SparseNeuS)",
    tasks=("image",), options=OPTIONS, slots={"image": (ZERO123_XL, LOFTR, SPARSENEUS)}, stages=STAGES,
    engine=_engine, test_models=_test_models, test_model_sizes=("tiny", "full"),
    resolution_option=RESOLUTION.name, seed_option="views_seed", test_model_name="one2345", notes=NOTES,
)
