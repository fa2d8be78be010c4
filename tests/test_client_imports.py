"""The Blender side has no torch: the client must import and run jobs without it."""

import subprocess
import sys

from backend.bridge.worker_process import EXTENSION_ROOT

NO_TORCH = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError, as in Blender
import backend, backend.bridge.client, backend.bridge.protocol, backend.bridge.settings, backend.bridge.errors
from backend.bridge.client import WorkerClient
from backend.bridge.settings import GenerateSettings
assert "backend.pipeline" not in sys.modules
print("imported")
if len(sys.argv) > 1:
    with WorkerClient(sys.executable, sys.argv[1], "cpu", log_dir=sys.argv[3]) as client:
        result = client.run(GenerateSettings(resolution=32), image_path=sys.argv[2])
    print("vertices", len(result.vertices))
"""


def run_without_torch(*args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], cwd=EXTENSION_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_client_and_protocol_import_without_torch():
    done = run_without_torch()
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout


def test_a_torch_free_process_runs_a_job_through_the_worker(tiny_model_dir, flamingo_path, tmp_path):
    done = run_without_torch(tiny_model_dir, flamingo_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split("vertices")[1]) > 1000
