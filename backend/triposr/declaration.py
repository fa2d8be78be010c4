"""TripoSR as a model family: one image -> a detailed textured object in seconds.
Standard library only (the engine, engine.py, imports torch when a job runs)."""

import importlib

from ..bridge.option import Option
from ..families.contract import Family, ModelSlot, Stage
from . import folders

TRIPOSR = "TRIPOSR"

MODEL = ModelSlot(
    identifier="triposr", label="TripoSR model", preference="model_path", hub_repo=folders.HUB_REPO,
    holds=folders.holds, check=folders.check_folder, contents=folders.CONTENTS,
    described=f"a TripoSR model folder ({folders.CONFIG_NAME} + {folders.WEIGHTS_NAME})", hint=folders.HINT,
    hub_files=folders.hub_files, download_size="1.7 GB", licence="MIT", needs_background_model=True,
)

# What TripoSR needs to turn an image into a mesh.
OPTIONS = (
    Option("resolution", "Resolution", int, 256, "Marching-cubes grid points per axis: detail and cost",
           minimum=8, maximum=1024, soft_maximum=512),
    Option("threshold", "Threshold", float, 25.0,
           "Density level of the surface; lower it when nothing comes out", minimum=0.0, soft_maximum=100.0),
    Option("foreground_ratio", "Foreground Ratio", float, 0.85, "Share of the frame the object fills",
           minimum=0.0, maximum=1.0, exclusive_minimum=True, soft_minimum=0.05),
    Option("remove_background", "Remove Background", bool, True,
           "Cut the object out of opaque images (rembg)", flag="--no-remove-bg"),
)


# The torch halves are found by name when first needed (the engine when a job runs, the
# test-model maker for make-test-model), so this declaration imports neither.
def _engine():
    return importlib.import_module(".engine", __package__)


def _test_models(out_dir, size: str, seed: int, tasks=("image",)) -> dict:
    maker = importlib.import_module("..test_models.triposr", __package__)
    return {MODEL.identifier: maker.make_smoke_checkpoint(out_dir, size, seed)}


FAMILY = Family(
    identifier=TRIPOSR, label="TripoSR",
    description="One image to a detailed textured object in seconds (stabilityai/TripoSR)",
    tasks=("image",), options=OPTIONS, slots={"image": (MODEL,)},
    stages=(Stage("prepare", 0.05), Stage("encode", 0.15), Stage("field", 0.55), Stage("surface", 0.1)),
    engine=_engine, test_models=_test_models, test_model_sizes=("smoke", "official"),
    resolution_option="resolution", test_model_name="triposr",
)
