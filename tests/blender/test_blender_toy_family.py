"""A model family plugged in from the tests (tests/plugins/toy_sphere) inside real Blender:
the add-on builds its model choice, options, preferences and jobs from the registry, so
the family needs no line of the add-on (tests/test_toy_family.py covers the CLI, worker
and server)."""

import subprocess
import sys
from pathlib import Path

import pytest
from harness import NEEDS_BPY, REPO, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]
PLUGINS = REPO / "tests" / "plugins"


@pytest.fixture(scope="module")
def toy_run(extension_zip, tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("toy")
    toy_model = work / "toy-sphere"
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, toy_model=toy_model,
                              picture=REPO / "assets" / "example.png")
    env.update(IMAGE_TO_3D_FAMILIES="toy_sphere", IMAGE_TO_3D_FAMILY_PATH=str(PLUGINS))
    made = subprocess.run([sys.executable, "-m", "backend", "make-test-model", "toy-sphere", str(toy_model)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return run_scenario("toy", work, env, Path(__file__).with_name("toy_scenarios.py"))


def test_the_plugged_in_family_is_in_the_model_choice_preferences_and_panel(toy_run):
    assert toy_run["families"] == ["TRIPOSR", "SHAP_E", "MAKE_IT_3D", "ONE2345", "TOY_SPHERE"]
    assert toy_run["preference"] is True
    assert toy_run["unset_readiness"][0] is False and "No toy sphere model folder" in toy_run["unset_readiness"][1]
    assert toy_run["readiness"][0] is True
    drawn = [args[0] for name, args, _ in toy_run["panel"] if name == "prop" and args]
    assert "sphere_radius" in drawn and "sphere_resolution" in drawn and "threshold" not in drawn
    folders = [args for name, args, _ in toy_run["preferences_drawn"] if name == "prop"]
    assert ["toy_sphere_model_path"] in folders


def test_generate_makes_the_sphere_through_the_mesh_stage_in_one_undo_step(toy_run):
    assert toy_run["result"] == ["FINISHED"]
    made = toy_run["object"]
    assert 0 < made["faces"] <= 300 and made["uv_maps"] and made["material"]
    assert made["settings"]["family"] == "TOY_SPHERE" and made["settings"]["sphere_radius"] == pytest.approx(0.4)
    assert toy_run["after_undo"] == toy_run["before"]


def test_a_wrong_folder_is_named(toy_run):
    assert "is a TripoSR model folder" in toy_run["wrong_folder_error"]
