"""backend.setup.hub.fetch_model against a small hub stand-in on 127.0.0.1 (HF_ENDPOINT).

The stand-in answers the two requests huggingface_hub 2.x makes per file:
HEAD /{repo}/resolve/{revision}/{filename} (metadata: X-Repo-Commit, ETag,
Content-Length) and GET of the same address, with HTTP Range support for resuming.
"""

import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.bridge.errors import ModelNotFoundError
from backend.setup.hub import fetch_model

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "stabilityai/TripoSR"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn:
    """Serves files of one repository; can drop the first GET of a file halfway."""

    def __init__(self, repo_id: str, files: dict[str, bytes]):
        self.repo_id = repo_id
        self.files = files
        self.drop_first_get: dict[str, int] = {}  # filename -> bytes sent before hanging up
        self.requests: list[tuple[str, str, str | None]] = []  # (method, filename, Range)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                stand_in.answer(self, body=False)

            def do_GET(self):
                stand_in.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, handler, body: bool):
        prefix = f"/{self.repo_id}/resolve/"
        if not handler.path.startswith(prefix):
            handler.send_response(404)
            handler.send_header("X-Error-Code", "RepoNotFound")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        _revision, _, filename = handler.path[len(prefix):].partition("/")
        self.requests.append((handler.command, filename, handler.headers.get("Range")))
        data = self.files.get(filename)
        if data is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", "EntryNotFound")
            handler.send_header("X-Repo-Commit", COMMIT)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        start = 0
        range_header = handler.headers.get("Range")
        if body and range_header and range_header.startswith("bytes="):
            start = int(range_header[len("bytes="):].split("-")[0])
        handler.send_response(206 if start else 200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        if filename in self.drop_first_get and not start:
            # announce the whole file, send part of it, hang up: a broken connection
            handler.wfile.write(data[: self.drop_first_get.pop(filename)])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(data[start:])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tiny_files(tiny_model_dir) -> dict[str, bytes]:
    return {name: (tiny_model_dir / name).read_bytes() for name in ("config.yaml", "model.ckpt")}


@pytest.fixture
def hub(tiny_files, monkeypatch):
    with HubStandIn(REPO_ID, tiny_files) as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.endpoint)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield stand_in


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_downloads_both_files_with_progress(hub, tiny_files, tmp_path):
    seen = []
    folder = fetch_model(REPO_ID, cache_dir=str(tmp_path), progress=lambda done, total: seen.append((done, total)))
    for name, data in tiny_files.items():
        assert (folder / name).read_bytes() == data
    total = sum(len(d) for d in tiny_files.values())
    assert seen[-1] == (total, total)
    assert any(0 < done < total for done, _ in seen), "no progress reported while downloading"
    assert {(m, f) for m, f, _ in hub.requests} == {
        ("HEAD", "config.yaml"), ("GET", "config.yaml"), ("HEAD", "model.ckpt"), ("GET", "model.ckpt")
    }


def test_interrupted_download_resumes_where_it_stopped(tiny_files, tmp_path, monkeypatch):
    # huggingface_hub resumes from the last whole chunk it wrote (10 MB in 2.x), so the
    # file must be larger than that for a resume to show: 24 MB of seeded bytes.
    big = random.Random(0).randbytes(24 * 1024 * 1024)
    with HubStandIn(REPO_ID, {"config.yaml": tiny_files["config.yaml"], "model.ckpt": big}) as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.endpoint)
        stand_in.drop_first_get["model.ckpt"] = 15 * 1024 * 1024
        folder = fetch_model(REPO_ID, cache_dir=str(tmp_path))
    assert (folder / "model.ckpt").read_bytes() == big
    ranges = [r for m, f, r in stand_in.requests if m == "GET" and f == "model.ckpt"]
    assert len(ranges) == 2 and ranges[0] is None, ranges
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 15 * 1024 * 1024, "the second request did not resume"


def test_second_fetch_reuses_the_cache_without_network(hub, tmp_path, monkeypatch):
    first = fetch_model(REPO_ID, cache_dir=str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert fetch_model(REPO_ID, cache_dir=str(tmp_path)) == first


def test_no_network_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelNotFoundError) as info:
        fetch_model(REPO_ID, cache_dir=str(tmp_path))
    message = info.value.message
    assert "Could not reach" in message and "by hand" in message
    assert "config.yaml and model.ckpt" in message and "IMAGE_TO_3D_MODEL" in message
    assert info.value.code == "model_not_found"


def test_unknown_repository_is_a_model_not_found_error(hub, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.yaml for someone/else"):
        fetch_model("someone/else", cache_dir=str(tmp_path))


def test_hub_module_does_not_import_torch():
    code = "import sys, backend.setup.hub; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_cli_takes_a_hub_id_and_downloads_from_the_endpoint(hub, tmp_path):
    """The whole path a user takes with `--model stabilityai/TripoSR`."""
    image = REPO_ROOT / "assets" / "example.png"
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(tmp_path / "cache"))
    completed = subprocess.run(
        [sys.executable, "-m", "backend", "generate", str(image), "--model", REPO_ID,
         "--out", str(tmp_path / "out"), "--format", "ply", "--resolution", "32", "--device", "cpu"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "out" / "example.ply").stat().st_size > 0
    assert any((tmp_path / "cache").rglob("model.ckpt"))


# ---------------------------------------------------------------- the background-removal model


def background_url(stand_in) -> str:
    return f"{stand_in.endpoint}/danielgatis/rembg/resolve/v0.0.0/u2net.onnx"


def test_background_model_download_resumes_and_lands_whole(tmp_path, monkeypatch):
    from backend.setup.background_model import fetch_background_model

    data = random.Random(1).randbytes(3 * 1024 * 1024)
    with HubStandIn("danielgatis/rembg", {"u2net.onnx": data}) as stand_in:
        monkeypatch.setenv("IMAGE_TO_3D_BACKGROUND_MODEL_URL", background_url(stand_in))
        stand_in.drop_first_get["u2net.onnx"] = 1024 * 1024
        with pytest.raises(ModelNotFoundError, match="resumes"):  # the connection broke
            fetch_background_model(tmp_path)
        assert not (tmp_path / "u2net.onnx").exists()  # no half file under the final name
        seen = []
        path = fetch_background_model(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == data
    ranges = [r for m, f, r in stand_in.requests if m == "GET"]
    assert ranges == [None, "bytes=1048576-"]
    assert seen[-1] == (len(data), len(data)) and seen[0][0] > 1024 * 1024  # counted from the resume


def test_hub_command_fetches_the_background_model_after_the_model(tiny_files, tmp_path):
    with HubStandIn(REPO_ID, tiny_files) as hub, HubStandIn("danielgatis/rembg", {"u2net.onnx": b"onnx" * 100}) as rembg:
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, IMAGE_TO_3D_BACKGROUND_MODEL_URL=background_url(rembg))
        done = subprocess.run(
            [sys.executable, "-m", "backend.setup.hub", REPO_ID, "--cache-dir", str(tmp_path / "cache"),
             "--background-model-dir", str(tmp_path / "background")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("folder ") for line in lines)
    assert f"background {tmp_path / 'background' / 'u2net.onnx'}" in lines
    totals = [int(line.split()[2]) for line in lines if line.startswith("progress ")]
    assert totals == sorted(totals)  # progress only grows across the two downloads
    assert (tmp_path / "background" / "u2net.onnx").read_bytes() == b"onnx" * 100
