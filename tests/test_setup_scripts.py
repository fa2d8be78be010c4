"""What scripts/setup.sh stands on: the smoke checkpoint, the example image, the
extension install into a Blender, the preview render, and the scripts' syntax."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.bridge.settings import GenerateSettings
from backend.pipeline import generate_mesh, load_model
from backend.test_models.triposr import OFFICIAL_CONFIG, _config_document, is_smoke_checkpoint, make_smoke_checkpoint
from backend.triposr.checkpoint import load_tripo
from backend.triposr.config import load_config, parse_config
from backend.triposr.model import TripoSR

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "assets" / "example.png"


def state_digest(model_dir: Path) -> str:
    state = torch.load(model_dir / "model.ckpt", weights_only=True)
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    return make_smoke_checkpoint(tmp_path_factory.mktemp("smoke"))


def test_smoke_checkpoint_loads_strictly_and_says_what_it_is(smoke_dir):
    load_tripo(smoke_dir)  # strict names and shapes
    assert is_smoke_checkpoint(smoke_dir)
    assert "RANDOM WEIGHTS" in (smoke_dir / "SMOKE_TEST_CHECKPOINT.txt").read_text()


def test_smoke_checkpoint_is_the_same_on_every_run(smoke_dir, tmp_path):
    again = make_smoke_checkpoint(tmp_path / "again")
    assert state_digest(again) == state_digest(smoke_dir)
    other_seed = make_smoke_checkpoint(tmp_path / "seed1", seed=1)
    assert state_digest(other_seed) != state_digest(smoke_dir)


def test_smoke_checkpoint_is_reused_when_present(smoke_dir):
    before = (smoke_dir / "model.ckpt").stat().st_mtime_ns
    make_smoke_checkpoint(smoke_dir)
    assert (smoke_dir / "model.ckpt").stat().st_mtime_ns == before


def test_smoke_checkpoint_gives_a_surface_for_the_example(smoke_dir):
    loaded = load_model(smoke_dir, device="cpu")
    result = generate_mesh(loaded, EXAMPLE, GenerateSettings(resolution=32))
    grid_points = 32 ** 3
    assert 100 < len(result.vertices) < grid_points, "the demo blob is empty or fills the box"
    assert len(result.faces) > 100


def test_official_smoke_layout_matches_the_official_checkpoint(fullsize_data_dir):
    """--size official writes exactly the official names and shapes (checked on the meta
    device: the real file would be 1.7 GB)."""
    import json

    official = load_config(fullsize_data_dir / "config.yaml")
    ours = parse_config(_config_document("official"))
    assert ours == official
    keys = json.loads((fullsize_data_dir / "checkpoint_keys.json").read_text())
    with torch.device("meta"):
        model = TripoSR(ours)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {n: tuple(s) for n, s, _ in keys}
    assert OFFICIAL_CONFIG["tokenizer"]["plane_size"] == 32


def test_example_image_is_an_object_on_a_transparent_background():
    image = np.asarray(Image.open(EXAMPLE))
    assert image.shape == (512, 512, 4)
    alpha = image[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0
    assert 0.05 < (alpha > 128).mean() < 0.6
    assert EXAMPLE.stat().st_size < 400_000


@pytest.mark.parametrize("script", ["scripts/setup.sh", ".ci/run"])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(REPO_ROOT / script)], check=True)


def bpy_run(args, env=None, timeout=600):
    completed = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                               text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


@pytest.mark.blender
def test_built_zip_installs_into_blender_and_registers_its_panels(tmp_path):
    pytest.importorskip("bpy")
    out = bpy_run(["tools/build_extension.py", "--output-dir", str(tmp_path / "dist")])
    zip_path = out.strip().splitlines()[-1]
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    out = bpy_run(["scripts/install_extension.py", "--", zip_path], env=env)
    assert "installed and enabled bl_ext.user_default.image_to_3d" in out
    installed = tmp_path / "blender-user" / "extensions" / "user_default" / "image_to_3d"
    assert (installed / "blender_manifest.toml").is_file()
    assert not any(installed.rglob("tests")) and not any(installed.rglob("__pycache__"))


@pytest.mark.blender
def test_preview_render_of_a_blend(tmp_path):
    pytest.importorskip("bpy")
    blend = tmp_path / "scene.blend"
    make = (
        "import bpy, sys; bpy.ops.wm.read_factory_settings(use_empty=True); "
        "bpy.ops.mesh.primitive_monkey_add(); "
        f"bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})"
    )
    bpy_run(["-c", make])
    preview = tmp_path / "preview.png"
    bpy_run(["scripts/render_preview.py", "--", str(blend), str(preview), "--size", "64", "--samples", "2"])
    pixels = np.asarray(Image.open(preview))
    assert pixels.shape == (64, 64, 3)
    assert pixels.std() > 5, "the preview is a flat colour: nothing was in view"
