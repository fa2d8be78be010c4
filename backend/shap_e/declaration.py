"""Shap-E as a model family: a text prompt or an image -> a coloured object by diffusion.
Standard library only (the engine, engine.py, imports torch and diffusers when a job runs)."""

import functools
import importlib

from ..bridge.option import Option
from ..families.contract import Family, ModelSlot, Stage
from . import folders

SHAP_E = "SHAP_E"

SLOT_WORDS = {"text": ("shap_e_text", "Shap-E text model", "shap_e_model_path", "2.7 GB"),
              "image": ("shap_e_image", "Shap-E image model", "shap_e_image_model_path", "3.4 GB")}


def _slot(task: str) -> ModelSlot:
    identifier, label, preference, size = SLOT_WORDS[task]
    repo = folders.HUB_REPOS[task]
    return ModelSlot(
        identifier=identifier, label=label, preference=preference, hub_repo=repo,
        holds=functools.partial(folders.holds, task=task), check=functools.partial(folders.check_folder, task=task),
        contents=f"model_index.json and the component folders of {repo}",
        described=f"a Shap-E {folders.TASK_WORDS[task]} folder ({repo})", hint=folders.hint(task),
        hub_files=functools.partial(folders.hub_files, task), download_size=size, licence="MIT",
    )


TEXT_MODEL, IMAGE_MODEL = _slot("text"), _slot("image")

# Defaults as in Shap-E's own examples. Guidance is one option per input because its good
# values differ (15 for text, 3 for images); both take --guidance.
OPTIONS = (
    Option("text_guidance", "Guidance", float, 15.0,
           "How closely the object follows the prompt (classifier-free guidance)",
           minimum=0.0, maximum=100.0, soft_maximum=30.0, flag="--guidance", tasks=("text",)),
    Option("image_guidance", "Guidance", float, 3.0,
           "How closely the object follows the image (classifier-free guidance)",
           minimum=0.0, maximum=100.0, soft_maximum=10.0, flag="--guidance", tasks=("image",)),
    Option("steps", "Steps", int, 64, "Diffusion steps: quality and time (each runs the model about twice)",
           minimum=1, maximum=1000, soft_maximum=128),
    Option("seed", "Seed", int, 0, "Starting noise: the same seed and options give the same object",
           minimum=0, maximum=2**31 - 1),
    Option("shap_e_resolution", "Resolution", int, 128,
           "Decoder grid points per axis: detail, time and memory (about 1 GB at 128, 8 GB at 256)",
           minimum=16, maximum=256, flag="--resolution"),
)


# The torch halves are found by name when first needed (the engine when a job runs, the
# test-model maker for make-test-model), so this declaration imports neither.
def _engine():
    return importlib.import_module(".engine", __package__)


def _test_models(out_dir, size: str, seed: int, tasks=("text", "image")) -> dict:
    made = importlib.import_module("..test_models.shap_e", __package__).make_test_models(out_dir, tasks, size, seed)
    return {SLOT_WORDS[task][0]: folder for task, folder in made.items()}


FAMILY = Family(
    identifier=SHAP_E, label="Shap-E",
    description="A text prompt or an image to a coloured object by diffusion (openai/shap-e, openai/shap-e-img2img)",
    tasks=("text", "image"), options=OPTIONS, slots={"text": (TEXT_MODEL,), "image": (IMAGE_MODEL,)},
    stages=(Stage("prepare", 0.05), Stage("encode", 0.15), Stage("diffusion", 8.0), Stage("field", 0.55),
            Stage("surface", 0.1)),
    engine=_engine, test_models=_test_models, test_model_sizes=("tiny", "full"),
    resolution_option="shap_e_resolution", seed_option="seed", test_model_name="shap-e",
)
