"""Make-It-3D through the entry points outside Blender, with tiny models and a handful of
iterations: the CLI (make-test-model, a textured object, the loss on its progress line,
the CPU refusal), the worker (progress words, previews, cancel, the refusal) and a real
model server (the same as a long job). Slow: each starts processes that load the models.
Blender's side is tests/blender/test_blender_make_it_3d.py."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from backend.bridge.errors import DeviceError
from backend.bridge.settings import GenerateSettings

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
PROMPT = "a red and blue disc"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models on a busy 2-core machine: threads only fight
FAST_FLAGS = ["--family", "MAKE_IT_3D", "--coarse-iterations", "6", "--refine-iterations", "3", "--render-size", "24",
              "--resolution", "32", "--preview-every", "2", "--faces", "300", "--texture", "128", "--device", "cpu"]


@pytest.fixture(scope="module")
def picture(disc_rgba, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "disc.png"
    Image.fromarray(disc_rgba, "RGBA").save(path)
    return path


def backend_cli(*args, timeout=400):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **ONE_THREAD}, timeout=timeout)


def test_cli_from_make_test_model_to_a_textured_object(picture, tmp_path):
    models = tmp_path / "models"
    made = backend_cli("make-test-model", "make-it-3d", models)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in models.iterdir()) == ["clip-vit-large-patch14", "dpt-hybrid-midas",
                                                         "stable-diffusion-2-base", "triposr"]
    done = backend_cli("generate", picture, "--prompt", PROMPT, "--model", models, "--out", tmp_path / "out",
                       "--seed", "3", *FAST_FLAGS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Make-It-3D model" in done.stderr and "texture 3/3, loss" in done.stderr  # the progress line's words
    assert "seed 3, 128 px textures" in done.stdout + done.stderr
    scene = trimesh.load(tmp_path / "out" / "disc.glb", force="mesh", process=False)
    assert 0 < len(scene.faces) <= 300 and scene.visual.uv is not None
    assert scene.visual.material.baseColorTexture.size == (128, 128)

    refused = backend_cli("generate", picture, "--prompt", PROMPT, "--model", models, "--out", tmp_path / "refused",
                          "--cpu-minutes", "0.000001", *FAST_FLAGS)
    assert refused.returncode == 1
    assert "Make-It-3D needs a GPU: about 1 minute on this CPU" in refused.stderr and "--cpu-minutes 0" in refused.stderr


def test_worker_reports_words_and_previews_cancels_and_refuses(m3d_family_dir, picture, m3d_fast):
    from backend.bridge.client import WorkerClient

    settings = GenerateSettings(**m3d_fast)
    with WorkerClient(python=sys.executable, model=str(m3d_family_dir), device="cpu", env=ONE_THREAD) as worker:
        events = []
        result = worker.run(settings, image_path=str(picture), prompt=PROMPT, on_event=events.append, timeout=400)
        assert result.uvs is not None and result.base_color.shape == (128, 128, 3) and len(result.faces) <= 300
        words = [event.detail for event in events if event.kind == "progress" and event.detail]
        assert "coarse 6/6" in " ".join(words) and "texture 3/3" in " ".join(words) and all(", loss " in w for w in words)
        previews = [(event.stage, event.iteration, event.image.shape) for event in events if event.kind == "preview"]
        assert previews == [("coarse", 2, (24, 24, 3)), ("coarse", 4, (24, 24, 3)), ("coarse", 6, (24, 24, 3)),
                            ("texture", 2, (32, 32, 3)), ("texture", 3, (32, 32, 3))]

        with pytest.raises(DeviceError, match=r"Make-It-3D needs a GPU: about .* \(--cpu-minutes 0\)"):
            worker.run(GenerateSettings(**{**m3d_fast, "m3d_cpu_minutes": 1e-6}), image_path=str(picture),
                       prompt=PROMPT, timeout=400)
        with pytest.raises(ValueError, match="Make-It-3D needs a prompt with the image"):
            worker.submit(settings, image_path=str(picture))  # refused before anything is sent

        long = GenerateSettings(**{**m3d_fast, "m3d_coarse_iterations": 500})
        job_id = worker.submit(long, image_path=str(picture), prompt=PROMPT)
        seen, deadline = [], time.monotonic() + 300
        while not any(e.kind == "progress" and (e.detail or "").startswith("coarse 2/500") for e in seen):
            assert time.monotonic() < deadline, [e.kind for e in seen]
            seen += [e for e in worker.poll() if e.job_id == job_id]
            time.sleep(0.02)
        worker.cancel(job_id)
        asked = time.monotonic()
        while not any(e.kind in ("cancelled", "result", "error") for e in seen):
            assert time.monotonic() < deadline
            seen += [e for e in worker.poll() if e.job_id == job_id]
            time.sleep(0.02)
        assert seen[-1].kind == "cancelled" and time.monotonic() - asked < 10  # an iteration is well under a second here
        later = [e.detail for e in seen if e.kind == "progress" and e.detail]
        assert int(later[-1].split()[1].split("/")[0]) < 500


def test_server_runs_it_as_a_long_job(m3d_family_dir, picture, m3d_fast, tmp_path, monkeypatch):
    from model_server import start_model_server, stop_model_server

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    server = start_model_server(tmp_path, m3d_family_dir, arguments=("--replicas", "1", "--max-batch", "1"))
    try:
        client = server.client()
        served = client.api.version()["model"]["models"]
        assert [(entry["family"], entry["task"]) for entry in served] == [("MAKE_IT_3D", "image")]
        events = []
        result = client.run(GenerateSettings(**m3d_fast), image_path=str(picture), prompt=PROMPT,
                            on_event=events.append, timeout=400)
        assert result.uvs is not None and result.base_color.shape == (128, 128, 3)
        words = [event.detail for event in events if event.kind == "progress" and event.detail]
        assert words and all(", loss " in text for text in words)
        previews = [event for event in events if event.kind == "preview"]
        assert previews and all(event.image.dtype == np.uint8 and event.image.shape[2] == 3 for event in previews)
        assert {event.stage for event in previews} <= {"coarse", "texture"}
        with pytest.raises(DeviceError, match="Make-It-3D needs a GPU"):
            client.run(GenerateSettings(**{**m3d_fast, "m3d_cpu_minutes": 1e-6}), image_path=str(picture),
                       prompt=PROMPT, timeout=400)
    finally:
        stop_model_server(server)
