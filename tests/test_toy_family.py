"""A family plugged in from outside the project (tests/plugins/toy_sphere: a sphere coloured
by its normal) through the CLI, the worker and the server, with no shared code written
for it: the family contract of backend/families/ at work. Blender's side is in
tests/blender/test_blender_toy_family.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"
PICTURE = REPO / "assets" / "example.png"
GRID_STEP = 2.0 / 39  # the toy's grid at --resolution 40 spans [-1, 1]


def toy_environment() -> dict:
    return {**os.environ, "IMAGE_TO_3D_FAMILIES": "toy_sphere", "IMAGE_TO_3D_FAMILY_PATH": str(PLUGINS)}


def backend_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, env=env or toy_environment(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy") / "toy-sphere"
    done = backend_cli("make-test-model", "toy-sphere", folder)
    assert done.returncode == 0, done.stderr
    assert f"random-weight toy sphere model (meaningless shapes) in {folder}" in done.stdout
    return folder


def test_the_plugged_in_family_appears_in_the_cli_help():
    generate = backend_cli("generate", "--help").stdout
    assert "TOY_SPHERE" in generate and "--sphere-radius" in generate
    assert "32 (Toy Sphere)" in generate  # its grid option shares --resolution with the others'
    assert "toy-sphere" in backend_cli("make-test-model", "--help").stdout
    assert "example/toy-sphere" in backend_cli("serve", "--help").stdout


def test_without_the_plugin_the_family_does_not_exist():
    plain = {key: value for key, value in os.environ.items() if key != "IMAGE_TO_3D_FAMILIES"}
    assert "TOY_SPHERE" not in backend_cli("generate", "--help", env=plain).stdout


def test_a_broken_plugin_is_named():
    env = {**toy_environment(), "IMAGE_TO_3D_FAMILIES": "no_such_family_module"}
    done = backend_cli("generate", "--help", env=env)
    assert done.returncode != 0 and "IMAGE_TO_3D_FAMILIES names 'no_such_family_module'" in done.stderr


def test_cli_makes_the_sphere_raw_and_through_the_mesh_stage(toy_model, tmp_path):
    done = backend_cli("generate", PICTURE, "--model", toy_model, "--out", tmp_path / "raw", "--format", "ply",
                       "--sphere-radius", "0.4", "--resolution", "40")
    assert done.returncode == 0, done.stderr
    raw = trimesh.load(tmp_path / "raw" / "example.ply", process=False)
    radius = np.linalg.norm(raw.vertices, axis=1)
    assert abs(radius.mean() - 0.4) < GRID_STEP and radius.max() - radius.min() < 2 * GRID_STEP
    expected = np.rint((raw.vertices / radius[:, None] + 1) / 2 * 255)
    assert np.abs(raw.visual.vertex_colors[:, :3] - expected).max() <= 1  # colour follows the normal

    done = backend_cli("generate", PICTURE, "--model", toy_model, "--out", tmp_path / "asset", "--faces", "300",
                       "--texture", "64", "--sphere-radius", "0.4", "--resolution", "40")
    assert done.returncode == 0, done.stderr
    asset = trimesh.load(tmp_path / "asset" / "example.glb", force="mesh", process=False)
    assert 0 < len(asset.faces) <= 300 and asset.visual.uv is not None
    assert "64 px textures" in done.stdout + done.stderr  # the summary line


def test_a_folder_of_the_plugged_in_family_is_named_as_such(toy_model, tmp_path):
    done = backend_cli("generate", PICTURE, "--model", toy_model, "--family", "TRIPOSR", "--out", tmp_path)
    assert done.returncode == 2 and "is a toy sphere folder (toy_sphere.json), not TripoSR" in done.stderr


@pytest.mark.slow
def test_worker_and_server_run_the_plugged_in_family(toy_model, tmp_path):
    done = subprocess.run([sys.executable, str(PLUGINS / "toy_clients.py"), str(toy_model), str(PICTURE), str(tmp_path)],
                          cwd=REPO, env=toy_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    facts = json.loads(done.stdout.splitlines()[-1])
    for where in ("worker", "server"):
        raw, asset = facts[where]["raw"], facts[where]["asset"]
        assert abs(raw["radius_min"] - 0.4) < 2 * GRID_STEP and abs(raw["radius_max"] - 0.4) < 2 * GRID_STEP
        assert raw["color_error"] <= 1 and not raw["uvs"]
        assert raw["expected_stages"] == ["prepare", "field", "surface", "colors"]
        assert 0 < asset["faces"] <= 300 and asset["uvs"] and asset["texture"] == [64, 64, 3]
        for job in (raw, asset):  # the worker reports every stage; a server's status polls may skip some
            seen = job["stages"]
            assert seen == job["expected_stages"] if where == "worker" else seen == sorted(seen, key=job["expected_stages"].index)
    served = facts["server_version"]["model"]["models"]
    assert [(m["family"], m["task"]) for m in served] == [("TOY_SPHERE", "image")]
