"""backend.setup.installer: the plan (torch build, index, pins), the job runner, an offline install.

The offline install is real: a fresh venv made by this interpreter, filled by pip from a
folder of two small wheels built here (no network), then used.
"""

import base64
import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.setup import installer
from backend.setup.installer import Step, StepRunner

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_wheel(folder: Path, name: str, version: str, code: str, requires=()) -> Path:
    """A minimal pure-Python wheel (one module), written with zipfile."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": code,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def wheel_dir(tmp_path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    build_wheel(folder, "tinydep", "1.0", "VALUE = 41\n")
    build_wheel(folder, "tinypkg", "2.0", "import tinydep\nANSWER = tinydep.VALUE + 1\n", requires=["tinydep==1.0"])
    return folder


def run_job(steps, **kwargs) -> StepRunner:
    job = StepRunner(steps, **kwargs).start()
    assert job.wait(timeout=300) in ("done", "failed", "cancelled")
    return job


# ---------------------------------------------------------------- offline install


def test_offline_install_into_a_fresh_venv(tmp_path, wheel_dir):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinypkg==2.0\n")
    venv = tmp_path / "backend-venv"
    steps, notes = installer.plan_install(
        venv, base_python=sys.executable, requirements=[requirements], wheel_dir=wheel_dir
    )
    assert [s.title for s in steps] == [
        f"Create the environment {venv}", "Install packages (offline)", "Check the packages"
    ]
    assert "--no-index" in steps[1].argv and str(wheel_dir) in steps[1].argv
    log = tmp_path / "logs" / "install.log"
    job = run_job(steps, log_path=log)
    assert job.state == "done", "\n".join(job.lines)
    python = installer.venv_python(venv)
    answer = subprocess.run([str(python), "-c", "import tinypkg; print(tinypkg.ANSWER)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert answer == "42"
    text = log.read_text()
    assert "Successfully installed tinydep-1.0 tinypkg-2.0" in text and "=== done" in text


def test_offline_install_without_the_wheel_fails_with_pips_reason(tmp_path, wheel_dir):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinypkg==3.0\n")
    steps, _ = installer.plan_install(tmp_path / "venv", base_python=sys.executable,
                                          requirements=[requirements], wheel_dir=wheel_dir)
    job = run_job(steps)
    assert job.state == "failed"
    assert job.error.startswith("Install packages (offline) failed")
    assert any("tinypkg==3.0" in line for line in job.lines)


# ---------------------------------------------------------------- the job runner


def test_lines_stream_while_the_command_runs():
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.3)"
    job = StepRunner([Step("count", [sys.executable, "-c", code])]).start()
    seen_while_running = []
    while not job.finished:
        seen_while_running += [line for line in job.poll() if line.startswith("line")]
        time.sleep(0.05)
        if seen_while_running and not job.finished:
            break
    assert seen_while_running and not job.finished, "output arrived only at the end"
    job.wait()
    assert job.state == "done"


def test_cancel_stops_the_running_command_and_skips_the_rest(tmp_path):
    marker = tmp_path / "second-step-ran"
    steps = [
        Step("sleep", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]),
        Step("next", [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]),
    ]
    job = StepRunner(steps).start()
    deadline = time.monotonic() + 30
    while "started" not in job.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    job.cancel()
    assert job.wait(timeout=20) == "cancelled"
    assert time.monotonic() - started < 10
    assert not marker.exists()


def test_a_failing_step_stops_the_job():
    job = run_job([Step("fails", [sys.executable, "-c", "raise SystemExit(3)"]),
                   Step("never", [sys.executable, "-c", "print('ran')"])])
    assert job.state == "failed" and "exit code 3" in job.error
    assert "ran" not in job.lines


def test_the_final_check_decides_success():
    job = run_job([Step("ok", [sys.executable, "-c", "pass"])], after=lambda: (False, "worker did not answer"))
    assert job.state == "failed" and job.error == "worker did not answer"


def test_verify_worker_starts_the_real_worker():
    ok, message = installer.verify_worker(sys.executable, timeout=120)
    assert ok, message


# ---------------------------------------------------------------- choices and pins


def test_requirement_files_merge_later_pins_win(tmp_path):
    (tmp_path / "base.txt").write_text("# comment\ntorch==2.13.0\nnumpy==2.4.6  # why\nrembg==2.0.86\n")
    (tmp_path / "dev.txt").write_text("-r base.txt\npytest==9.2.0\n")
    (tmp_path / "old.txt").write_text("bpy==4.5.15\nnumpy==1.26.4\nRembg==2.0.69\n")
    merged = installer.merge_requirements([tmp_path / "dev.txt", tmp_path / "old.txt"])
    assert merged == ["torch==2.13.0", "numpy==1.26.4", "Rembg==2.0.69", "pytest==9.2.0", "bpy==4.5.15"]
    assert installer.torch_requirement(merged) == "torch==2.13.0"


def test_project_requirement_files_resolve_for_every_blender_version():
    for version in ("4.2", "4.5", "5.0"):
        merged = installer.merge_requirements(
            [REPO_ROOT / "requirements" / "dev.txt", REPO_ROOT / "requirements" / f"blender-{version}.txt"])
        pins = dict(line.split("==") for line in merged)
        pins = {name.split("[")[0]: pin for name, pin in pins.items()}  # ray[serve] is locked as ray
        assert pins["torch"] == "2.13.0" and pins["bpy"].startswith(version + ".")
        lock = REPO_ROOT / "requirements" / f"lock-{version}.txt"
        if lock.is_file():  # every pin agrees with the lock
            locked = dict(line.split("==") for line in lock.read_text().splitlines()
                          if line and not line.startswith("#"))
            locked = {k.lower().replace("_", "-"): v for k, v in locked.items()}
            for name, version_pin in pins.items():
                assert locked[name.lower().replace("_", "-")] == version_pin, (lock.name, name)


class _TorchIndex:
    """A package index stand-in on 127.0.0.1 that answers for /torch/."""

    def __enter__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200 if self.path.startswith("/whl/cpu/torch/") else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/whl/cpu"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_cpu_torch_comes_from_the_cpu_index_when_reachable(tmp_path):
    requirements = tmp_path / "r.txt"
    requirements.write_text("torch==2.13.0\nnumpy==2.4.6\n")
    with _TorchIndex() as index:
        steps, notes = installer.plan_install(tmp_path / "v", base_python=sys.executable,
                                                  requirements=[requirements], variant="cpu",
                                                  torch_index_url=index)
    torch_step = steps[1]
    assert torch_step.title == "Install torch==2.13.0 (cpu)"
    at = torch_step.argv.index("--extra-index-url")
    assert torch_step.argv[at - 1: at + 2] == ["torch==2.13.0", "--extra-index-url", index]
    assert not notes
    assert steps[-1].title == "Import the backend's packages"


def test_an_unreachable_torch_index_is_skipped_with_a_note(tmp_path):
    requirements = tmp_path / "r.txt"
    requirements.write_text("torch==2.13.0\n")
    steps, notes = installer.plan_install(tmp_path / "v", base_python=sys.executable,
                                              requirements=[requirements], variant="cpu",
                                              torch_index_url="http://127.0.0.1:9/whl/cpu")
    assert [s.title for s in steps][1] == "Install packages"
    assert notes and "cannot be reached" in notes[0]


def test_torch_index_per_variant_and_system():
    assert installer.torch_index("cpu", "linux") == "https://download.pytorch.org/whl/cpu"
    assert installer.torch_index("cpu", "darwin") is None  # macOS wheels are CPU+MPS already
    assert installer.torch_index("cuda", "linux") is None  # PyPI's Linux torch is the CUDA build
    assert installer.torch_index("cuda", "win32").startswith("https://download.pytorch.org/whl/cu")
    assert installer.torch_index("default", "linux") is None


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS always picks the default build")
def test_detects_an_nvidia_gpu_through_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA Test Card (UUID: GPU-0)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    variant, reason = installer.detect_variant()
    assert variant == "cuda" and "NVIDIA Test Card" in reason
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert installer.detect_variant()[0] == "cpu"


def test_command_line_runs_an_offline_install(tmp_path, wheel_dir):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinydep==1.0\n")
    venv = tmp_path / "venv"
    completed = subprocess.run(
        [sys.executable, "-m", "backend.setup.installer", str(venv), "--variant", "cpu",
         "-r", str(requirements), "--wheel-dir", str(wheel_dir)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "torch build: cpu (asked for)" in completed.stdout
    assert "Successfully installed tinydep-1.0" in completed.stdout
