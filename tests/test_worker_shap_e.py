"""Shap-E through the real model process: text and image jobs equal the in-process job, one
worker switches between families, cancel mid-diffusion, and each error says what to do."""

import sys
import time

import numpy as np
import pytest

from backend.bridge.client import WorkerClient
from backend.bridge.errors import ModelNotFoundError, PromptError, WrongModelError
from backend.bridge.settings import GenerateSettings

TEXT = GenerateSettings(family="SHAP_E", steps=6, shap_e_resolution=40, seed=2)
CHAIR = "a red wooden chair"


@pytest.fixture(scope="module")
def client(tiny_model_dir, tmp_path_factory):
    with WorkerClient(sys.executable, str(tiny_model_dir), "cpu", log_dir=str(tmp_path_factory.mktemp("log"))) as worker:
        yield worker


@pytest.fixture(scope="module")
def in_process(shap_e_dirs):
    from backend.pipeline import generate_mesh, load_model

    text = load_model(shap_e_dirs["text"], "cpu", family="SHAP_E", task="text")
    return generate_mesh(text, None, TEXT, prompt=CHAIR)


def assert_same_mesh(result, expected):
    np.testing.assert_array_equal(result.faces, expected.faces)
    np.testing.assert_allclose(result.vertices, expected.vertices, atol=1e-6)  # worker threads may round differently
    np.testing.assert_array_equal(result.colors, expected.colors)


def test_a_text_job_equals_the_in_process_job(client, shap_e_dirs, in_process):
    events = []
    result = client.run(TEXT, prompt=CHAIR, model=shap_e_dirs["text"], on_event=events.append, timeout=120)
    assert_same_mesh(result, in_process)
    assert result.prepared_image.shape == (0, 0, 3)
    stages = [e.stage for e in events if e.kind == "progress" and e.fraction == 0.0]
    assert stages == ["prepare", "encode", "diffusion", "field", "surface", "colors"]


def test_one_worker_switches_families(client, shap_e_dirs, tiny_model_dir, flamingo_path, disc_picture, in_process):
    image_job = GenerateSettings(family="SHAP_E", steps=4, shap_e_resolution=32)
    picture = client.run(image_job, image_pixels=disc_picture, model=shap_e_dirs["image"], timeout=120)
    assert len(picture.faces) > 0 and picture.prepared_image.shape == (64, 64, 3)
    triposr = client.run(GenerateSettings(resolution=32), image_path=flamingo_path, model=tiny_model_dir, timeout=120)
    assert client.model_state["model_dir"] == str(tiny_model_dir) and len(triposr.faces) > 0
    again = client.run(TEXT, prompt=CHAIR, model=shap_e_dirs["text"], timeout=120)
    assert_same_mesh(again, in_process)
    events = []
    client.run(TEXT, prompt="a teapot", model=shap_e_dirs["text"], precision="bfloat16", on_event=events.append,
               timeout=120)
    logs = " ".join(e.message for e in events if e.kind == "log")
    assert "bfloat16)" in logs and "reusing" not in logs  # another precision: loaded again
    assert client.model_state["precision"] == "bfloat16"


def test_cancel_mid_diffusion(client, shap_e_dirs):
    job_id = client.submit(GenerateSettings(family="SHAP_E", steps=400, shap_e_resolution=32), prompt=CHAIR,
                           model=shap_e_dirs["text"])
    seen, deadline = [], time.monotonic() + 120
    while not any(e.kind == "progress" and e.stage == "diffusion" and e.fraction > 0 for e in seen):
        assert time.monotonic() < deadline, seen[-5:]
        seen += [e for e in client.poll() if e.job_id == job_id]
        time.sleep(0.01)
    asked = time.monotonic()
    client.cancel(job_id)
    while not any(e.kind in ("cancelled", "result", "error") for e in seen):
        assert time.monotonic() < deadline
        seen += [e for e in client.poll() if e.job_id == job_id]
        time.sleep(0.01)
    assert seen[-1].kind == "cancelled" and time.monotonic() - asked < 2  # between steps, not at the end
    progress = [e.fraction for e in seen if e.kind == "progress" and e.stage == "diffusion"]
    assert max(progress) < 0.5


def test_errors(client, shap_e_dirs, tiny_model_dir, tmp_path):
    with pytest.raises(PromptError, match="empty"):
        client.run(TEXT, prompt="  ", model=shap_e_dirs["text"])  # refused before it is sent
    with pytest.raises(WrongModelError, match="TripoSR model folder .*not Shap-E") as caught:
        client.run(TEXT, prompt=CHAIR, model=tiny_model_dir, timeout=60)
    assert caught.value.code == "wrong_model"
    with pytest.raises(WrongModelError, match="image-to-3D model .*needs openai/shap-e$"):
        client.run(TEXT, prompt=CHAIR, model=shap_e_dirs["image"], timeout=60)
    with pytest.raises(ModelNotFoundError, match="does not exist: use a folder of openai/shap-e"):
        client.run(TEXT, prompt=CHAIR, model=tmp_path / "none", timeout=60)
    with pytest.raises(WrongModelError, match="not from a text prompt"):
        client.run(GenerateSettings(), prompt=CHAIR)
