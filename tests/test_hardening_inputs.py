"""Inputs that used to pass without a word (issue 24): --faces 4 and 5 giving more
triangles, prompts of invisible characters, a prompt-cut note starting with half a
character, non-finite pixels from Blender's side of the worker pipe. Through the CLI and
the worker, as the cases name them; Blender's side is in tests/blender."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from backend.bridge.errors import InputImageError, PromptError
from backend.bridge.prompts import MAX_RAW_PROMPT_CHARACTERS, clean_prompt, read_prompts

REPO_ROOT = Path(__file__).resolve().parents[1]
PICTURE = REPO_ROOT / "assets" / "example.png"
FAST = ["--steps", "2", "--resolution", "16"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "backend", "generate", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- at most N triangles


@pytest.mark.parametrize("faces, resolution", [(4, 128), (5, 64)])  # 10 and 12 triangles before
def test_faces_4_and_5_give_at_most_that_many_triangles(tmp_path, tiny_model_dir, faces, resolution):
    done = run_cli(PICTURE, "--model", tiny_model_dir, "--out", tmp_path, "--resolution", resolution,
                   "--faces", faces, "--format", "ply")
    assert done.returncode == 0, done.stderr
    mesh = trimesh.load(tmp_path / "example.ply", process=False)
    assert 1 <= len(mesh.faces) <= faces


def test_decimation_keeps_its_promise_on_parts_the_collapse_cannot_fold():
    """Twenty separate tetrahedra (80 faces): no edge collapse brings them to 10."""
    from backend.mesh.asset.decimate import decimate, quadric_decimate

    tetra = trimesh.Trimesh(vertices=np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
                            faces=[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    parts = trimesh.util.concatenate([tetra.copy().apply_translation([3 * i, 0, 0]) for i in range(20)])
    for target in (4, 5, 10, 79):
        low_v, low_f = quadric_decimate(parts.vertices, parts.faces, target)
        assert 1 <= len(low_f) <= target and low_f.max() < len(low_v)
    for target in (20, 40):  # decimate() itself, where it does not cluster first
        low_v, low_f = decimate(torch.tensor(parts.vertices, dtype=torch.float32), torch.tensor(parts.faces).long(),
                                target)
        assert 1 <= low_f.shape[0] <= target and int(low_f.max()) < low_v.shape[0]


# ---------------------------------------------------------------- prompts


@pytest.mark.parametrize("prompt", ["\u200b", "\ufeff", "\u200b\u2060\u200d", "\u3164", "\u0301"])
def test_a_prompt_of_invisible_characters_is_refused_before_any_work(tmp_path, shap_e_dirs, prompt):
    done = run_cli("--prompt", prompt, "--model", shap_e_dirs["text"], "--out", tmp_path, *FAST)
    assert done.returncode == 2
    assert "the prompt has no visible characters" in done.stderr
    assert not list(tmp_path.iterdir())  # no prompt.glb


def test_visible_text_around_invisible_characters_still_works():
    assert clean_prompt("a\u200bchair") == "a\u200bchair"
    assert clean_prompt("\ufeffa red chair") == "\ufeffa red chair"


def test_a_prompts_file_s_invisible_line_fails_alone(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a red chair\n\u200b\u200b\n", encoding="utf-8")
    lines = read_prompts(path)
    assert [line.problem is None for line in lines] == [True, False]
    assert "no visible characters" in lines[1].problem


def test_a_huge_raw_prompt_is_refused_before_it_is_cleaned():
    with pytest.raises(PromptError, match="characters long"):
        clean_prompt(" " * MAX_RAW_PROMPT_CHARACTERS + "a chair")
    assert clean_prompt(" " * 5000 + "a chair") == "a chair"  # what cleaning shortens is still fine


def test_the_prompt_cut_note_starts_with_a_whole_character(tmp_path, shap_e_dirs):
    """CLIP reads bytes: the 76th token can fall inside an emoji, whose rest decodes as
    replacement characters."""
    prompt = "a " * 74 + "\U0001f600\u00e9\U0001f600 chair"
    done = run_cli("--prompt", prompt, "--model", shap_e_dirs["text"], "--out", tmp_path, *FAST)
    assert done.returncode == 0, done.stderr
    note = next(line for line in done.stderr.splitlines() if "this end was ignored" in line)
    ignored = note.split('this end was ignored: "', 1)[1]
    assert ignored.startswith("\u00e9") and "\ufffd" not in ignored


# ---------------------------------------------------------------- pixels


def nan_pixels() -> np.ndarray:
    pixels = np.zeros((64, 64, 4), np.float32)
    pixels[16:48, 16:48] = (0.8, 0.3, 0.2, 1.0)
    pixels[20, 20, 0] = np.nan
    pixels[30, 30:33, 1] = np.inf
    return pixels


def test_non_finite_pixels_in_a_worker_frame_are_refused(tmp_path, tiny_model_dir):
    from backend.bridge.client import WorkerClient
    from backend.bridge.settings import GenerateSettings

    with WorkerClient(sys.executable, str(tiny_model_dir), "cpu", log_dir=str(tmp_path)) as client:
        with pytest.raises(InputImageError, match="has 4 pixels that are not numbers"):
            client.run(GenerateSettings(resolution=32), image_pixels=nan_pixels(), timeout=120)
        fine = nan_pixels()
        fine[~np.isfinite(fine)] = 0.5
        assert len(client.run(GenerateSettings(resolution=32), image_pixels=fine, timeout=120).faces) > 0


def test_a_float_tiff_with_nan_is_refused(tmp_path, tiny_model_dir):
    from PIL import Image

    grey = np.full((64, 64), 0.5, np.float32)
    grey[10, 10] = np.nan
    Image.fromarray(grey, "F").save(tmp_path / "float.tif")
    done = run_cli(tmp_path / "float.tif", "--model", tiny_model_dir, "--out", tmp_path / "out", "--resolution", "32",
                   "--no-remove-bg")
    assert done.returncode == 1 and "1 pixel that is not a number" in done.stderr
