"""The extension zip, built once per test session with Blender's own tool."""

import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "build_extension.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (zip_path,) = [Path(line) for line in done.stdout.split()]
    assert zip_path.name == "image_to_3d-0.1.0.zip"
    return zip_path


