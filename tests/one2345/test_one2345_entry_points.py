"""One-2-3-45 through the CLI, the model process and the model server, on the tiny random
models: each gives the mesh of the job function in this process for the same picture and
seed (same seed -> same mesh, across processes), reports the family's stages in order, and
a cancel during the views ends the job between UNet steps. Blender's side is in
tests/blender/test_blender_one2345.py."""

import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from one2345_cases import REPO_ROOT
from worker_helpers import cancel_during

from backend.bridge.client import WorkerClient
from backend.bridge.settings import GenerateSettings, job_stages

CLI_FLAGS = ("--no-estimate-elevation", "--elevation", "20", "--steps", "3", "--seed", "5", "--resolution", "32")


def assert_same_mesh(result, reference):
    assert np.allclose(result.vertices, reference.vertices, atol=1e-6, rtol=0)
    assert np.array_equal(result.faces, reference.faces)
    assert np.array_equal(result.colors, reference.colors)


def test_the_cli_writes_the_in_process_mesh_and_says_first_what_a_cpu_costs(one2345_models, one2345_settings,
                                                                           one2345_reference, views_picture, tmp_path):
    assert one2345_settings["views_steps"] == 3 and one2345_settings["views_seed"] == 5  # what CLI_FLAGS say
    done = subprocess.run([sys.executable, "-m", "backend", "generate", str(views_picture), "--model", str(one2345_models),
                           "--out", str(tmp_path), "--format", "ply", "--device", "cpu", *CLI_FLAGS],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "note: One-2-3-45 on cpu: on a CPU the 32 views take long" in done.stderr
    assert "seed 5" in done.stdout
    written = trimesh.load(tmp_path / "box.ply", process=False)
    assert np.allclose(written.vertices, one2345_reference.vertices, atol=1e-6, rtol=0)
    assert np.array_equal(written.faces, one2345_reference.faces)
    assert np.array_equal(written.visual.vertex_colors, one2345_reference.colors)


@pytest.fixture(scope="module")
def client(one2345_models, tmp_path_factory):
    with WorkerClient(sys.executable, str(one2345_models), "cpu", log_dir=str(tmp_path_factory.mktemp("logs"))) as made:
        yield made


def test_the_worker_gives_the_in_process_mesh_and_the_familys_stages(client, one2345_settings, one2345_reference,
                                                                     views_picture):
    events = []
    result = client.run(one2345_settings, image_path=views_picture, on_event=events.append, timeout=600)
    assert_same_mesh(result, one2345_reference)
    assert np.array_equal(result.prepared_image, one2345_reference.prepared_image)  # the views' contact sheet
    stages = [event.stage for event in events if event.kind == "progress"]
    assert list(dict.fromkeys(stages)) == list(job_stages(GenerateSettings(**one2345_settings)))


def test_cancel_during_the_views_ends_the_job_between_unet_steps(client, one2345_settings, views_picture):
    job_id = client.submit({**one2345_settings, "views_steps": 60}, image_path=views_picture)
    ended, seconds, step_seconds = cancel_during(client, job_id, "views")  # after a few UNet steps
    assert ended == ["cancelled"]
    assert seconds < step_seconds + 2.0


@pytest.mark.slow
def test_the_model_server_runs_the_family(model_server, one2345_models, one2345_settings, views_picture):
    import torch

    from backend.pipeline import generate_mesh, load_model

    seen = []
    result = model_server.client().run(one2345_settings, image_path=views_picture, timeout=600,
                                       on_event=lambda event: seen.append(event.stage) if event.kind == "progress" else None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a replica runs (sums in another order move the views' pixels)
    try:
        loaded = load_model(one2345_models, "cpu", family="ONE2345")
        expected = generate_mesh(loaded, views_picture, GenerateSettings(**one2345_settings))
    finally:
        torch.set_num_threads(threads)
    assert_same_mesh(result, expected)
    assert result.prepared_image.shape == expected.prepared_image.shape
    stages = list(job_stages(GenerateSettings(**one2345_settings)))
    assert seen == sorted(seen, key=stages.index)  # status polls may skip a stage, never reorder
    served = [(m["family"], m["task"]) for m in model_server.client().api.version()["model"]["models"]]
    assert ("ONE2345", "image") in served


def test_the_benchmarks_tiny_mode_times_whole_jobs(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "bench/one2345_bench.py", "--tiny", "--device", "cpu", "--json", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"]["one2345_resolution"] == 32 and report["vertices"] > 0 and len(report["jobs"]) == 1
    assert set(report["stages_median_s"]) == {"prepare", "views", "reconstruction", "surface", "colors"}
    assert report["median_seconds"] >= report["stages_median_s"]["views"] > 0
    assert "| cpu | float32 |" in done.stdout
