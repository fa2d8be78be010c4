"""Text to 3D inside real Blender (the bpy wheel) and through the headless script, with the
tiny random-weight Shap-E folders; see text_scenarios.py for what runs inside Blender."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from harness import NEEDS_BPY, SCRIPT, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]
SCENARIOS = Path(__file__).with_name("text_scenarios.py")
CHAIR = "a red wooden chair"


@pytest.fixture(scope="module")
def text_run(extension_zip, tiny_model_dir, shap_e_dirs, examples_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("text")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, examples=examples_dir,
                              shap_e_text=shap_e_dirs["text"], shap_e_image=shap_e_dirs["image"])
    return run_scenario("text", work, env, SCENARIOS), np.load(work / "text.npz")


@pytest.fixture(scope="module")
def reference(shap_e_dirs):
    """The backend's own mesh for the scenario's prompt and settings, in this process."""
    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(shap_e_dirs["text"], "cpu", family="SHAP_E", task="text")
    settings = GenerateSettings(family="SHAP_E", steps=6, shap_e_resolution=40, seed=3)
    return generate_mesh(loaded, None, settings, prompt=CHAIR)


def test_a_prompt_becomes_the_backend_s_object(text_run, reference):
    facts, arrays = text_run
    assert facts["result"] == ["FINISHED"]
    np.testing.assert_array_equal(arrays["first_faces"], reference.faces)
    np.testing.assert_allclose(arrays["first_vertices"], reference.vertices, atol=1e-6)
    np.testing.assert_array_equal(arrays["first_colors"], reference.colors)
    for key in ("vertices", "faces", "colors"):  # the same seed gives the same mesh again
        np.testing.assert_array_equal(arrays[f"again_{key}"], arrays[f"first_{key}"])


def test_the_object_carries_its_prompt_and_seed(text_run):
    obj = text_run[0]["object"]
    assert obj["name"] == CHAIR and obj["prompt"] == CHAIR and obj["seed"] == 3
    assert obj["source"] == CHAIR and obj["settings"]["family"] == "SHAP_E" and obj["settings"]["steps"] == 6
    assert obj["color_attribute"]["names"] == ["Color"] and not obj["model_input"]  # a prompt has no picture
    assert obj["location"] == [0.0, 0.0, 0.0]


def test_one_undo_step_and_no_torch(text_run):
    facts = text_run[0]
    assert facts["after_generate"] != facts["before_generate"] and facts["after_undo"] == facts["before_generate"]
    assert facts["torch_modules"] == []


def test_the_panel_s_text_source_uses_shap_e(text_run):
    facts = text_run[0]
    made = facts["panel_object"]
    assert made["prompt"] == "a blue teapot" and made["settings"]["family"] == "SHAP_E"
    assert made["settings"]["steps"] == 4 and made["settings"]["shap_e_resolution"] == 32
    assert "the prompt is empty" in facts["empty_prompt_error"]


def test_the_panel_draws_each_family_s_own_options(text_run):
    panel = text_run[0]["panel"]

    def props(case):
        return [args[0] for name, args, _ in panel[case] if name == "prop"]

    assert "Model: Shap-E" in [text for name, _, text in panel["text"] if name == "label"]
    assert {"prompt", "text_guidance", "steps", "seed", "shap_e_resolution"} <= set(props("text"))
    assert "threshold" not in props("text") and "image_guidance" not in props("text") and "family" not in props("text")
    assert {"family", "image_guidance", "steps", "seed", "shap_e_resolution"} <= set(props("shap_e_image"))
    assert {"family", "resolution", "threshold", "remove_background"} <= set(props("triposr"))
    assert "steps" not in props("triposr")


def test_preferences_hold_a_model_folder_per_family_with_readiness(text_run):
    facts = text_run[0]
    readiness = facts["readiness"]
    assert readiness["text"][0] is True and readiness["image"][0] is True
    assert readiness["wrong_family"][0] is False and "is a TripoSR model folder" in readiness["wrong_family"][1]
    assert readiness["unset"][0] is False and "No Shap-E text model folder" in readiness["unset"][1]
    props = [args[0] for name, args, _ in facts["preferences_drawn"] if name == "prop"]
    assert {"model_path", "shap_e_model_path", "shap_e_image_model_path", "default_steps", "default_text_guidance"} <= set(props)


def test_errors_are_sentences_and_change_nothing(text_run):
    facts = text_run[0]
    assert "No Shap-E text model folder" in facts["missing_model_error"]
    assert "TripoSR makes objects from images, not from a text prompt" in facts["triposr_prompt_error"]
    assert "image-to-3D model" in facts["wrong_task_error"] and "needs openai/shap-e" in facts["wrong_task_error"]
    assert facts["unchanged_after_errors"]


def test_an_image_with_shap_e_through_the_mesh_stage(text_run):
    made = text_run[0]["image_object"]
    assert made["name"] == "flamingo" and made["settings"]["family"] == "SHAP_E" and made["model_input"]
    assert made["prompt"] is None and made["seed"] == 0
    assert made["settings"]["texture_size"] == 256 and made["faces"] <= 1000 and made["uv_maps"]


def test_cancel_during_the_diffusion(text_run):
    assert text_run[0]["cancel"] == {"end": "cancelled", "stage": "diffusion", "unchanged": True}


def test_a_prompts_batch_with_one_bad_line(text_run):
    batch = text_run[0]["batch"]
    assert batch["succeeded"] == ["a red wooden chair", "a blue teapot"]
    assert batch["failed"] == [["line 2", "not UTF-8 text"]]
    assert batch["collection"] == "Image to 3D: prompts" and len({tuple(at) for at in batch["locations"]}) == 2
    assert "2 of 3 converted" in batch["summary"] and "line 2 (not UTF-8 text)" in batch["summary"]
    assert "prompts: " in batch["log"] and "FAILED  line 2: not UTF-8 text" in batch["log"]


def test_headless_prompts(extension_zip, shap_e_dirs, reference, tmp_path):
    env = blender_environment(tmp_path / "home")  # a fresh Blender: the script installs the extension
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--prompt", CHAIR, "--prompt", "  ", "--model", str(shap_e_dirs["text"]),
         "--steps", "6", "--resolution", "40", "--seed", "3", "--no-rest-on-cursor", "--preset", "raw",
         "--export", str(tmp_path / "out"), "--format", "ply", "--save", str(tmp_path / "text.blend")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"{CHAIR!r} -> {CHAIR}" in done.stdout
    assert "FAILED '  ': " in done.stderr and "the prompt is empty" in done.stderr
    mesh = trimesh.load(tmp_path / "out" / "a_red_wooden_chair.ply", process=False)
    np.testing.assert_allclose(np.asarray(mesh.vertices), reference.vertices, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mesh.faces), reference.faces)
    assert (tmp_path / "text.blend").is_file()
    done = subprocess.run([sys.executable, str(SCRIPT), "--", "--prompt", CHAIR, "--model", str(shap_e_dirs["text"]),
                           "--threshold", "3"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--threshold: not used by Shap-E jobs" in done.stderr


def test_headless_prompts_file_with_a_bad_line(extension_zip, shap_e_dirs, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"a red wooden chair\n\n\xff not text\na blue teapot\n")
    env = blender_environment(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--prompts", str(prompts), "--model", str(shap_e_dirs["text"]),
         "--steps", "4", "--resolution", "32", "--preset", "raw", "--export", str(tmp_path / "out")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "FAILED line 3: not UTF-8 text" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.glb")) == ["a_blue_teapot.glb", "a_red_wooden_chair.glb"]
