"""Make-It-3D as a model family: a picture and a prompt -> an object refined with a diffusion
prior, on a GPU, in minutes. Standard library only (the engine, engine.py, imports torch,
diffusers and transformers when a job runs).

An image job needs four model folders: TripoSR's (the coarse start: the very same slot as
the TripoSR family's, one folder and one preference for both), Stable Diffusion 2 base,
CLIP ViT-L/14 and DPT-Hybrid. Its engine runs the shared mesh stage itself, on the user's
settings, and then refines the texture on that mesh: so it declares finishing_stages and
hands the finished mesh back (backend/families/contract.py).
"""

import functools
import importlib

from ..bridge.option import Option
from ..families.contract import Family, ModelSlot, Stage
from ..triposr.declaration import MODEL as TRIPOSR_MODEL
from . import folders

MAKE_IT_3D = "MAKE_IT_3D"

# slot id (folders.SLOTS) -> (add-on preference, download size in float32 safetensors)
SLOT_WORDS = {"stable_diffusion": ("sd2_model_path", "5.2 GB"), "clip": ("clip_model_path", "1.7 GB"),
              "depth": ("dpt_model_path", "0.5 GB")}
CONTENTS = {"stable_diffusion": "model_index.json and unet/, vae/, text_encoder/, tokenizer/, scheduler/ "
                                "(diffusers' layout, safetensors)",
            "clip": "config.json and model.safetensors (transformers' layout)",
            "depth": "config.json and model.safetensors (transformers' layout)"}


def _slot(slot_id: str) -> ModelSlot:
    preference, size = SLOT_WORDS[slot_id]
    repo = folders.HUB_REPOS[slot_id]
    revision = folders.HUB_REVISIONS[slot_id]
    return ModelSlot(
        identifier=slot_id, label=f"{folders.LABELS[slot_id]} model", preference=preference, hub_repo=repo,
        holds=functools.partial(_holds, slot=slot_id), check=functools.partial(folders.check_folder, slot=slot_id),
        contents=CONTENTS[slot_id], described=f"a {folders.LABELS[slot_id]} folder ({repo})",
        hint=folders.hint(slot_id), hub_files=functools.partial(folders.hub_files, slot_id), download_size=size,
        licence=folders.LICENCES[slot_id], hub_revision=None if revision == "main" else revision,
    )


def _holds(folder, slot: str) -> bool:
    """True when the folder's files say it is this slot's model (complete or not: the check
    then says what is missing)."""
    try:
        folders.check_folder(folder, slot)
    except folders.CheckpointError:
        return True  # the right kind of folder, incomplete or with pickles only
    except (folders.ModelNotFoundError, folders.WrongModelError):
        return False
    return True


STABLE_DIFFUSION, CLIP, DEPTH = (_slot(slot_id) for slot_id in folders.SLOTS)

# The options a user would change (the rest: backend/make_it_3d/options.py RefineOptions).
# Names carry the family's prefix; flags may be shared (--seed, --guidance, --resolution).
START = Option("m3d_start", "Start From", str, "TRIPOSR", "What the coarse stage optimises",
               choices=(("TRIPOSR", "TripoSR's Object", "TripoSR's result for the picture: a few minutes (ours)"),
                        ("EMPTY", "Empty Field", "An empty field, as the paper does: slow (thousands of iterations)")),
               flag="--start")
CPU_LIMIT = Option("m3d_cpu_minutes", "CPU Time Limit", float, 20.0,
                   "Off a GPU, refuse a job that would take longer than this many minutes (0: run it whatever it takes)",
                   minimum=0.0, soft_maximum=600.0, flag="--cpu-minutes")


def _iterations(stage: str, label: str, default: int, description: str) -> Option:
    return Option(f"m3d_{stage}_iterations", label, int, default, description, minimum=0, maximum=20000,
                  soft_maximum=2000, flag=f"--{stage}-iterations")


OPTIONS = (
    START,
    _iterations("coarse", "Coarse Iterations", 400,
                "Iterations of the coarse stage (shape and colours by volume rendering; the paper: 7000 from empty)"),
    _iterations("refine", "Texture Iterations", 300, "Iterations refining the texture of the unseen sides (the paper: 3000)"),
    Option("m3d_seed", "Seed", int, 0, "Cameras, noise and timesteps: the same seed and options give the same object",
           minimum=0, maximum=2**31 - 1, flag="--seed"),
    Option("m3d_guidance", "Guidance", float, 11.0,
           "How closely the unseen sides follow the prompt (Stable Diffusion's classifier-free guidance)",
           minimum=1.0, maximum=100.0, soft_maximum=30.0, flag="--guidance"),
    Option("m3d_render_size", "Render Size", int, 128,
           "Pixels of each view the coarse stage renders (the paper's 128): detail and time",
           minimum=16, maximum=512, soft_maximum=256, flag="--render-size"),
    Option("m3d_resolution", "Resolution", int, 256, "Marching-cubes grid points per axis of the refined shape",
           minimum=32, maximum=512, flag="--resolution"),
    Option("m3d_preview_every", "Preview Every", int, 25, "Iterations between preview images of the object",
           minimum=1, zero_means="no previews", soft_maximum=200, flag="--preview-every"),
    CPU_LIMIT,
    Option("m3d_remove_background", "Remove Background", bool, True,
           "Cut the object out of opaque pictures (rembg); the outline is the reference view's mask",
           flag="--no-remove-bg"),
)


def _engine():
    return importlib.import_module(".engine", __package__)


TRIPOSR_TEST_SIZES = {"tiny": "smoke", "full": "official"}


def _test_models(out_dir, size: str, seed: int, tasks=("image",)) -> dict:
    """One folder per slot in out_dir (TripoSR's in out_dir/triposr), so `--model out_dir` works."""
    from pathlib import Path

    maker = importlib.import_module("..test_models.make_it_3d", __package__)
    tripo = importlib.import_module("..test_models.triposr", __package__)
    made = {TRIPOSR_MODEL.identifier: tripo.make_smoke_checkpoint(Path(out_dir) / "triposr",
                                                                  TRIPOSR_TEST_SIZES[size], seed)}
    made.update(maker.make_test_models(out_dir, size, seed))
    return made


FAMILY = Family(
    identifier=MAKE_IT_3D, label="Make-It-3D",
    description="A picture and a prompt to a refined textured object with a diffusion prior (GPU, minutes)",
    tasks=("image",), options=OPTIONS, slots={"image": (TRIPOSR_MODEL, STABLE_DIFFUSION, CLIP, DEPTH)},
    # prepare, encode and surface weigh what they weigh for the other families (one table of weights)
    stages=(Stage("prepare", 0.05), Stage("encode", 0.15), Stage("depth", 0.2), Stage("coarse", 30.0),
            Stage("surface", 0.1)),
    finishing_stages=(Stage("cleanup", 0.03), Stage("decimate", 0.03), Stage("colors", 0.15), Stage("unwrap", 0.03),
                      Stage("bake", 0.2), Stage("texture", 20.0)),
    engine=_engine, test_models=_test_models, test_model_sizes=("tiny", "full"),
    resolution_option="m3d_resolution", seed_option="m3d_seed", test_model_name="make-it-3d",
    prompt_with_image=True,
)
