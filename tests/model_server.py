"""A real model server for the tests: `python -m backend serve` in a process group of its
own, with the tiny checkpoint (and any further models, e.g. a tiny Shap-E text folder),
two CPU replicas and a token file (see conftest.py)."""

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 240


@dataclass
class ModelServer:
    url: str
    token_file: Path
    process: subprocess.Popen
    output: list  # the server's printed lines

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def client(self, **kwargs):
        from backend.bridge.server_client import ServerClient

        return ServerClient(self.url, self.token, token_source=f"the token file {self.token_file}", **kwargs)

    def tree(self) -> list:
        """The server's process and everything it started (psutil.Process objects)."""
        import psutil

        root = psutil.Process(self.process.pid)
        return [root] + root.children(recursive=True)


def start_model_server(folder: Path, model: Path, *more_models: Path, arguments=()) -> ModelServer:
    """`arguments` come last: they may override the defaults (e.g. --replicas 1)."""
    token_file = folder / "token"
    env = {**os.environ, "XDG_STATE_HOME": str(folder)}
    extra = [argument for path in more_models for argument in ("--model", str(path))]
    command = [sys.executable, "-m", "backend", "serve", "--model", str(model), *extra, "--port", "0",
               "--token-file", str(token_file), "--replicas", "2", "--max-batch", "2", "--job-timeout", "120",
               *arguments]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    output, ready, found = [], threading.Event(), {}

    def read():
        for line in process.stdout:
            output.append(line.rstrip())
            match = re.search(r"server ready at (http://\S+)", line)
            if match:
                found["url"] = match.group(1)
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(START_TIMEOUT):
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("the model server did not start:\n" + "\n".join(output[-40:]))
    return ModelServer(found["url"], token_file, process, output)


def stop_model_server(server: ModelServer):
    import psutil

    leftovers = server.tree()[1:]
    server.process.send_signal(signal.SIGTERM)  # as a service manager stops it: it cleans up and exits 0
    try:
        server.process.wait(60)
    except subprocess.TimeoutExpired:
        server.process.kill()
    still = [p for p in leftovers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for proc in still:  # only processes this server started
        proc.kill()
    assert server.process.returncode == 0, "\n".join(server.output[-30:])
    assert still == [], f"processes left after the server stopped: {[p.pid for p in still]}"
