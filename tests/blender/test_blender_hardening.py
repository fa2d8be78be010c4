"""Hardening inside real Blender and through the headless script: nothing persists that
should not, nothing is lost, every failure is a sentence."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from harness import NEEDS_BPY, SCRIPT, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]


@pytest.fixture(scope="module")
def hardening(extension_zip, tiny_model_dir, examples_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("hardening")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, examples=examples_dir)
    return run_scenario("hardening", work, env)


def test_a_named_image_wins_over_an_earlier_call_s_file(hardening):
    assert hardening["second_source"].endswith("chair.png")


def test_a_missing_image_name_is_an_error(hardening):
    assert "no image named 'No Such Image'" in hardening["missing_image_error"]


def test_exr_images_are_sent_as_pixels(hardening):
    assert hardening["exr_input_kind"] == "pixels" and hardening["exr_result"] == ["FINISHED"]


def test_a_link_loop_is_named_without_a_traceback(hardening):
    assert "link loop" in hardening["loop_error"] and "Traceback" not in hardening["loop_error"]


def test_release_gives_the_model_back(hardening):
    assert "loaded on CPU" in hardening["status_loaded"]
    assert hardening["release"] == ["FINISHED"] and not hardening["running_after_release"]
    assert hardening["status_released"] == "Model not loaded"


def test_export_names_never_collide_and_stale_staging_is_removed(hardening):
    assert [name for name in hardening["exports"] if name.endswith(".obj")] == ["a_b.obj", "a_b_2.obj"]
    assert not [name for name in hardening["exports"] if name.startswith(".")]


def test_an_export_that_dies_leaves_nothing_under_its_name(hardening):
    assert "exporter crashed" in hardening["failed_export_error"]
    assert hardening["exports_after_failure"] == hardening["exports"]


def test_model_input_images_survive_a_save(hardening):
    before, after = hardening["model_inputs"]
    assert before and after == before


# ---------------------------------------------------------------------- the headless script


def headless(*args, home, cwd, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPT), "--", *map(str, args)], env=blender_environment(home),
                          cwd=cwd, capture_output=True, text=True, timeout=240, **kwargs)


def test_save_onto_a_folder_is_refused_before_any_work(tmp_path, tiny_model_dir, flamingo_path):
    (tmp_path / "scene").mkdir()
    done = headless("--input", flamingo_path, "--model", tiny_model_dir, "--save", tmp_path / "scene",
                    home=tmp_path / "home", cwd=tmp_path)
    assert done.returncode == 2 and "is a folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("scene")) == ["scene"]


def test_an_out_of_range_option_is_refused_not_clamped(tmp_path, tiny_model_dir, flamingo_path):
    done = headless("--input", flamingo_path, "--model", tiny_model_dir, "--resolution", "0",
                    home=tmp_path / "home", cwd=tmp_path)
    assert done.returncode == 2 and "resolution must be" in done.stderr


def test_ctrl_c_in_a_headless_batch_keeps_what_is_done_and_writes_its_log(tmp_path, tiny_model_dir, examples_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("chair.png", "flamingo.png", "horse.png"):
        shutil.copy(examples_dir / name, inputs / name)
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--", "--input", str(inputs), "--model", str(tiny_model_dir),
         "--resolution", "256", "--export", str(tmp_path / "out")],
        env=blender_environment(tmp_path / "home"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline, seen = time.monotonic() + 180, ""
    while "batch:" not in seen and time.monotonic() < deadline:
        seen += process.stdout.readline()
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "interrupted" in (out + err).lower() and "Traceback" not in err
    (log,) = (tmp_path / "out").glob("image_to_3d_batch_*.log")
    assert "not run" in log.read_text()
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]
