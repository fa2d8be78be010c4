"""One-2-3-45 inside real Blender with the tiny random models: the family in the model
choice, its three model folders in the preferences, its options and CPU note in the
panel, Generate making the in-process object with the views' contact sheet kept as its
model input, and the headless script's folder run (the batch operator) taking the family
from the --model folder (tests/one2345/ covers the CLI, worker and server)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from harness import NEEDS_BPY, SCRIPT, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]


@pytest.fixture(scope="module")
def one2345_run(extension_zip, tiny_model_dir, one2345_models, views_picture, tmp_path_factory):
    work = tmp_path_factory.mktemp("one2345")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, one2345_models=one2345_models,
                              picture=views_picture)
    facts = run_scenario("one2345", work, env, Path(__file__).with_name("one2345_scenarios.py"))
    return facts, np.load(work / "one2345.npz")


def test_the_family_its_folders_options_and_cpu_note_are_in_the_add_on(one2345_run):
    facts, _ = one2345_run
    assert "ONE2345" in facts["families"] and facts["preferences"] == [True, True, True]
    assert facts["unset_readiness"][0] is False and "Zero123-XL" in facts["unset_readiness"][1]
    assert [Path(folder).name for folder in facts["folders"]] == ["zero123_xl", "loftr", "sparseneus"]
    assert facts["readiness"][0] is True
    drawn = [args[0] for name, args, _ in facts["panel"] if name == "prop" and args]
    for option in ("views_estimate_elevation", "views_elevation", "views_steps", "views_guidance", "views_seed",
                   "one2345_resolution", "one2345_cpu_minutes"):
        assert option in drawn
    assert "threshold" not in drawn and "steps" not in drawn  # TripoSR's and Shap-E's
    labels = " ".join(text or "" for name, _, text in facts["panel"] if name == "label")
    assert "On a CPU the 32 views take long" in labels


def test_generate_makes_the_in_process_object_and_keeps_the_views_beside_it(one2345_run, one2345_reference):
    facts, arrays = one2345_run
    assert facts["result"] == ["FINISHED"]
    np.testing.assert_array_equal(arrays["faces"], one2345_reference.faces)
    np.testing.assert_allclose(arrays["vertices"], one2345_reference.vertices, atol=1e-6)
    np.testing.assert_array_equal(arrays["colors"], one2345_reference.colors)
    made = facts["object"]
    assert made["seed"] == 5
    assert made["model_input"].endswith("(model input)") and made["model_input"] in made["new_images"]
    assert made["model_input_size"] == [5 * 128, 9 * 128]  # the contact sheet: the input, then 8 rows of views


@pytest.mark.slow
def test_the_headless_script_runs_a_folder_with_the_family_of_its_model_folder(extension_zip, one2345_models,
                                                                               views_picture, one2345_reference,
                                                                               tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(views_picture, inputs / views_picture.name)
    env = blender_environment(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--input", str(inputs), "--model", str(one2345_models), "--device", "cpu",
         "--no-estimate-elevation", "--elevation", "20", "--steps", "3", "--seed", "5", "--resolution", "32",
         "--preset", "raw", "--export", str(tmp_path / "out"), "--format", "ply"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    written = trimesh.load(tmp_path / "out" / f"{views_picture.stem}.ply", process=False)
    assert len(written.faces) == len(one2345_reference.faces)
    resting = one2345_reference.vertices - [0.0, 0.0, one2345_reference.vertices[:, 2].min()]  # on the cursor
    assert np.allclose(np.sort(written.vertices, axis=0), np.sort(resting, axis=0), atol=1e-5)
