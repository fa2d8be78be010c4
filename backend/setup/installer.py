"""Make a Python environment for the backend: a venv plus pinned packages, with pip.

Standard library only and no bpy: the add-on's "Install backend" operator drives it
from Blender (through StepRunner, polled from a timer), scripts/setup.sh runs it as a
module, and tests call it directly.

    python -m backend.setup.installer VENV_DIR [--variant auto|cpu|cuda|default]
        [--requirements FILE ...] [--constraints FILE] [--wheel-dir DIR] [--python PY]

Which torch: the same version everywhere (pinned in requirements/backend.txt); the
build is picked by where pip looks for it. "cpu" adds PyTorch's CPU-only index, "cuda"
takes PyPI's Linux build (CUDA) or PyTorch's CUDA index on Windows, "default" takes
whatever PyPI gives (the macOS build, which uses Apple's MPS). "auto" picks cuda when
nvidia-smi sees a GPU, default on macOS, cpu otherwise.
"""

import argparse
import collections
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the folder that holds backend/ and requirements/
REQUIREMENTS = ROOT / "requirements" / "backend.txt"
CONSTRAINTS = ROOT / "requirements" / "lock-4.2.txt"
VARIANTS = ("cpu", "cuda", "default")
TORCH_INDEXES = {
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cuda-windows": "https://download.pytorch.org/whl/cu128",
}
# What the verification imports: every package the worker needs at run time.
VERIFY_CODE = (
    "import torch, numpy, PIL, mcubes, trimesh, yaml, huggingface_hub, tqdm, fast_simplification, diffusers, transformers, safetensors; "
    "print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'no cuda')"
)

# `pip check`, minus one known false alarm: the bpy wheels for Python 3.11 declare a
# cp39 tag in their WHEEL file, so pip calls them "not supported on this platform".
PIP_CHECK_CODE = (
    "import subprocess, sys; "
    "r = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True); "
    "bad = [l for l in r.stdout.splitlines() if l.strip() and not "
    "(l.startswith('bpy ') and 'not supported on this platform' in l)]; "
    "ok = r.returncode == 0 or not bad; "
    "print(r.stdout.strip() if r.returncode == 0 else '\\n'.join(bad) or 'pip check: only the bpy tag false alarm'); "
    "sys.exit(0 if ok else 1)"
)


@dataclass
class Step:
    title: str
    argv: list
    cwd: str | None = None


# ---------------------------------------------------------------- choices


def detect_variant() -> tuple[str, str]:
    """(variant, reason) for this machine."""
    if sys.platform == "darwin":
        return "default", "macOS: the standard build, which runs on Apple's MPS"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            listed = None
        if listed is not None and listed.returncode == 0 and "GPU" in listed.stdout:
            return "cuda", f"NVIDIA GPU found: {listed.stdout.splitlines()[0].strip()}"
    return "cpu", "no NVIDIA GPU found: the CPU build (smaller download)"


def torch_index(variant: str, system: str = sys.platform) -> str | None:
    """The extra package index that holds the wanted torch build, or None for PyPI's."""
    if variant == "cpu" and system != "darwin":
        return os.environ.get("IMAGE_TO_3D_TORCH_INDEX", TORCH_INDEXES["cpu"])
    if variant == "cuda" and system.startswith("win"):
        return os.environ.get("IMAGE_TO_3D_TORCH_INDEX", TORCH_INDEXES["cuda-windows"])
    return None


def index_reachable(url: str, timeout: float = 10.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def read_requirements(path) -> list[str]:
    """Requirement lines of a file, `-r` includes expanded, comments dropped."""
    lines = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += read_requirements(Path(path).parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def _project(line: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def merge_requirements(paths) -> list[str]:
    """One list from several files; a later file's pin replaces an earlier one of the same
    project (requirements/blender-4.5.txt replaces backend.txt's numpy, for instance)."""
    merged = {}
    for path in paths:
        for line in read_requirements(path):
            merged[_project(line)] = line
    return list(merged.values())


def torch_requirement(lines) -> str | None:
    """The torch pin ("torch==X") among requirement lines, if any."""
    return next((line for line in lines if _project(line) == "torch"), None)


def venv_python(venv: Path) -> Path:
    return Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# ---------------------------------------------------------------- the plan


def plan_install(venv, *, base_python=None, requirements=(REQUIREMENTS,), constraints=None,
                 variant="cpu", wheel_dir=None, torch_index_url=None) -> tuple[list[Step], list[str]]:
    """The commands that make `venv` and fill it; returns (steps, notes for the user).

    wheel_dir: install offline from that folder only (pip --no-index --find-links).
    torch_index_url: where the torch build comes from; by default torch_index(variant),
    used only when reachable, so a blocked index costs seconds, not pip's retries.
    """
    venv = Path(venv)
    python = str(venv_python(venv))
    notes = []
    steps = []
    if not venv_python(venv).exists():
        steps.append(Step(f"Create the environment {venv}", [base_python or sys.executable, "-m", "venv", str(venv)]))
    lines = merge_requirements(requirements)
    # one file for pip, kept in the environment: it says what was asked for
    merged = venv / "image_to_3d-requirements.txt"
    merged.parent.mkdir(parents=True, exist_ok=True)
    merged.write_text("# written by backend_setup.py from " + ", ".join(map(str, requirements)) + "\n"
                      + "\n".join(lines) + "\n")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    constraint_args = ["-c", str(constraints)] if constraints and Path(constraints).is_file() else []
    if wheel_dir:
        notes.append(f"offline: packages only from {wheel_dir}")
        steps.append(Step("Install packages (offline)",
                          pip + ["--no-index", "--find-links", str(wheel_dir), "-r", str(merged)] + constraint_args))
    else:
        torch_pin = torch_requirement(lines)
        index = torch_index_url if torch_index_url is not None else torch_index(variant)
        if torch_pin and index:
            if index_reachable(index):
                steps.append(Step(f"Install {torch_pin} ({variant})",
                                  pip + [torch_pin, "--extra-index-url", index] + constraint_args))
            else:
                notes.append(f"{index} cannot be reached: torch comes from the default index "
                             "(on Linux, PyPI's torch is the larger CUDA build)")
        steps.append(Step("Install packages", pip + ["-r", str(merged)] + constraint_args))
    steps.append(Step("Check the packages", [python, "-c", PIP_CHECK_CODE]))
    if any(_project(line) == "torch" for line in lines):
        steps.append(Step("Import the backend's packages", [python, "-c", VERIFY_CODE]))
    return steps, notes


# ---------------------------------------------------------------- running it


class StepRunner:
    """Runs the steps one after another in a thread; safe to poll from a UI timer.

    pip's output goes line by line into `lines` (the last ones), the log file and
    `poll()`; cancel() stops the running command and skips the rest.
    """

    def __init__(self, steps, log_path=None, env=None, max_lines=200, after=None):
        """after: optional callable run in the thread once every step succeeded; it
        returns (ok, message), e.g. verify_worker; not ok makes the job fail."""
        self.steps = list(steps)
        self.after = after
        self.log_path = Path(log_path) if log_path else None
        self.env = env
        self.lines = collections.deque(maxlen=max_lines)
        self.state = "pending"  # running, done, failed, cancelled
        self.step_index = -1
        self.error = ""
        self._queue = queue.Queue()
        self._cancelled = threading.Event()
        self._process = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="backend-install")

    @property
    def current_title(self) -> str:
        return self.steps[self.step_index].title if 0 <= self.step_index < len(self.steps) else ""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def start(self):
        self.state = "running"
        self._thread.start()
        return self

    def poll(self) -> list[str]:
        """Lines written since the last poll (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def cancel(self):
        self._cancelled.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def wait(self, timeout=None) -> str:
        self._thread.join(timeout)
        return self.state

    def _say(self, line, log):
        self.lines.append(line)
        self._queue.put(line)
        if log:
            log.write(line + "\n")
            log.flush()

    def _run(self):
        log = None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "a", encoding="utf-8")
        try:
            self._say(f"=== backend install {time.strftime('%Y-%m-%d %H:%M:%S')}", log)
            for index, step in enumerate(self.steps):
                self.step_index = index
                if self._cancelled.is_set():
                    break
                self._say(f"--- {step.title}: {subprocess.list2cmdline(step.argv)}", log)
                code = self._run_step(step, log)
                if self._cancelled.is_set():
                    break
                if code != 0:
                    self.error = f"{step.title} failed (exit code {code}); see the log"
                    self._say(self.error, log)
                    self.state = "failed"
                    return
            if self.after is not None and not self._cancelled.is_set():
                self._say("--- Start the backend worker", log)
                ok, message = self.after()
                self._say(message, log)
                if not ok:
                    self.error = message
                    self.state = "failed"
                    return
            self.state = "cancelled" if self._cancelled.is_set() else "done"
            self._say(f"=== {self.state}", log)
        except Exception as exc:  # noqa: BLE001 - the UI must learn about any failure
            self.error = f"{type(exc).__name__}: {exc}"
            self._say(self.error, log)
            self.state = "failed"
        finally:
            if log:
                log.close()

    def _run_step(self, step, log) -> int:
        env = dict(self.env if self.env is not None else os.environ)
        env["PYTHONUNBUFFERED"] = "1"  # pip's lines arrive as they are written
        env.pop("PYTHONPATH", None)  # Blender's module path must not leak into pip
        env.pop("PYTHONHOME", None)
        creation = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self._process = subprocess.Popen(
            step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=step.cwd, text=True, errors="replace", bufsize=1, creationflags=creation,
        )
        for line in self._process.stdout:
            self._say(line.rstrip(), log)
        return self._process.wait()


def verify_worker(python, timeout: float = 120.0, client_class=None) -> tuple[bool, str]:
    """Start the backend worker with `python` and wait for it to answer a ping."""
    if client_class is None:
        from ..bridge.client import WorkerClient as client_class
    client = client_class(python=str(python), model="")
    try:
        client.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.ping(timeout=5.0):
                return True, f"the backend worker started with {python}"
            time.sleep(0.5)
        return False, f"the backend worker did not answer within {timeout:.0f} s (see {client.log_path})"
    finally:
        client.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--variant", choices=("auto",) + VARIANTS, default="auto")
    parser.add_argument("--requirements", "-r", type=Path, action="append")
    parser.add_argument("--constraints", "-c", type=Path, default=CONSTRAINTS)
    parser.add_argument("--wheel-dir", type=Path, help="install offline from this folder of wheels")
    parser.add_argument("--python", help="base interpreter for a new venv (default: this one)")
    parser.add_argument("--log", type=Path, help="append pip's output to this file")
    parser.add_argument("--verify-worker", action="store_true", help="finally start the backend worker once")
    args = parser.parse_args(argv)
    variant, reason = detect_variant() if args.variant == "auto" else (args.variant, "asked for")
    print(f"torch build: {variant} ({reason}); {platform.system()} {platform.machine()}", flush=True)
    steps, notes = plan_install(args.venv, base_python=args.python, requirements=args.requirements or [REQUIREMENTS],
                                constraints=args.constraints, variant=variant, wheel_dir=args.wheel_dir)
    for note in notes:
        print(f"note: {note}", flush=True)
    after = (lambda: verify_worker(venv_python(args.venv))) if args.verify_worker else None
    job = StepRunner(steps, log_path=args.log, after=after).start()
    while not job.finished:
        for line in job.poll():
            print(line, flush=True)
        time.sleep(0.1)
    job.wait()
    for line in job.poll():
        print(line, flush=True)
    return 0 if job.state == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
