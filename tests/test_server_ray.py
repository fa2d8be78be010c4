"""The real model server (`python -m backend serve`, Ray Serve, two CPU replicas, the tiny
checkpoint and the tiny Shap-E text model), started once per session: concurrent clients
get exactly the in-process meshes, a text job too, the token gate holds on every path, cancel, a replica killed mid-job, the CLI
with --server, and nothing but loopback listens."""

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from server_front import raw

pytestmark = pytest.mark.slow
psutil = pytest.importorskip("psutil")

SLOW = {"resolution": 384}  # ~4.5 s on one core with the tiny model: time to cancel or kill
ENDED = ("result", "error", "cancelled")


@pytest.fixture(scope="module")
def in_process(tiny_model_dir):
    """The reference: the same job function in this process, on one thread like a replica."""
    import torch

    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(tiny_model_dir, "cpu")

    def run(path, settings):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return generate_mesh(loaded, path, GenerateSettings(**settings))
        finally:
            torch.set_num_threads(threads)

    return run


def events_until_end(client, job_id, timeout=180, on_event=None) -> list:
    seen, deadline = [], time.monotonic() + timeout
    while not any(e.kind in ENDED for e in seen if e.job_id == job_id):
        assert time.monotonic() < deadline, f"job {job_id} never ended: {seen[-5:]}"
        for event in client.poll():
            seen.append(event)
            if on_event is not None:
                on_event(event)
        time.sleep(0.02)
    return [e for e in seen if e.job_id == job_id]


def test_concurrent_clients_get_the_in_process_meshes(model_server, in_process, examples_dir):
    jobs = [("flamingo.png", {"resolution": 64}), ("chair.png", {"resolution": 48}), ("horse.png", {"resolution": 64})]
    results, errors = {}, []

    def one_client(name, settings):
        try:
            with model_server.client() as client:
                results[name] = client.run(settings, image_path=examples_dir / name, timeout=120)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append((name, exc))

    threads = [threading.Thread(target=one_client, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert errors == []
    for name, settings in jobs:
        expected, got = in_process(examples_dir / name, settings), results[name]
        for key in ("vertices", "faces", "colors", "prepared_image"):
            np.testing.assert_array_equal(getattr(got, key), getattr(expected, key), err_msg=f"{name} {key}")
        assert set(got.timings) == {"prepare", "encode", "field", "surface", "colors"} and got.device == "cpu"


def test_without_the_token_every_path_is_refused_and_nothing_runs(model_server, examples_dir):
    api = model_server.client().api
    before = api.health()["jobs"]
    image = (examples_dir / "flamingo.png").read_bytes()
    paths = [("POST", "/v1/jobs?resolution=32"), ("GET", "/v1/health"), ("GET", "/v1/version"),
             ("GET", "/v1/openapi.json"), ("GET", "/v1/jobs/" + "0" * 32), ("POST", f"/v1/jobs/{'0' * 32}/cancel"),
             ("GET", "/-/routes"), ("GET", "/-/healthz"), ("GET", "/"), ("GET", "/docs"), ("POST", "/anything")]
    for auth in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        for method, path in paths:
            status, _, body = raw(model_server.url, method, path, image, {**auth, "Content-Type": "image/png"})
            assert status == 401, (method, path, auth)
            assert json.loads(body)["error"]["code"] == "unauthorized"
    assert api.health()["jobs"] == before


def during_field(client, examples_dir, action) -> list:
    """Run a slow job, call action() once when its field stage starts; the job's events."""
    job_id = client.submit(SLOW, image_path=examples_dir / "flamingo.png")
    acted = []

    def on_event(event):
        if event.kind == "progress" and event.stage == "field" and not acted:
            acted.append(time.monotonic())
            action(job_id)

    events = events_until_end(client, job_id, on_event=on_event)
    assert acted, "the job never reached its field stage"
    return events, acted[0]


def test_cancel_stops_a_running_job_and_frees_its_replica(model_server, examples_dir):
    client = model_server.client()
    events, asked = during_field(client, examples_dir, client.cancel)
    assert events[-1].kind == "cancelled"
    assert time.monotonic() - asked < 3  # stops between field chunks, not at the end of the job
    started = time.monotonic()
    assert len(client.run({"resolution": 32}, image_path=examples_dir / "chair.png", timeout=60).faces) > 0
    assert time.monotonic() - started < 30


def test_errors_are_codes_and_sentences(model_server):
    from backend.bridge.errors import InputImageError

    with pytest.raises(InputImageError, match="not an image file") as raised:
        model_server.client().run({"resolution": 32}, image_bytes=b"this is not an image", timeout=60)
    assert "Traceback" not in raised.value.message


def test_a_text_job_gets_the_in_process_shap_e_mesh(model_server, shap_e_dirs):
    import torch

    from backend.bridge.errors import WrongModelError
    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    settings = {"family": "SHAP_E", "steps": 6, "shap_e_resolution": 40, "seed": 5}
    got = model_server.client().run(settings, prompt="a red wooden chair", timeout=120)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a replica runs
    try:
        loaded = load_model(shap_e_dirs["text"], "cpu", family="SHAP_E", task="text")
        expected = generate_mesh(loaded, None, GenerateSettings(**settings), prompt="a red wooden chair")
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(got.faces, expected.faces)
    np.testing.assert_allclose(got.vertices, expected.vertices, atol=1e-6)
    np.testing.assert_array_equal(got.colors, expected.colors)
    assert got.prepared_image.shape == (0, 0, 3) and "diffusion" in got.timings
    # the server has no Shap-E image model: the job says so, the server goes on
    with pytest.raises(WrongModelError, match="this server runs TripoSR .image., Shap-E .text., One-2-3-45 .image., not Shap-E for images"):
        model_server.client().run({"family": "SHAP_E"}, image_bytes=b"png", timeout=60)


def test_result_as_glb(model_server, examples_dir):
    from backend.bridge import protocol

    api = model_server.client().api
    pixels = np.frombuffer((examples_dir / "robot.png").read_bytes(), np.uint8)
    job_id = api.submit(protocol.Generate(job_id="glb", settings={"resolution": 32}, image_bytes=pixels))["job_id"]
    status = api.status(job_id)
    while status["state"] not in ("done", "failed", "cancelled"):
        status = api.status(job_id, since=status["version"], wait=5)
    glb = api.result_glb(job_id)
    assert status["state"] == "done" and glb[:4] == b"glTF" and len(glb) > 1000
    api.forget(job_id)


def test_textured_jobs_bring_their_uvs_and_textures_back(model_server, in_process, examples_dir):
    """The mesh stage on a replica: the same Result arrays as in process, and a GLB with both
    textures embedded."""
    import io

    import trimesh

    settings = {"resolution": 32, "max_faces": 500, "texture_size": 128}
    client = model_server.client()
    result = client.run(settings, image_path=examples_dir / "flamingo.png", timeout=180)
    expected = in_process(examples_dir / "flamingo.png", settings)
    np.testing.assert_array_equal(result.faces, expected.faces)
    np.testing.assert_array_equal(result.uvs, expected.uvs)
    np.testing.assert_array_equal(result.base_color, expected.base_color)
    np.testing.assert_array_equal(result.normal_map, expected.normal_map)
    from backend.bridge import protocol

    pixels = np.frombuffer((examples_dir / "flamingo.png").read_bytes(), np.uint8)
    job_id = client.api.submit(protocol.Generate(job_id="textured", settings=settings, image_bytes=pixels))["job_id"]
    status = client.api.status(job_id)
    while status["state"] not in ("done", "failed", "cancelled"):
        status = client.api.status(job_id, since=status["version"], wait=5)
    mesh = trimesh.load(io.BytesIO(client.api.result_glb(job_id)), file_type="glb", force="mesh", process=False)
    assert mesh.visual.material.baseColorTexture.size == mesh.visual.material.normalTexture.size == (128, 128)
    client.api.forget(job_id)


def test_the_cli_runs_on_the_server(model_server, in_process, examples_dir, tmp_path):
    import trimesh

    image = examples_dir / "chair.png"
    command = [sys.executable, "-m", "backend", "generate", str(image), "--server", model_server.url,
               "--token-file", str(model_server.token_file), "--out", str(tmp_path), "--format", "ply",
               "--resolution", "32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"server {model_server.url}" in done.stderr
    mesh = trimesh.load(tmp_path / "chair.ply", process=False)
    expected = in_process(image, {"resolution": 32})
    np.testing.assert_allclose(np.asarray(mesh.vertices), expected.vertices, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mesh.faces), expected.faces)

    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-servers-token-at-all\n")
    wrong.chmod(0o600)
    done = subprocess.run([*command[:8], str(wrong), *command[9:]], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"check the token file {wrong}" in done.stderr


def test_only_loopback_sockets_listen(model_server):
    listening = []
    for proc in model_server.tree():
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.append((conn.laddr.ip, conn.laddr.port, proc.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    names = {name for _, _, name in listening}
    assert any("raylet" in n for n in names) and any("gcs_server" in n for n in names), names
    assert any(n.startswith("ray::ServeRepli") for n in names), names
    loopback = ("127.", "::1", "::ffff:127.")
    exposed = [entry for entry in listening if not entry[0].startswith(loopback)]
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_a_replica_killed_mid_job_retries_once_and_the_server_goes_on(model_server, examples_dir):
    client = model_server.client()

    def kill_its_replica(job_id):
        replicas = [p for p in model_server.tree() if p.name().startswith("ray::ServeRepli")]
        assert len(replicas) == 2
        for proc in replicas:
            proc.cpu_percent(None)
        time.sleep(0.5)
        busy = max(replicas, key=lambda p: p.cpu_percent(None))  # the one running our job
        busy.send_signal(signal.SIGKILL)

    events, _ = during_field(client, examples_dir, kill_its_replica)
    assert events[-1].kind == "result", events[-3:]
    assert any(e.kind == "log" and "running it again" in e.message for e in events)
    assert len(client.run({"resolution": 32}, image_path=examples_dir / "chair.png", timeout=120).faces) > 0
