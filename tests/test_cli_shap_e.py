"""`python -m backend generate` with Shap-E: prompts, a prompts file, images, and each error."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = ["--steps", "6", "--resolution", "40"]


def run_cli(*args, command="generate"):
    return subprocess.run([sys.executable, "-m", "backend", command, *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prompts_run(tmp_path_factory, shap_e_dirs):
    out = tmp_path_factory.mktemp("cli_prompts")
    prompts = out / "prompts.txt"
    prompts.write_bytes(b"a red wooden chair\n\n# a comment\nbroken \xff line\na blue teapot\n")
    done = run_cli("--prompt", "a  red wooden chair", "--prompts", prompts, "--model", shap_e_dirs["text"],
                   "--out", out, "--format", "ply", "--seed", "4", *FAST)
    return done, out


def test_prompts_become_meshes_and_a_bad_line_fails_alone(prompts_run):
    done, out = prompts_run
    assert done.returncode == 1, done.stderr
    assert sorted(p.name for p in out.glob("*.ply")) == ["a_blue_teapot.ply", "a_red_wooden_chair.ply",
                                                          "a_red_wooden_chair_2.ply"]
    assert "1 of 4 prompts failed" in done.stderr and "prompts.txt line 4: not UTF-8 text" in done.stderr
    assert "'a red wooden chair' ->" in done.stdout and "seed 4" in done.stdout


def test_same_prompt_and_seed_same_mesh_as_in_process(prompts_run, shap_e_dirs):
    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    out = prompts_run[1]
    first, second = (trimesh.load(out / name, process=False) for name in ("a_red_wooden_chair.ply", "a_red_wooden_chair_2.ply"))
    np.testing.assert_array_equal(first.vertices, second.vertices)
    np.testing.assert_array_equal(first.faces, second.faces)
    loaded = load_model(shap_e_dirs["text"], "cpu", family="SHAP_E", task="text")
    expected = generate_mesh(loaded, None, GenerateSettings(family="SHAP_E", seed=4, steps=6, shap_e_resolution=40),
                             prompt="a red wooden chair")
    np.testing.assert_allclose(np.asarray(first.vertices), expected.vertices, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(first.faces), expected.faces)


def test_an_image_with_the_shap_e_image_model(tmp_path, shap_e_dirs, examples_dir):
    done = run_cli(examples_dir / "chair.png", "--model", shap_e_dirs["image"], "--out", tmp_path, "--guidance", "4",
                   *FAST)
    assert done.returncode == 0, done.stderr
    assert "Shap-E model" in done.stderr and (tmp_path / "chair.glb").is_file()


@pytest.mark.parametrize("args, words", [
    (["--prompt", "  "], "the prompt is empty"),
    (["--prompt", "a chair", "--threshold", "5"], "--threshold: not used by Shap-E text jobs"),
    (["--prompt", "a chair", "--family", "triposr"], "TripoSR makes objects from images, not from a text prompt"),
    (["--prompt", "a chair", "--steps", "0"], "steps must be in [1, 1000], got 0"),
    (["--prompts", "missing.txt"], "no such prompts file"),
])
def test_setup_errors_exit_2_before_any_model_loads(tmp_path, shap_e_dirs, args, words):
    done = run_cli(*args, "--model", shap_e_dirs["text"], "--out", tmp_path)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert "loaded in" not in done.stderr


def test_wrong_or_missing_model_folders(tmp_path, shap_e_dirs, tiny_model_dir):
    done = run_cli("--prompt", "a chair", "--model", shap_e_dirs["image"], "--out", tmp_path)
    assert done.returncode == 2 and "image-to-3D model" in done.stderr and "needs openai/shap-e" in done.stderr
    done = run_cli("--prompt", "a chair", "--model", tiny_model_dir, "--family", "shap_e", "--out", tmp_path)
    assert done.returncode == 2 and "is a TripoSR model folder" in done.stderr
    done = run_cli("--prompt", "a chair", "--model", tmp_path / "nowhere", "--out", tmp_path)
    assert done.returncode == 2 and "does not exist: use a folder of openai/shap-e" in done.stderr
    done = run_cli("--prompt", "a chair", tiny_model_dir / "config.yaml", "--model", tiny_model_dir, "--out", tmp_path)
    assert done.returncode == 2 and "TripoSR jobs take exactly one of an image or a prompt, not both" in done.stderr


def test_make_test_model_writes_both_shap_e_folders(tmp_path):
    done = run_cli("shap-e", tmp_path, "--variant", "text", command="make-test-model")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "shap-e" / "model_index.json").is_file() and not (tmp_path / "shap-e-img2img").exists()
    done = run_cli("shap-e", tmp_path, "--size", "official", command="make-test-model")
    assert done.returncode == 2 and "--size for shap-e is one of tiny, full" in done.stderr


def test_the_folder_make_test_model_wrote_names_the_model_folders_inside(tmp_path, shap_e_dirs):
    parent = shap_e_dirs["text"].parent  # make-test-model shap-e OUT writes OUT/shap-e and OUT/shap-e-img2img
    done = run_cli("--prompt", "a chair", "--model", parent, "--out", tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{parent} holds no Shap-E text model itself, but model folders inside it" in done.stderr
    assert f"{shap_e_dirs['text']} (Shap-E text model)" in done.stderr
    assert f"{shap_e_dirs['image']} (Shap-E image model)" in done.stderr
