"""`python -m backend serve` start-up failures: each ends in a second with exit code 2 and
one sentence, before Ray starts, and without importing torch (no Ray instance here)."""

import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_TORCH = "import sys, runpy; sys.modules['torch'] = None; sys.argv[0] = 'backend'; runpy.run_module('backend', run_name='__main__')"


def serve(*args, env_home: Path) -> subprocess.CompletedProcess:
    env = {"XDG_STATE_HOME": str(env_home), "PATH": "/usr/bin:/bin", "HOME": str(env_home)}
    return subprocess.run([sys.executable, "-c", NO_TORCH, "serve", *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_wrong_model_folder_fails_fast_without_torch_and_the_new_token_is_private(tmp_path):
    pytest.importorskip("ray.serve")
    done = serve("--model", tmp_path / "no-model", "--port", "0", env_home=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "model folder" in done.stderr and "does not exist" in done.stderr and "Traceback" not in done.stderr
    token_file = tmp_path / "image_to_3d" / "server-token"
    assert f"access token written to {token_file}" in done.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_a_port_in_use_a_shared_token_file_and_half_a_tls_pair_are_refused(tmp_path, tiny_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        done = serve("--model", tiny_model_dir, "--port", taken.getsockname()[1], env_home=tmp_path)
    assert done.returncode == 2 and "cannot listen on 127.0.0.1" in done.stderr

    shared = tmp_path / "token"
    shared.write_text("a-token-that-others-can-read\n")
    shared.chmod(0o644)
    done = serve("--model", tiny_model_dir, "--port", "0", "--token-file", shared, env_home=tmp_path)
    assert done.returncode == 2 and f"chmod 600 {shared}" in done.stderr

    done = serve("--model", tiny_model_dir, "--tls-cert", shared, env_home=tmp_path)
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr
