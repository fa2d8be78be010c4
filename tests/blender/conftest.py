"""The extension zip, built once per test session with Blender's own tool, and the
generate scenario (the local worker's object), which the server tests compare with."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness import REPO, RESOLUTION, blender_environment, run_scenario


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "build_extension.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (zip_path,) = [Path(line) for line in done.stdout.split()]
    assert zip_path.name == "image_to_3d-0.1.0.zip"
    return zip_path


@pytest.fixture(scope="session")
def generate_run(extension_zip, tiny_model_dir, examples_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("generate")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, examples=examples_dir)
    return run_scenario("generate", work, env), np.load(work / "generate.npz"), np.load(work / "packed.npz"), work


@pytest.fixture(scope="session")
def reference(tiny_model_dir, flamingo_path):
    """The backend's own result for the same image and settings, computed in this process."""
    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    return generate_mesh(load_model(tiny_model_dir, "cpu"), flamingo_path, GenerateSettings(resolution=RESOLUTION))
