"""Make-It-3D inside real Blender (the bpy wheel) and through the headless script, with tiny
random-weight models and a handful of iterations; see make_it_3d_scenarios.py for what
runs inside Blender."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from harness import NEEDS_BPY, REPO, SCRIPT, blender_environment, run_scenario
from PIL import Image

pytestmark = [pytest.mark.blender, NEEDS_BPY]
SCENARIOS = Path(__file__).with_name("make_it_3d_scenarios.py")
PROMPT = "a red and blue disc"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models on a busy 2-core machine: threads only fight


@pytest.fixture(scope="module")
def m3d_models(tmp_path_factory) -> Path:
    """A folder holding Make-It-3D's four model folders: the tiny guidance models and a
    link to the repository's tiny TripoSR checkpoint."""
    from backend.test_models.make_it_3d import make_test_models

    folder = tmp_path_factory.mktemp("m3d_models")
    make_test_models(folder)
    (folder / "triposr").symlink_to(REPO / "tests" / "data" / "tiny", target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    """A disc, red on its left half and blue on its right, on transparency."""
    size = 64
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (220, 40, 30, 255)
    rgba[inside & (xx >= size / 2)] = (30, 60, 220, 255)
    path = tmp_path_factory.mktemp("picture") / "disc.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture(scope="module")
def m3d_run(extension_zip, tiny_model_dir, m3d_models, picture, tmp_path_factory):
    work = tmp_path_factory.mktemp("make_it_3d")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, m3d_models=m3d_models,
                              picture=picture)
    env.update(ONE_THREAD)
    return run_scenario("make_it_3d", work, env, SCENARIOS)


def test_the_model_choice_and_the_panel(m3d_run):
    assert "MAKE_IT_3D" in m3d_run["families"]
    assert m3d_run["unset"][0] is False and "No Stable Diffusion 2 (base) model folder" in m3d_run["unset"][1]
    assert m3d_run["readiness"][0] is True
    assert all(path.endswith(name) for path, name in zip(m3d_run["folders"].values(), (
        "stable-diffusion-2-base", "clip-vit-large-patch14", "dpt-hybrid-midas")))

    def props(case):
        return [args[0] for name, args, _ in m3d_run["panel"][case] if name == "prop" and args]

    assert {"prompt", "m3d_start", "m3d_coarse_iterations", "m3d_refine_iterations", "m3d_seed",
            "m3d_cpu_minutes"} <= set(props("make_it_3d"))
    assert "threshold" not in props("make_it_3d")
    assert "prompt" not in props("triposr") and "m3d_seed" not in props("triposr")


def test_refusals_are_sentences_and_change_nothing(m3d_run):
    assert "Make-It-3D needs a prompt with the image" in m3d_run["no_prompt_error"]
    assert "TripoSR jobs take exactly one of an image or a prompt" in m3d_run["triposr_prompt_error"]
    assert "Make-It-3D needs a GPU: about 1 minute on this CPU" in m3d_run["cpu_error"]
    assert "set the CPU Time Limit to 0" in m3d_run["cpu_error"]
    assert m3d_run["unchanged_after_errors"]


def test_the_object_carries_its_textures_prompt_and_seed_in_one_undo_step(m3d_run):
    assert m3d_run["result"] == ["FINISHED"]
    made = m3d_run["object"]
    assert made["name"] == "disc" and made["prompt"] == PROMPT and made["seed"] == 4
    assert made["settings"]["family"] == "MAKE_IT_3D" and made["settings"]["m3d_coarse_iterations"] == 6
    assert 0 < made["faces"] <= 300 and made["uv_maps"] == ["UVMap"]
    assert [image["size"] for image in made["images"]] == [[128, 128], [128, 128]]  # colour and normal maps
    assert all(image["packed"] for image in made["images"])
    assert any(link[2] == "ShaderNodeBsdfPrincipled" and link[3] == "Base Color" for link in made["links"])
    assert m3d_run["preview_image"] == [32, 32]  # the last preview: the texture stage's view
    assert "128 px textures" in m3d_run["status"]
    assert m3d_run["after_generate"] != m3d_run["before_generate"]
    assert m3d_run["after_undo"] == m3d_run["before_generate"]
    assert m3d_run["panel_object"]["prompt"] == "a disc"


def test_progress_words_previews_and_cancel(m3d_run):
    followed = m3d_run["followed"]
    assert followed["end"] == "result" and followed["previews"] == 5
    assert followed["last_preview"] == ["texture", 3, [32, 32, 3]]
    assert followed["lines"] and all(line.startswith("disc: ") and ", loss " in line for line in followed["lines"])
    cancel = m3d_run["cancel"]
    assert cancel["end"] == "cancelled" and cancel["unchanged"]
    assert cancel["label"].startswith("disc: coarse 2/500, loss ")


def test_headless_image_with_a_prompt(extension_zip, m3d_models, picture, tmp_path):
    env = {**blender_environment(tmp_path / "home"), **ONE_THREAD}  # a fresh Blender: the script installs the extension
    fast = ["--coarse-iterations", "6", "--refine-iterations", "3", "--render-size", "24", "--resolution", "32",
            "--preset", "custom", "--faces", "300", "--texture", "128"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--input", str(picture), "--prompt", PROMPT, "--model", str(m3d_models),
         "--family", "MAKE_IT_3D", *fast, "--export", str(tmp_path / "out"), "--format", "glb"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "disc: coarse" in done.stdout and "disc: texture" in done.stdout  # background mode's progress lines
    scene = trimesh.load(tmp_path / "out" / "disc.glb", force="mesh", process=False)
    assert 0 < len(scene.faces) <= 300 and scene.visual.material.baseColorTexture.size == (128, 128)
    done = subprocess.run([sys.executable, str(SCRIPT), "--", "--input", str(picture), "--model", str(m3d_models),
                           "--family", "MAKE_IT_3D"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Make-It-3D needs a prompt with the image" in done.stderr
    assert not os.path.exists(tmp_path / "out" / "disc_2.glb")
