"""The views job on the model server: POST /v1/jobs with a generate_views frame, its
status and its views_result frame, through ServerClient.run_views, on tiny random weights.

In this process (fast): the HTTP front (api.py) with runner.ReplicaPool driving the
deployment class itself (replica.MeshModel, no Ray) through a stand-in for Serve's
streaming handle. Through Ray Serve (`python -m backend serve`, a dedicated server with
the views' folders: the session server's model list is asserted by other tests): slow.
"""

import asyncio
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from server_front import TOKEN, RunningFront, raw
from views_common import VIEWS_TEST_SETTINGS

from backend.bridge.errors import WrongModelError
from backend.bridge.server_client import ServerClient
from backend.bridge.views_files import ViewsJobResult

pytest.importorskip("ray.serve")
REPO = Path(__file__).resolve().parents[1]


class InProcessHandle:
    """Serve's deployment handle for one replica object in this process:
    handle.options(stream=True).<method>.remote(*args) -> an async stream of its events."""

    def __init__(self, replica):
        self.replica = replica

    def options(self, **_):
        return self

    def __getattr__(self, name):
        method = getattr(self.replica, name)
        return types.SimpleNamespace(remote=lambda *args: Stream(method(*args)))


class Stream:
    def __init__(self, events):
        self.events = events

    def __anext__(self):
        return self.events.__anext__()

    def cancel(self):
        asyncio.get_running_loop().create_task(self.events.aclose())


def front_with_replica(model: str) -> RunningFront:
    from backend.server.replica import MeshModel
    from backend.server.runner import ReplicaPool

    replica = MeshModel(model, "cpu", "float32", concurrency=1, max_batch=1, torch_threads=None)
    return RunningFront(pool=ReplicaPool(InProcessHandle(replica)), max_upload_bytes=8 << 20)


def same_views(result: ViewsJobResult, reference) -> bool:
    return (result.view_ids == [view.view_id for view in reference.views]
            and np.array_equal(result.views, np.stack([view.picture for view in reference.views])))


def test_a_views_job_through_the_server_front_and_a_replica(views_models, views_picture, views_reference, tmp_path):
    front = front_with_replica(str(views_models))
    try:
        client = ServerClient(front.url, TOKEN)
        events = []
        result = client.run_views(VIEWS_TEST_SETTINGS, image_path=views_picture, on_event=events.append, timeout=600)
        assert isinstance(result, ViewsJobResult) and same_views(result, views_reference)
        assert result.pose_json["c2ws"]["0.png"] == views_reference.pose_json()["c2ws"]["0.png"]
        assert result.contact_sheet.shape == (9 * 128, 5 * 128, 3) and not result.polar_estimated
        assert {event.stage for event in events if event.kind == "progress"} <= {"prepare", "views"}

        # the CLI with --server writes the same folder as locally
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN)
        token_file.chmod(0o600)
        out = tmp_path / "views"
        done = subprocess.run([sys.executable, "-m", "backend", "views", str(views_picture), "--server", front.url,
                               "--token-file", str(token_file), "--out", str(out), "--elevation", "20", "--steps", "3",
                               "--seed", "5"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        last = views_reference.stage2[-1]
        assert np.array_equal(np.asarray(Image.open(out / "stage2_8" / f"{last.view_id}.png")), last.picture)
        assert json.loads((out / "pose.json").read_text()) == json.loads(json.dumps(views_reference.pose_json()))
    finally:
        front.stop()


def test_the_server_says_what_it_runs_when_it_has_no_views_model(tiny_model_dir, views_picture):
    front = front_with_replica(str(tiny_model_dir))
    try:
        with pytest.raises(WrongModelError, match="this server runs TripoSR .image., not Views for images"):
            ServerClient(front.url, TOKEN).run_views(VIEWS_TEST_SETTINGS, image_path=views_picture, timeout=300)
    finally:
        front.stop()


def test_a_views_job_status_and_result_over_plain_http(views_models, views_picture):
    """The API itself: a generate_views frame in, its status names the views, the frame
    comes back as views_result, and a views job has no GLB."""
    import io
    import time

    from backend.bridge import protocol, wire
    from backend.bridge.job_client import views_request
    from backend.bridge.server_api import FRAME_TYPE

    front = front_with_replica(str(views_models))
    try:
        request = views_request(VIEWS_TEST_SETTINGS, image_bytes=views_picture.read_bytes())
        body = b"".join(bytes(part) for part in wire.encode(*protocol.frame_parts(request)))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, _, answer = raw(front.url, "POST", "/v1/jobs", body, {**auth, "Content-Type": FRAME_TYPE})
        assert status == 202, answer
        job_id = json.loads(answer)["job_id"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status, _, answer = raw(front.url, "GET", f"/v1/jobs/{job_id}?wait=5", None, auth)
            info = json.loads(answer)
            if info["state"] in ("done", "failed"):
                break
        assert info["state"] == "done" and info["kind"] == "views" and info["views"] == 40, info
        status, _, frame = raw(front.url, "GET", f"/v1/jobs/{job_id}/result", None, auth)
        event = protocol.parse(wire.FrameReader(io.BytesIO(frame)).read(), protocol.EVENTS)
        assert status == 200 and isinstance(event, protocol.ViewsResult) and event.views.shape == (40, 256, 256, 3)
        status, _, answer = raw(front.url, "GET", f"/v1/jobs/{job_id}/result?format=glb", None, auth)
        assert status == 400 and b"a views job has no mesh" in answer
    finally:
        front.stop()


@pytest.mark.slow
def test_a_views_job_through_ray_serve(tmp_path, views_models, views_picture, views_reference):
    from model_server import start_model_server, stop_model_server

    server = start_model_server(tmp_path, views_models, arguments=("--replicas", "1"))
    try:
        with server.client() as client:
            assert [model["family"] for model in client.api.version()["model"]["models"]] == ["VIEWS"]
            result = client.run_views(VIEWS_TEST_SETTINGS, image_path=views_picture, timeout=600)
        assert same_views(result, views_reference)
    finally:
        stop_model_server(server)
