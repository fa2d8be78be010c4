"""The server's HTTP front and the stdlib clients over real loopback sockets, with a
stand-in for the model replicas (no Ray): the token gate, the routes, limits, errors,
ServerClient's events, and TLS."""

import json
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from server_front import TOKEN, RunningFront, raw

from backend.bridge import protocol, wire
from backend.bridge.errors import InputImageError, PromptError, ServerBusy, ServerUnreachable, Unauthorized, WorkerTimeout
from backend.bridge.options import JOB_OPTIONS
from backend.bridge.server_api import FRAME_TYPE, ServerApi
from backend.bridge.server_client import ServerClient

PATHS = [("GET", "/"), ("GET", "/v1/health"), ("GET", "/v1/version"), ("GET", "/v1/openapi.json"),
         ("POST", "/v1/jobs"), ("GET", "/v1/jobs/0123"), ("DELETE", "/v1/jobs/0123"),
         ("GET", "/v1/jobs/0123/result"), ("POST", "/v1/jobs/0123/cancel"), ("GET", "/-/routes"),
         ("GET", "/-/healthz"), ("GET", "/docs"), ("PUT", "/v1/jobs"), ("GET", "/../../etc/passwd")]


@pytest.fixture
def front():
    running = RunningFront()
    yield running
    running.stop()


def frame(**fields) -> bytes:
    fields = {"job_id": "j1", "settings": {"resolution": 32}, **fields}
    arrays = {} if "image_path" in fields else {"image_bytes": np.frombuffer(b"png", np.uint8)}
    return b"".join(wire.encode("generate", fields, arrays))


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_every_path_needs_the_token_and_starts_nothing(front, auth):
    headers = {"Authorization": auth} if auth else {}
    for method, path in PATHS:
        status, response_headers, body = raw(front.url, method, path, b"\x89PNG" * 10,
                                             {**headers, "Content-Type": "image/png"})
        assert status == 401, (method, path)
        assert json.loads(body)["error"]["code"] == "unauthorized"
        assert response_headers["www-authenticate"].startswith("Bearer")
    assert front.pool.started == 0 and front.table.jobs() == []


def test_run_returns_the_mesh_and_forgets_the_job(front):
    client = ServerClient(front.url, TOKEN)
    events = []
    result = client.run({"resolution": 32}, image_bytes=b"png bytes", on_event=events.append)
    np.testing.assert_array_equal(result.faces, front.pool.mesh["faces"])
    assert result.vertices.dtype == np.float32 and result.device == "cpu" and result.notes == ["a note"]
    kinds = [event.kind for event in events]
    assert kinds[0] == "accepted" and kinds[-1] == "result"
    assert {event.stage for event in events if event.kind == "progress"} <= {"prepare", "encode", "field"}
    deadline = time.monotonic() + 5
    while front.table.jobs():  # the job's thread deletes it after handing over the result
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_files_travel_as_their_bytes_and_pixels_as_arrays(front, tmp_path):
    client = ServerClient(front.url, TOKEN)
    image = tmp_path / "hang.png"
    image.write_bytes(b"hang")
    first = client.submit({"resolution": 32}, image_path=image)
    pixels = np.zeros((16, 16, 4), dtype=np.float32)
    second = client.submit({"resolution": 32}, image_pixels=pixels)
    deadline = time.monotonic() + 5
    while len(front.pool.images) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    images = sorted(front.pool.images, key=lambda i: isinstance(i, np.ndarray))
    assert images[0] == b"hang"
    assert isinstance(images[1], np.ndarray) and images[1].shape == (16, 16, 4) and images[1].dtype == np.float32
    for job_id in (first, second):
        client.cancel(job_id)
    client.close()


def test_a_bad_path_is_refused_before_anything_is_sent(front, tmp_path):
    with pytest.raises(InputImageError, match="no such file"):
        ServerClient(front.url, TOKEN).submit({}, image_path=tmp_path / "missing.png")
    assert front.pool.started == 0


def test_job_errors_come_back_as_the_backend_error_classes(front):
    with pytest.raises(InputImageError, match="not an image file"):
        ServerClient(front.url, TOKEN).run({}, image_bytes=b"fail")


def test_cancel_ends_the_job_cancelled_and_timeouts_cancel_too(front):
    client = ServerClient(front.url, TOKEN)
    job_id = client.submit({}, image_bytes=b"hang")
    seen = []
    while not any(event.kind == "progress" for event in seen):
        seen += client.poll()
        time.sleep(0.01)
    client.cancel(job_id)
    deadline = time.monotonic() + 5
    while not any(event.kind == "cancelled" for event in seen):
        assert time.monotonic() < deadline, seen
        seen += client.poll()
        time.sleep(0.01)
    with pytest.raises(WorkerTimeout, match="within 0.3 s"):
        client.run({}, image_bytes=b"hang", timeout=0.3)
    client.close()
    assert all(job.is_terminal for job in front.table.jobs())


def test_status_long_poll_answers_on_change(front):
    api = ServerApi(front.url, TOKEN)
    job_id = api.submit(protocol.Generate(job_id="x", settings={}, image_bytes=np.frombuffer(b"hang", np.uint8)))["job_id"]
    first = api.status(job_id)
    started = time.monotonic()
    later = api.status(job_id, since=first["version"], wait=5)
    assert later["version"] != first["version"] and time.monotonic() - started < 2
    api.cancel(job_id)
    while later["state"] != "cancelled":
        later = api.status(job_id, since=later["version"], wait=5)
    with pytest.raises(Exception, match="cancelled by the user"):
        api.result(job_id)


def test_an_image_file_with_settings_in_the_query_works_like_curl(front):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    status, headers, body = raw(front.url, "POST", "/v1/jobs?resolution=48&remove_background=false", b"png", auth)
    assert status == 202 and headers["location"] == f"/v1/jobs/{json.loads(body)['job_id']}"
    (job,) = front.table.jobs()
    assert job.settings["resolution"] == 48 and job.settings["remove_background"] is False


def test_text_jobs_travel_as_prompts_with_the_same_limits(front):
    client = ServerClient(front.url, TOKEN)
    result = client.run({"family": "SHAP_E", "seed": 3}, prompt="  a red\nchair ")
    assert len(result.faces) == 2 and front.pool.prompts == ["a red chair"] and front.pool.images == [None]
    # like curl: the prompt as the body, settings in the query; a prompt means Shap-E unless the query says
    status, _, body = raw(front.url, "POST", "/v1/jobs?steps=8", "a blue teapot".encode(),
                          {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain; charset=utf-8"})
    assert status == 202, body
    assert front.pool.prompts[-1] == "a blue teapot"
    assert front.table.get(json.loads(body)["job_id"]).settings["family"] == "SHAP_E"
    for body, query, code in [(b"   ", "", "bad_prompt"), (b"\xff\xfe", "", "bad_prompt"),
                              (b"a chair", "?family=TRIPOSR", "wrong_model")]:
        status, _, answer = raw(front.url, "POST", "/v1/jobs" + query, body,
                                {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"})
        assert (status, json.loads(answer)["error"]["code"]) == (400, code), answer
    status, _, answer = raw(front.url, "POST", "/v1/jobs", b"x" * (2 << 20),
                            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"})
    assert status == 413
    text_frame = b"".join(wire.encode("generate", {"job_id": "j1", "settings": {}, "prompt": "a chair"}, {}))
    status, _, answer = raw(front.url, "POST", "/v1/jobs", text_frame,
                            {"Authorization": f"Bearer {TOKEN}", "Content-Type": FRAME_TYPE})
    assert (status, json.loads(answer)["error"]["code"]) == (400, "wrong_model")  # a frame's family is its own
    with pytest.raises(PromptError, match="empty"):
        client.run({"family": "SHAP_E"}, prompt="")  # refused before anything is sent
    assert front.pool.started == 2


def test_request_limits_and_bad_requests(front):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    image = {"Content-Type": "image/png"}
    framed = {"Content-Type": FRAME_TYPE}
    cases = [
        ({"Content-Type": "application/json"}, b"{}", "/v1/jobs", 415, "unsupported_media_type"),
        (image, b"x" * (2 << 20), "/v1/jobs", 413, "too_large"),
        (image, b"", "/v1/jobs", 400, "bad_request"),
        (image, b"x", "/v1/jobs?resolution=abc", 400, "bad_request"),
        (image, b"x", "/v1/jobs?resolution=4", 400, "bad_request"),
        (image, b"x", "/v1/jobs?threshold=nan", 400, "bad_request"),
        (image, b"x", "/v1/jobs?colour=red", 400, "bad_request"),
        (image, b"x", "/v1/jobs?resolution=32&resolution=64", 400, "bad_request"),
        (framed, b"I3D\x01garbage", "/v1/jobs", 400, "bad_request"),
        (framed, frame(image_path="/etc/passwd"), "/v1/jobs", 400, "bad_request"),
        (framed, frame(model="other"), "/v1/jobs", 400, "bad_request"),
        (framed, frame(settings={"resolution": "32"}), "/v1/jobs", 400, "bad_request"),
        (framed, frame() + frame(), "/v1/jobs", 400, "bad_request"),
        (framed, b"".join(wire.encode("ping", {"id": "x"})), "/v1/jobs", 400, "bad_request"),
    ]
    for headers, body, path, status, code in cases:
        got, _, data = raw(front.url, "POST", path, body, {**auth, **headers})
        assert (got, json.loads(data)["error"]["code"]) == (status, code), (path, headers, body[:20])
        assert "Traceback" not in data.decode()
    assert front.pool.started == 0


def test_unknown_jobs_paths_and_methods_are_json_errors(front):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    job_id = ServerApi(front.url, TOKEN).submit(
        protocol.Generate(job_id="x", settings={}, image_bytes=np.frombuffer(b"png", np.uint8)))["job_id"]
    for method, path, status, code in [("GET", f"/v1/jobs/{job_id}?since=0&wait=nan", 400, "bad_request"),
                                       ("GET", f"/v1/jobs/{job_id}?since=0&wait=-1", 400, "bad_request"),
                                       ("GET", f"/v1/jobs/{job_id}/result?format=zip", 400, "bad_request"),
                                       ("GET", "/v1/jobs/" + "0" * 32, 404, "unknown_job"),
                                       ("GET", "/v1/nothing", 404, "not_found"),
                                       ("PUT", "/v1/jobs", 405, "method_not_allowed")]:
        got, _, data = raw(front.url, method, path, None, auth)
        assert (got, json.loads(data)["error"]["code"]) == (status, code)


def test_a_full_server_says_so(front):
    client = ServerClient(front.url, TOKEN)
    for _ in range(front.table.max_active):
        client.submit({}, image_bytes=b"hang")
    deadline = time.monotonic() + 10
    while len(front.table.jobs()) < front.table.max_active:  # submit() sends from a thread of its own
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(ServerBusy, match="busy.*try again"):
        client.run({}, image_bytes=b"hang", timeout=10)
    client.close()


def test_wrong_token_and_unreachable_server_each_say_what_to_check(front):
    with pytest.raises(Unauthorized, match="check the token file /x/token"):
        ServerApi(front.url, "not-the-right-token-at-all", token_source="the token file /x/token").health()
    port = front.sock.getsockname()[1]
    front.stop()
    with pytest.raises(ServerUnreachable, match="is it running"):
        ServerClient(f"http://127.0.0.1:{port}", TOKEN).run({}, image_bytes=b"png", timeout=10)


def test_openapi_lists_exactly_the_routes(front):
    document = ServerApi(front.url, TOKEN)._json("GET", "/openapi.json")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    from starlette.routing import Route

    app = front.server.config.app
    while not hasattr(app, "routes"):  # the guard, the token gate and the request bound wrap the Starlette app
        app = app.app
    routed = {(r.path, m) for r in app.routes if isinstance(r, Route) for m in r.methods if m != "HEAD"}
    assert documented == routed
    parameters = {p["name"] for p in document["paths"]["/v1/jobs"]["post"]["parameters"]}
    assert parameters == {option.name for option in JOB_OPTIONS} | {"prompt"}  # every family's; an image's prompt
    assert {"resolution", "threshold", "foreground_ratio", "remove_background", "max_faces", "texture_size",
            "normal_map", "smooth_iterations", "keep_floaters", "family", "steps"} <= parameters


def test_clients_on_many_threads_share_nothing_but_the_server(front):
    client, errors = ServerClient(front.url, TOKEN), []

    def worker():
        try:
            for _ in range(5):
                client.run({}, image_bytes=b"png", timeout=20)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_direct(tls_files):
    cert, key = tls_files
    running = RunningFront(tls=(cert, key))
    try:
        assert running.url.startswith("https://")
        result = ServerClient(running.url, TOKEN, ca_file=cert).run({}, image_bytes=b"png", timeout=20)
        assert len(result.vertices) == 4
        with pytest.raises(ServerUnreachable, match="certificate"):
            ServerApi(running.url, TOKEN).health()  # not trusted without the CA file
        with pytest.raises(ServerUnreachable):
            ServerApi(running.url.replace("https", "http"), TOKEN).health()  # plain HTTP is not served
    finally:
        running.stop()


def test_the_documented_openapi_file_is_the_served_one():
    from pathlib import Path

    from backend.server.cli import DEFAULT_MAX_UPLOAD_MB
    from backend.server.openapi import build_openapi

    documented = json.loads((Path(__file__).resolve().parents[1] / "docs" / "openapi.json").read_text())
    assert documented == build_openapi(DEFAULT_MAX_UPLOAD_MB << 20), (
        "docs/openapi.json is stale: regenerate it as docs/server.md says")


def test_an_image_with_a_prompt_for_the_family_that_takes_one(front):
    """Make-It-3D's image jobs carry a prompt (?prompt= with an image body, or in the
    frame); other families refuse one, and Make-It-3D refuses an image without one."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    status, _, body = raw(front.url, "POST", "/v1/jobs?family=MAKE_IT_3D&prompt=a%20red%20%20chair&m3d_seed=3",
                          b"hang", headers)
    assert status == 202, body
    job = front.table.get(json.loads(body)["job_id"])
    assert job.prompt == "a red chair" and job.settings["m3d_seed"] == 3 and front.pool.images[-1] == b"hang"
    status, _, body = raw(front.url, "POST", "/v1/jobs?family=MAKE_IT_3D", b"hang", headers)
    assert status == 400 and "Make-It-3D needs a prompt with the image" in json.loads(body)["error"]["message"]
    status, _, body = raw(front.url, "POST", "/v1/jobs?prompt=a%20chair", b"hang", headers)
    assert status == 400 and "TripoSR jobs take exactly one of an image or a prompt" in json.loads(body)["error"]["message"]
    status, _, body = raw(front.url, "POST", "/v1/jobs?prompt=a%20chair", b"a chair",
                          {**headers, "Content-Type": "text/plain"})
    assert status == 400 and "leave ?prompt= out" in json.loads(body)["error"]["message"]
    front.pool.cancel(job)


def test_progress_words_and_previews_reach_the_client(front):
    client = ServerClient(front.url, TOKEN)
    job_id = client.submit({"family": "MAKE_IT_3D"}, image_bytes=b"long", prompt="a red chair")
    events, deadline = [], time.monotonic() + 20
    while not any(event.kind == "preview" for event in events):
        assert time.monotonic() < deadline, events
        events += client.poll()
        time.sleep(0.01)
    (server_job,) = front.table.jobs()
    assert front.pool.prompts[-1] == "a red chair"
    status = ServerApi(front.url, TOKEN).status(server_job.job_id)
    assert status["detail"] == "coarse 2/4, loss 0.25"
    assert status["preview"] == {"number": 1, "stage": "coarse", "iteration": 2}
    progress = [event for event in events if event.kind == "progress"]
    assert [(event.stage, event.detail) for event in progress] == [("coarse", "coarse 2/4, loss 0.25")]
    (preview,) = [event for event in events if event.kind == "preview"]
    assert (preview.job_id, preview.stage, preview.iteration) == (job_id, "coarse", 2)
    np.testing.assert_array_equal(preview.image, front.pool.PREVIEW)
    client.cancel(job_id)
    while not any(event.kind == "cancelled" for event in events):
        assert time.monotonic() < deadline
        events += client.poll()
        time.sleep(0.01)
    client.close()


def test_the_preview_route(front):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    status, _, body = raw(front.url, "POST", "/v1/jobs", b"hang", headers)
    job = front.table.get(json.loads(body)["job_id"])
    status, _, body = raw(front.url, "GET", f"/v1/jobs/{job.job_id}/preview", None, headers)
    assert status == 409 and json.loads(body)["error"]["code"] == "not_ready"
    job.mark_preview("texture", 5, np.full((4, 4, 3), 7, np.uint8))
    event = ServerApi(front.url, TOKEN).preview(job.job_id)
    assert isinstance(event, protocol.Preview) and (event.stage, event.iteration) == ("texture", 5)
    assert event.image.shape == (4, 4, 3) and (event.image == 7).all()
    front.pool.cancel(job)
