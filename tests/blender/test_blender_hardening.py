"""Hardening inside real Blender and through the headless script: nothing persists that
should not, nothing is lost, every failure is a sentence."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def headless(*args, home, cwd, timeout=240, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPT), "--", *map(str, args)], env=blender_environment(home),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


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


# ---------------------------------------------------------------------- issue 24

PICTURE = Path(__file__).resolve().parents[2] / "assets" / "example.png"  # the project's own picture
EXPORTS = Path(__file__).with_name("hardening_scenarios.py")


@pytest.fixture(scope="module")
def exports_run(extension_zip, tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("hardening_exports")
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, picture=PICTURE)
    return run_scenario("exports", work, env, EXPORTS)


def test_pixels_that_are_not_numbers_are_refused_in_blender(exports_run):
    assert "image 'broken render' has 2 pixels that are not numbers (NaN or infinity)" in exports_run["nan_error"]
    assert exports_run["nan_objects_added"] == 0


def test_a_batch_exporting_into_its_input_folder_overwrites_no_picture(exports_run):
    assert exports_run["batch_failed"] == []
    assert exports_run["inputs_unchanged"] == {"chair.png": True, "chair_color.png": True}
    assert exports_run["made"] == [
        "chair_2.mtl", "chair_2.obj", "chair_2_color.png", "chair_2_normal.png",
        "chair_color.mtl", "chair_color.obj", "chair_color_color.png", "chair_color_normal.png"]
    assert "chair_2_color.png" in exports_run["chair_mtl"]


def test_export_names_are_one_file_on_every_system(exports_run):
    assert exports_run["names"] == ["CON_.ply", "con__2.ply", "Table.ply", "table_2.ply"]


def test_save_and_export_that_cannot_be_written_are_refused_before_any_work(tmp_path, tiny_model_dir):
    (tmp_path / "file.txt").write_text("x")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    shutil.copy(PICTURE, pictures / "chair.png")
    for flag, where, source in (("--save", tmp_path / "file.txt" / "scene.blend", pictures / "chair.png"),
                                ("--export", tmp_path / "file.txt" / "meshes", pictures)):
        done = headless("--input", source, "--model", tiny_model_dir, flag, where, "--resolution", "32",
                        home=tmp_path / "home", cwd=tmp_path)
        assert done.returncode == 2, (flag, done.stdout, done.stderr)
        assert f"{flag} {where} cannot be written: " in done.stderr and "Traceback" not in done.stderr
        assert " -> " not in done.stdout  # nothing was converted


def test_headless_faces_4_gives_at_most_4_triangles(tmp_path, tiny_model_dir):
    import trimesh

    done = headless("--input", PICTURE, "--model", tiny_model_dir, "--resolution", "64", "--faces", "4",
                    "--texture", "64", "--export", tmp_path / "out", "--format", "ply",
                    home=tmp_path / "home", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out").glob("*.ply")
    assert 1 <= len(trimesh.load(path, process=False).faces) <= 4


INVISIBLE = "\u200b\ufeff"  # a zero-width space and a byte-order mark


def test_headless_invisible_prompt_fails_alone(tmp_path, shap_e_dirs):
    """As an empty --prompt does: that prompt fails, the others are made (exit 1)."""
    done = headless("--prompt", INVISIBLE, "--prompt", "a chair", "--model", shap_e_dirs["text"],
                    "--steps", "2", "--resolution", "16", "--preset", "raw", "--export", tmp_path / "out",
                    "--format", "ply", home=tmp_path / "home", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"FAILED {INVISIBLE!r}: " in done.stderr and "the prompt has no visible characters" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_chair.ply"]


def test_headless_fifo_token_file_and_config_are_named_without_waiting(tmp_path, tiny_model_dir):
    os.mkfifo(tmp_path / "token")
    done = headless("--input", PICTURE, "--server", "http://127.0.0.1:9", "--token-file", tmp_path / "token",
                    home=tmp_path / "home", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "is a named pipe (FIFO), not a file" in done.stderr
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(tiny_model_dir / "model.ckpt", model)
    os.mkfifo(model / "config.yaml")
    done = headless("--input", PICTURE, "--model", model, "--resolution", "32", home=tmp_path / "home", cwd=tmp_path,
                    timeout=120)
    assert done.returncode == 1 and "config.yaml is a named pipe (FIFO), not a file" in done.stderr
    assert "lacks" not in done.stderr


def test_headless_class_name_as_a_list_is_reported_cleanly(tmp_path, shap_e_dirs):
    import json

    model = tmp_path / "shap-e"
    shutil.copytree(shap_e_dirs["text"], model)
    index = json.loads((model / "model_index.json").read_text())
    index["_class_name"] = ["ShapEPipeline"]
    (model / "model_index.json").write_text(json.dumps(index))
    done = headless("--prompt", "a red chair", "--model", model, home=tmp_path / "home", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "_class_name must name the pipeline's class as text, got list" in done.stderr
