"""The Install backend and Download model operators inside real Blender (the bpy wheel).

Each test builds the extension zip, installs it into a throw-away Blender user folder
and runs the operators the way a script (or `blender -b`) does: blocking.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_hub import REPO_ID, HubStandIn

pytestmark = pytest.mark.blender
REPO_ROOT = Path(__file__).resolve().parents[1]

SCENARIO = r'''
import json, os, sys
import bpy

def call(op, **kwargs):
    try:
        return sorted(op(**kwargs)), ""
    except RuntimeError as exc:  # an operator's ERROR report, raised in background mode
        return ["ERROR"], str(exc)

bpy.ops.extensions.package_install_files(filepath=os.environ["ZIP"], repo="user_default", enable_on_install=True)
prefs = bpy.context.preferences.addons["bl_ext.user_default.image_to_3d"].preferences
out = {}
if os.environ.get("CHECK_DOWNLOAD"):
    bpy.context.preferences.system.use_online_access = False
    out["offline"] = call(bpy.ops.image_to_3d.download_model)
    bpy.context.preferences.system.use_online_access = True
    out["online"] = call(bpy.ops.image_to_3d.download_model)
    out["model_path"] = prefs.model_path
    out["background"] = bpy.utils.extension_path_user("bl_ext.user_default.image_to_3d", path="models/background")
if os.environ.get("WHEELS"):
    out["install"] = call(bpy.ops.image_to_3d.install_backend, torch_build="CPU", wheel_dir=os.environ["WHEELS"])
    out["python_path"] = prefs.python_path
    out["venv"] = bpy.utils.extension_path_user("bl_ext.user_default.image_to_3d", path="backend-venv")
    out["log"] = bpy.utils.extension_path_user("bl_ext.user_default.image_to_3d", path="logs")
print("RESULT " + json.dumps(out))
'''


def run_in_blender(tmp_path, **env_vars) -> dict:
    pytest.importorskip("bpy")
    built = subprocess.run([sys.executable, "tools/build_extension.py", "--output-dir", str(tmp_path / "dist")],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    env = dict(os.environ, ZIP=built.stdout.strip().splitlines()[-1],
               BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"), **env_vars)
    completed = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=900)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_download_model_needs_online_access_then_fills_the_model_folder(tmp_path, tiny_model_dir):
    files = {name: (tiny_model_dir / name).read_bytes() for name in ("config.yaml", "model.ckpt")}
    with HubStandIn(REPO_ID, files) as hub, HubStandIn("danielgatis/rembg", {"u2net.onnx": b"onnx"}) as rembg:
        out = run_in_blender(tmp_path, CHECK_DOWNLOAD="1", HF_ENDPOINT=hub.endpoint,
                             IMAGE_TO_3D_BACKGROUND_MODEL_URL=f"{rembg.endpoint}/danielgatis/rembg/resolve/v0/u2net.onnx")
    result, message = out["offline"]
    assert result == ["ERROR"] and "Online access is off" in message
    assert out["online"] == [["FINISHED"], ""]
    model = Path(out["model_path"])
    assert model.is_relative_to(tmp_path / "blender-user")  # the extension's user folder
    assert (model / "model.ckpt").read_bytes() == files["model.ckpt"]
    assert (Path(out["background"]) / "u2net.onnx").read_bytes() == b"onnx"  # the background-removal model too


@pytest.fixture(scope="module")
def backend_wheels(tmp_path_factory) -> Path:
    """Every wheel requirements/backend.txt needs, fetched once (from pip's index)."""
    folder = tmp_path_factory.mktemp("backend-wheels")
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(folder),
         "-r", str(REPO_ROOT / "requirements" / "backend.txt"),
         "-c", str(REPO_ROOT / "requirements" / "lock-4.2.txt")],
        capture_output=True, text=True, timeout=1200,
    )
    if completed.returncode != 0:
        pytest.skip(f"could not gather the backend's wheels: {completed.stderr[-500:]}")
    return folder


@pytest.mark.slow
def test_install_backend_offline_makes_a_venv_that_runs_the_worker(tmp_path, backend_wheels):
    """Blender's Python makes the venv, pip fills it from the wheel folder only, the
    worker starts from it, and the Backend Python preference points at it."""
    out = run_in_blender(tmp_path, WHEELS=str(backend_wheels))
    assert out["install"] == [["FINISHED"], ""], out
    venv = Path(out["venv"])
    assert Path(out["python_path"]) == venv / "bin" / "python"
    log = (Path(out["log"]) / "install-backend.log").read_text()
    assert "--no-index" in log and "the backend worker started with" in log and "=== done" in log
    check = subprocess.run([out["python_path"], "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.startswith("2.13.0")
