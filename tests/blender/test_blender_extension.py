"""The extension inside real Blender (the bpy wheel): built zip, Blender's installer, tiny model.

Each scenario runs in its own process (bpy's state is process-global) with Blender's user
folders in a temporary directory; see scenarios.py for what runs inside Blender.
"""

import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from harness import NEEDS_BPY, RESOLUTION, SCRIPT, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]


@pytest.fixture(scope="module")
def headless_run(extension_zip, tiny_model_dir, examples_dir, tmp_path_factory):
    """The headless script on a folder with two good images and a corrupt one."""
    work = tmp_path_factory.mktemp("headless")
    inputs = work / "in"
    inputs.mkdir()
    for name in ("chair.png", "flamingo.png"):
        shutil.copy(examples_dir / name, inputs / name)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    env = blender_environment(work / "home")  # a fresh Blender: the script must install the extension
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--input", str(inputs), "--model", str(tiny_model_dir),
         "--resolution", str(RESOLUTION), "--preset", "raw", "--save", str(work / "out" / "scene.blend"),
         "--export", str(work / "out" / "exports"), "--format", "glb"],
        env=env, cwd=work, capture_output=True, text=True, timeout=240)
    return done, work


# ---------------------------------------------------------------------- package


def test_zip_holds_the_extension_and_nothing_else(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    for needed in ("blender_manifest.toml", "__init__.py", "blender/preferences.py", "blender/mesh_builder.py",
                   "operators/generate.py", "operators/batch.py", "panels/sidebar.py",
                   "backend/bridge/client.py", "backend/worker/server.py", "scripts/image_to_3d.py"):
        assert needed in names
    unwanted = ("tests/", ".venv/", "dist/", "demo/", "bench/", ".git/", ".ci/", "tools/", "__pycache__/", ".pytest_cache/",
                "assets/", "backend/test_models/", "scripts/make_example_image.py", "scripts/render_preview.py", "scripts/install_extension.py")
    assert not [n for n in names if n.startswith(unwanted) or "/__pycache__/" in n or n.endswith((".pyc", ".ckpt"))]


# ---------------------------------------------------------------------- generate


def test_object_equals_the_backend_result(generate_run, reference):
    facts, arrays, _, _ = generate_run
    assert facts["result"] == ["FINISHED"]
    assert arrays["vertices"].shape == reference.vertices.shape
    assert arrays["faces"].shape == reference.faces.shape
    np.testing.assert_array_equal(arrays["faces"], reference.faces)
    # The mesh keeps the backend's frame exactly: no second rotation, no baked offset.
    np.testing.assert_allclose(arrays["vertices"], reference.vertices, atol=1e-6)
    np.testing.assert_array_equal(arrays["colors"], reference.colors)


def test_object_sits_on_the_cursor_unrotated(generate_run, reference):
    facts, arrays, _, _ = generate_run
    obj = facts["object"]
    assert obj["rotation"] == [0.0, 0.0, 0.0] and obj["scale"] == [1.0, 1.0, 1.0]
    cursor = np.array(facts["cursor"])
    expected = cursor + [0.0, 0.0, -reference.vertices[:, 2].min()]  # resting: lowest point at cursor height
    np.testing.assert_allclose(obj["location"], expected, atol=1e-5)
    matrix = arrays["matrix_world"]
    np.testing.assert_allclose(matrix[:3, :3], np.eye(3), atol=1e-7)
    world = arrays["vertices"] + matrix[:3, 3]
    assert world[:, 2].min() == pytest.approx(cursor[2], abs=1e-5)


def test_material_colour_attribute_and_bookkeeping(generate_run):
    facts, arrays, _, _ = generate_run
    obj = facts["object"]
    assert obj["name"] == "flamingo"
    assert ["ShaderNodeVertexColor", "Color", "ShaderNodeBsdfPrincipled", "Base Color", "Color"] in obj["links"]
    assert any(link[2] == "ShaderNodeOutputMaterial" for link in obj["links"])
    assert obj["color_attribute"] == {"names": ["Color"], "domain": "POINT", "active": "Color", "render": "Color"}
    assert arrays["smooth"].all()
    assert obj["collections"] == [facts["active_collection"]]
    assert obj["selected"] and obj["active"] and obj["selected_count"] == 1
    assert obj["source"].endswith("flamingo.png")
    assert obj["settings"]["resolution"] == RESOLUTION
    assert obj["settings"]["foreground_ratio"] == 0.85  # no float32 noise
    assert obj["model_input"], "the prepared model input should be a Blender image"


def test_model_input_image_shows_what_the_model_saw(generate_run, reference):
    arrays = generate_run[1]
    np.testing.assert_array_equal(arrays["model_input"], reference.prepared_image)  # upright, same pixels


def test_one_undo_step_removes_everything(generate_run):
    facts = generate_run[0]
    assert facts["after_generate"] != facts["before_generate"]
    assert facts["after_undo"] == facts["before_generate"]


def test_failed_job_leaves_scene_unchanged(generate_run):
    facts = generate_run[0]
    assert facts["failed_error"] and "broken.png" in facts["failed_error"]
    assert "broken.png" in facts["status_error"]
    assert facts["after_failure"] == facts["baseline"]


def test_cancelled_job_stops_the_worker_and_leaves_scene_unchanged(generate_run):
    facts = generate_run[0]
    assert facts["cancel_end_event"] == "cancelled"
    assert facts["after_cancel"] == facts["baseline"]


def test_blender_image_sources(generate_run, flamingo_path):
    from PIL import Image

    facts, arrays, packed, work = generate_run
    expected = np.asarray(Image.open(flamingo_path).convert("RGBA"))
    np.testing.assert_array_equal(np.load(work / "file_pixels.npy"), expected)  # top row first, alpha kept
    assert facts["file_input_kind"] == "path" and facts["packed_input_kind"] == "pixels"
    # Same pixels through the pipe as the file: same mesh; flat, centred on the cursor.
    np.testing.assert_array_equal(packed["faces"], arrays["faces"])
    assert not packed["smooth"].any()
    assert facts["packed_object"]["location"] == [0.0, 0.0, 0.0]
    top, bottom = facts["generated_pixels"]
    assert top[0] == [0, 0, 255, 128] and bottom[0] == [255, 0, 0, 128]
    assert facts["render_shape"] == [32, 32, 4]
    assert facts["render_corner_alpha"] == 0 and facts["render_centre_alpha"] == 255


def test_blender_side_runs_without_torch(generate_run):
    # The scenario set sys.modules["torch"] = None before importing anything: every
    # import of torch would have failed, and none slipped in.
    assert generate_run[0]["torch_modules"] == []


def test_registration_and_preferences(generate_run):
    facts = generate_run[0]
    readiness = facts["readiness"]
    assert readiness["ready"][0] is True
    assert readiness["no_model"][0] is False and "model.ckpt" in readiness["no_model"][1]
    assert readiness["no_python"][0] is False and "Install backend" in readiness["no_python"][1]
    assert facts["preference_properties"] == sorted([
        "run_on", "server_url", "server_token", "server_ca_file",
        "python_path", "model_path", "shap_e_model_path", "shap_e_image_model_path", "zero123_model_path",
        "loftr_model_path", "device", "precision",
        "unload_after_minutes", "default_family", "default_resolution", "default_threshold", "default_foreground_ratio",
        "default_remove_background", "default_text_guidance", "default_image_guidance", "default_steps", "default_seed",
        "default_shap_e_resolution", "default_max_faces", "default_texture_size", "default_normal_map",
        "default_smooth_iterations", "default_keep_floaters", "default_shading", "default_rest_on_cursor",
        # Make-It-3D's three guidance model folders (its TripoSR folder is model_path) and its options
        "sd2_model_path", "clip_model_path", "dpt_model_path", "default_m3d_start", "default_m3d_coarse_iterations",
        "default_m3d_refine_iterations", "default_m3d_seed", "default_m3d_guidance", "default_m3d_render_size",
        "default_m3d_resolution", "default_m3d_preview_every", "default_m3d_cpu_minutes",
        "default_m3d_remove_background",
        # One-2-3-45's reconstruction folder (its views' folders are the views job's) and its
        # options: the views job's own declarations, then its resolution and CPU time limit
        "sparseneus_model_path", "default_views_estimate_elevation", "default_views_elevation",
        "default_views_steps", "default_views_guidance", "default_views_seed", "default_views_remove_background",
        "default_one2345_resolution", "default_one2345_cpu_minutes"])
    assert all(facts["registered"].values()), facts["registered"]
    assert not any(facts["registered_after_disable"].values()), facts["registered_after_disable"]
    assert facts["worker_alive_before_disable"] and not facts["worker_alive_after_disable"]


def test_preferences_draw_each_part_once(generate_run):
    calls = generate_run[0]["preferences_drawn"]
    operators = [args[0] for name, args, _ in calls if name == "operator"]
    assert operators.count("image_to_3d.install_backend") == 1, operators
    for idname in ("image_to_3d.download_model", "image_to_3d.use_local_model"):  # one per model folder
        # TripoSR, Shap-E's two, Make-It-3D's three of its own, Zero123-XL and LoFTR (the views
        # and One-2-3-45), One-2-3-45's SparseNeuS
        assert operators.count(idname) == 9, operators
    drawn_props = [args[0] for name, args, _ in calls if name == "prop"]
    assert drawn_props.count("default_resolution") == 1 and "default_shading" in drawn_props


def test_options_are_declared_once_and_derived_everywhere(generate_run):
    options = generate_run[0]["options"]
    declared = options["declared"]
    for where, properties in options["properties"].items():
        assert sorted(properties) == sorted(declared), where
        for name, facts in properties.items():
            expected = declared[name]["default"]
            assert facts["default"] == (pytest.approx(expected) if isinstance(expected, float) else expected), (where, name)
            if declared[name]["max"] is not None and where != "operator":
                assert facts["max"] == pytest.approx(declared[name]["max"]), (where, name)
            elif declared[name]["max"] is not None:  # no hard limit: the backend's check names the rule
                int_limit = declared[name]["max"] == facts["max"] == 2**31 - 1  # the seed's range is Blender's int's
                assert facts["max"] > declared[name]["max"] or int_limit, (where, name)
    # One rule decides: the operator's argument, then the panel (unless it uses the
    # preferences' defaults), then the preferences.
    assert options["chosen"] == {"prefs": 40, "panel": 48, "operator": 32}


# ---------------------------------------------------------------------- batch, headless script


def test_cancelled_batch_finishes_the_current_image_and_keeps_it(generate_run):
    batch = generate_run[0]["cancelled_batch"]
    assert batch["succeeded"] == ["chair.png", "flamingo.png"]
    assert batch["left"] == ["horse.png"]
    # (the scenario made a "flamingo" before, so Blender may number this one)
    assert [name.split(".")[0] for name in batch["objects"]] == ["chair", "flamingo"]
    assert "cancelled with 1 left" in batch["summary"]
    assert "not run" in batch["log"] and "horse.png" in batch["log"]


def test_headless_batch_skips_the_corrupt_image(headless_run):
    done, work = headless_run
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "FAILED" in done.stderr and "broken.png" in done.stderr
    assert "Draco" not in done.stdout + done.stderr  # the glTF exporter's false alarm is filtered
    exports = work / "out" / "exports"
    assert sorted(p.name for p in exports.glob("*.glb")) == ["chair.glb", "flamingo.glb"]
    (log,) = exports.glob("image_to_3d_batch_*.log")
    text = log.read_text()
    assert "FAILED" in text and "broken.png" in text and "2 of 3 converted" in text
    assert (work / "out" / "scene.blend").is_file()


def test_saved_blend_reopens_and_exports_reimport(headless_run, extension_zip, tiny_model_dir):
    done, work = headless_run
    env = blender_environment(work / "home2", zip=extension_zip, model=tiny_model_dir,
                              blend=work / "out" / "scene.blend", export_dir=work / "out" / "exports",
                              input_dir=work / "in")
    facts = run_scenario("reopen", work / "reopen", env)
    assert facts["objects"] == ["chair", "flamingo"]
    assert facts["collections"] == ["Image to 3D: in"]
    assert facts["locations"]["chair"][:2] != facts["locations"]["flamingo"][:2]  # laid out on a grid
    for name in ("chair", "flamingo"):
        reimported = facts["imported"][f"{name}.glb"]
        assert reimported["faces"] == facts["face_counts"][name]
        assert reimported["color_attributes"], "the glb lost its vertex colours"
    # Re-running the batch skips what is done and retries only the bad file.
    assert facts["rerun"] == {"skipped": ["chair.png", "flamingo.png"], "succeeded": 0, "failed": ["broken.png"]}


def test_headless_single_image_exports_ply(extension_zip, tiny_model_dir, flamingo_path, reference, tmp_path):
    env = blender_environment(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--input", str(flamingo_path), "--model", str(tiny_model_dir),
         "--resolution", str(RESOLUTION), "--preset", "raw", "--shading", "flat", "--export", str(tmp_path / "out"),
         "--format", "ply"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "flamingo" in done.stdout and "exported" in done.stdout
    header = (tmp_path / "out" / "flamingo.ply").read_bytes().split(b"end_header")[0].decode()
    # Flat shading keeps shared vertices in the mesh; PLY writes one per point.
    assert f"element face {len(reference.faces)}" in header
    assert "property uchar red" in header
