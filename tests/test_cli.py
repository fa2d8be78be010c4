"""`python -m backend generate` end to end with the tiny checkpoint."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.mesh.coordinates import blender_to_gltf

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "backend", "generate", *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def written(tmp_path_factory, tiny_model_dir, examples_dir):
    out = tmp_path_factory.mktemp("cli")
    meshes = {}
    for fmt in ("glb", "obj", "ply"):
        done = run_cli(examples_dir / "flamingo.png", "--model", tiny_model_dir, "--out", out, "--format", fmt, "--resolution", "48")
        assert done.returncode == 0, done.stderr
        assert f"flamingo.{fmt}" in done.stdout and "vertices" in done.stdout
        meshes[fmt] = trimesh.load(out / f"flamingo.{fmt}", force="mesh", process=False)
    return meshes


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_each_format_reopens_with_vertex_colours(written, fmt):
    mesh = written[fmt]
    assert len(mesh.vertices) > 1000 and len(mesh.faces) > 1000
    colors = mesh.visual.vertex_colors
    assert colors.shape == (len(mesh.vertices), 4)
    assert len(np.unique(colors[:, :3], axis=0)) > 10  # real colours, not a default fill


def test_glb_is_y_up_and_obj_ply_are_z_up(written):
    ply = np.asarray(written["ply"].vertices, np.float32)
    np.testing.assert_allclose(np.asarray(written["obj"].vertices), ply, atol=1e-5)
    np.testing.assert_allclose(np.asarray(written["glb"].vertices), blender_to_gltf(ply), atol=1e-5)


def test_failed_image_is_listed_and_others_still_written(tmp_path, tiny_model_dir, examples_dir):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    done = run_cli(broken, examples_dir / "robot.png", "--model", tiny_model_dir, "--out", tmp_path / "out", "--resolution", "32")
    assert done.returncode == 1
    assert "1 of 2 images failed" in done.stderr and "broken.png" in done.stderr
    assert (tmp_path / "out" / "robot.glb").is_file()
    assert not (tmp_path / "out" / "broken.glb").exists()


def test_empty_surface_suggests_a_lower_threshold(tmp_path, tiny_model_dir, examples_dir):
    done = run_cli(examples_dir / "robot.png", "--model", tiny_model_dir, "--out", tmp_path, "--resolution", "32", "--threshold", "1e9")
    assert done.returncode == 1
    assert "lower the threshold" in done.stderr


def test_unavailable_device_is_an_error_not_a_fallback(tmp_path, tiny_model_dir, examples_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run_cli(examples_dir / "robot.png", "--model", tiny_model_dir, "--out", tmp_path, "--device", "cuda")
    assert done.returncode == 2
    assert "CUDA was asked for but is not available" in done.stderr


def test_hub_id_without_network_fails_clearly(tmp_path, examples_dir, monkeypatch):
    env = dict(__import__("os").environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run(
        [sys.executable, "-m", "backend", "generate", str(examples_dir / "robot.png"), "--model", "stabilityai/TripoSR", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env,
    )
    assert done.returncode == 2
    assert "model.ckpt" in done.stderr
