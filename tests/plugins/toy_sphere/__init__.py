"""A test-only model family, plugged in from outside the project: an analytic sphere whose
colour follows its normal. It proves the family contract (backend/families/): registered
only through the environment (IMAGE_TO_3D_FAMILIES=toy_sphere with this folder's parent on
PYTHONPATH), it shows up in the CLI, the worker, the server and Blender, and its surface
goes through the shared mesh stage, with no line of shared code written for it.

This module is its declaration (standard library only, built from the classes the
registry hands over); engine.py is its torch half.
"""

import json
from pathlib import Path

IDENTIFIER = "TOY_SPHERE"
MODEL_FILE = "toy_sphere.json"
HUB_REPO = "example/toy-sphere"


def holds(folder: Path) -> bool:
    return (Path(folder) / MODEL_FILE).is_file()


def checker(api):
    def check(folder: Path) -> Path:
        try:
            settings = json.loads((Path(folder) / MODEL_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise api.ModelNotFoundError(f"{folder} lacks a readable {MODEL_FILE}: {exc}") from None
        if not isinstance(settings, dict):
            raise api.CheckpointError(f"{folder / MODEL_FILE} does not hold a JSON object")
        return Path(folder)

    return check


def make_test_models(out_dir, size: str, seed: int, tasks=("image",)) -> dict:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_text(json.dumps({"seed": seed}))
    return {"toy_sphere": folder}


def declare(api):
    slot = api.ModelSlot(
        identifier="toy_sphere", label="toy sphere model", preference="toy_sphere_model_path", hub_repo=HUB_REPO,
        holds=holds, check=checker(api), contents=MODEL_FILE, described=f"a toy sphere folder ({MODEL_FILE})",
        hint=f"put a {MODEL_FILE} there ('python -m backend make-test-model toy-sphere DIR')",
        hub_files=lambda: ([MODEL_FILE], []),
    )
    options = (
        api.Option("sphere_radius", "Sphere Radius", float, 0.5, "Radius of the sphere", minimum=0.1, maximum=0.9),
        # shares --resolution with the other families' grid options
        api.Option("sphere_resolution", "Resolution", int, 32, "Grid points per axis", minimum=8, maximum=128,
                   flag="--resolution"),
    )
    return api.Family(
        identifier=IDENTIFIER, label="Toy Sphere", description="A test family: a sphere coloured by its normal",
        tasks=("image",), options=options, slots={"image": (slot,)},
        stages=(api.Stage("prepare", 0.1), api.Stage("field", 0.5), api.Stage("surface", 0.1)),
        engine=lambda: __import__("toy_sphere.engine", fromlist=["run"]), test_models=make_test_models,
        resolution_option="sphere_resolution", test_model_name="toy-sphere",
    )
