"""Run On: Server inside real Blender (the bpy wheel): the operators and the headless
script against the session's model server (tests/conftest.py, model_server) build the
same objects as the local worker, say what is wrong, and never save the token."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from harness import NEEDS_BPY, SCRIPT, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, pytest.mark.slow, NEEDS_BPY]


@pytest.fixture(scope="module")
def server_run(extension_zip, model_server, examples_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("server")
    env = blender_environment(work / "home", zip=extension_zip, examples=examples_dir,
                              server_url=model_server.url, token_file=model_server.token_file)
    return run_scenario("server", work, env), np.load(work / "server.npz")


def test_the_server_builds_the_local_worker_s_object(server_run, generate_run):
    facts, arrays = server_run
    local_facts, local_arrays = generate_run[0], generate_run[1]
    assert facts["result"] == ["FINISHED"] and facts["client"] == "ServerClient"
    for key in ("faces", "colors", "smooth", "matrix_world"):
        np.testing.assert_array_equal(arrays[key], local_arrays[key], err_msg=key)
    # the local worker runs on two threads, the replica on one: the same within float rounding
    np.testing.assert_allclose(arrays["vertices"], local_arrays["vertices"], atol=1e-6)
    server_object, local_object = dict(facts["object"]), dict(local_facts["object"])
    for name in ("location", "rotation", "scale", "color_attribute", "material"):
        assert server_object.get(name) == local_object.get(name), name
    assert facts["torch_modules"] == []


def test_readiness_errors_and_a_wrong_token_are_said_plainly(server_run, model_server):
    facts = server_run[0]
    assert facts["readiness"]["no_url"][0] is False and "URL and access token" in facts["readiness"]["no_url"][1]
    assert facts["readiness"]["offline"][0] is False and "allow online access" in facts["readiness"]["offline"][1]
    assert facts["readiness"]["ready"] == [True, f"Ready: jobs run on the server at {model_server.url}"]
    assert facts["model_status"] == f"Jobs run on the server at {model_server.url}"
    assert "not an image file" in facts["failed_error"] and facts["unchanged_after_failure"]
    assert "refused the access token: check the access token in the add-on preferences" in facts["wrong_token_error"]


def test_a_batch_runs_on_the_server(server_run):
    batch = server_run[0]["batch"]
    assert batch["succeeded"] == ["chair.png", "horse.png"] and batch["failed"] == []
    assert "server http://127.0.0.1" in batch["log"]


def test_the_token_is_never_saved(server_run, model_server):
    facts = server_run[0]
    token = model_server.token.encode()
    assert token not in open(facts["saved"], "rb").read()
    assert model_server.token not in facts["batch"]["log"]


def test_the_headless_script_runs_on_the_server(model_server, examples_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("chair.png", "flamingo.png"):
        shutil.copy(examples_dir / name, inputs / name)
    env = blender_environment(tmp_path / "home")  # a fresh Blender: the script installs the extension
    command = [sys.executable, str(SCRIPT), "--", "--input", str(inputs), "--server", model_server.url,
               "--token-file", str(model_server.token_file), "--resolution", "32",
               "--save", str(tmp_path / "out" / "scene.blend"), "--export", str(tmp_path / "out"), "--format", "glb"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"running on the server at {model_server.url}" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").glob("*.glb")) == ["chair.glb", "flamingo.glb"]
    assert model_server.token.encode() not in (tmp_path / "out" / "scene.blend").read_bytes()
    user_files = [p for p in (tmp_path / "home").rglob("*") if p.is_file() and p.suffix in (".blend", ".json")]
    assert not any(model_server.token.encode() in p.read_bytes() for p in user_files)

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-servers-token-at-all\n")
    wrong.chmod(0o600)
    command[command.index("--token-file") + 1] = str(wrong)
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2 and f"refused the access token: check the token file {wrong}" in done.stderr
