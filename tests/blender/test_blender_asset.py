"""The mesh stage in real Blender (the bpy wheel) on the tiny checkpoint: the textured
object, its material and packed images, presets, undo, cancel, failure, exports.

One scenario process (asset_scenarios.py) does the Blender work; the assertions are here.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh
from harness import NEEDS_BPY, RESOLUTION, SCRIPT, blender_environment, run_scenario

pytestmark = [pytest.mark.blender, NEEDS_BPY]
SCENARIO = __import__("pathlib").Path(__file__).with_name("asset_scenarios.py")
FACES, TEXTURE = 1500, 256  # what the scenario gives the operator over the Game Asset preset


@pytest.fixture(scope="module")
def reference(tiny_model_dir, flamingo_path):
    """The backend's own result for the same image and settings, in this process."""
    from backend.bridge.settings import GenerateSettings
    from backend.pipeline import generate_mesh, load_model

    settings = GenerateSettings(resolution=RESOLUTION, max_faces=FACES, texture_size=TEXTURE)
    return generate_mesh(load_model(tiny_model_dir, "cpu"), flamingo_path, settings)


@pytest.fixture(scope="module")
def asset_run(extension_zip, tiny_model_dir, examples_dir, reference, tmp_path_factory):
    from backend.mesh.export import write_mesh

    work = tmp_path_factory.mktemp("asset")
    for fmt in ("glb", "obj"):  # the CLI's files, for Blender to re-import
        write_mesh(work / "cli" / f"flamingo.{fmt}", reference.vertices, reference.faces, reference.colors,
                   reference.uvs, reference.base_color, reference.normal_map)
    env = blender_environment(work / "home", zip=extension_zip, model=tiny_model_dir, examples=examples_dir,
                              cli_exports=work / "cli")
    return run_scenario("asset", work, env, script=SCENARIO), dict(np.load(work / "asset.npz")), work


def test_the_object_is_the_backend_s_textured_mesh(asset_run, reference):
    facts, arrays, _ = asset_run
    assert facts["result"] == ["FINISHED"] and facts["default_preset"] == "GAME_ASSET"
    assert facts["object"]["faces"] == len(reference.faces) <= FACES
    np.testing.assert_array_equal(arrays["faces"], reference.faces)
    np.testing.assert_allclose(arrays["uvs"], reference.uvs, atol=1e-6)  # one UV per face corner
    for name in ("base_color", "normal_map"):  # the images hold the backend's bytes, upright
        image = getattr(reference, name)
        assert arrays[name].shape == image.shape == (TEXTURE, TEXTURE, 3)
        assert np.abs(arrays[name].astype(int) - image).max() <= 1, name
    settings = facts["object"]["settings"]
    assert (settings["max_faces"], settings["texture_size"], settings["normal_map"]) == (FACES, TEXTURE, True)
    assert f"{TEXTURE} px textures" in facts["status"]


def test_material_takes_base_colour_and_normal_from_packed_images(asset_run):
    facts = asset_run[0]
    obj = facts["object"]
    links = [link[2:] for link in obj["links"]]
    assert ["ShaderNodeBsdfPrincipled", "Base Color"] in links
    assert ["ShaderNodeTexImage", "Color", "ShaderNodeBsdfPrincipled", "Base Color"] in obj["links"]
    assert ["ShaderNodeTexImage", "Color", "ShaderNodeNormalMap", "Color"] in obj["links"]
    assert ["ShaderNodeNormalMap", "Normal", "ShaderNodeBsdfPrincipled", "Normal"] in obj["links"]
    assert obj["normal_maps"] == [["TANGENT", "UVMap"]] and obj["uv_maps"] == ["UVMap"]
    name = obj["name"]
    assert obj["images"] == [
        {"name": f"{name} Base Color", "size": [TEXTURE, TEXTURE], "packed": True, "colorspace": "sRGB"},
        {"name": f"{name} Normal", "size": [TEXTURE, TEXTURE], "packed": True, "colorspace": "Non-Color"},
    ]


def test_blender_s_tangent_frames_are_the_ones_the_map_was_baked_in(asset_run):
    """Our tangents (what the bake wrote the normals in) against Blender's MikkTSpace on
    the object the extension built: the map only shades right if they agree."""
    from backend.mesh.asset.tangents import uv_tangents, vertex_normals
    from backend.mesh.asset.unwrap import split_by_uv

    arrays = asset_run[1]
    v, f = torch.from_numpy(arrays["vertices"]), torch.from_numpy(arrays["faces"]).long()
    uvs = torch.from_numpy(arrays["uvs"])
    normals = vertex_normals(v, f)
    split_vertex, split_source, _ = split_by_uv(f, uvs)
    tangents, sign = uv_tangents(v, f, normals, uvs, split_vertex, split_source.shape[0])
    ours = tangents[split_vertex.reshape(-1)].numpy()
    angle = np.degrees(np.arccos(np.clip((ours * arrays["tangents"]).sum(1), -1, 1)))
    # (measured on this noisy random surface: median 0.03, p99 2.1 degrees; a tangent a
    # degree or two off turns a mapped normal by a fraction of that)
    assert np.median(angle) < 0.1 and np.percentile(angle, 99) < 5.0, (np.median(angle), np.percentile(angle, 99))
    assert np.mean(np.sign(arrays["signs"]) == sign.numpy().repeat(3)) > 0.999
    normal_angle = np.degrees(np.arccos(np.clip((normals.numpy()[f.reshape(-1)] * arrays["loop_normals"]).sum(1), -1, 1)))
    assert np.percentile(normal_angle, 99) < 0.5


def test_one_undo_step_removes_object_material_and_images(asset_run):
    facts = asset_run[0]
    made = set(facts["after_generate"]["images"]) - set(facts["before_generate"]["images"])
    assert {f"{facts['object']['name']} Base Color", f"{facts['object']['name']} Normal"} <= made
    assert facts["after_undo"] == facts["before_generate"]


def test_a_moved_blend_keeps_its_textures(asset_run):
    facts = asset_run[0]
    assert facts["reopened"]["images"] == facts["object"]["images"]
    assert facts["reopened_same_pixels"]


def test_cancelled_and_failed_bakes_leave_the_scene_unchanged(asset_run):
    facts = asset_run[0]
    assert facts["cancelled"] == {"stage": facts["cancelled"]["stage"], "end": "cancelled"}
    assert facts["cancelled"]["stage"] in ("unwrap", "bake")
    assert "do not fit a 64 x 64 texture" in facts["failed_bake"]
    assert facts["failed_build"] == "no memory for the normal map"  # Blender's own build failing midway
    for after in ("after_failures", "after_cancel", "after_failed_build"):
        assert facts[after] == facts["baseline"], after


def test_bad_values_are_refused_with_their_rule(asset_run):
    facts = asset_run[0]
    assert "max_faces must be 0 (keep all) or at least 4, got 2" in facts["bad_faces"]
    assert "texture_size must be 0 (vertex colours) or in [64, 8192], got 50" in facts["bad_texture"]
    assert "texture_size must be 0 (vertex colours) or in [64, 8192], got 9000" in facts["big_texture"]
    assert "smooth_iterations must be in [0, 100], got -1" in facts["negative_smoothing"]


def test_presets_set_the_mesh_options_and_an_operator_argument_wins(asset_run):
    from backend.bridge.options import PRESETS_BY_NAME

    resolved = asset_run[0]["resolved"]
    for name in ("RAW", "CLEAN", "GAME_ASSET"):
        expected = PRESETS_BY_NAME[name].values
        assert resolved[name] == {key: expected[key] for key in resolved[name]}, name
    assert resolved["RAW"]["max_faces"] == resolved["RAW"]["texture_size"] == 0  # the raw surface
    assert resolved["operator_wins"]["texture_size"] == 256 and resolved["operator_wins"]["max_faces"] == 20000
    assert resolved["custom_panel"]["max_faces"] == 1234
    assert resolved["custom_preferences"]["max_faces"] == 4321


def test_panel_shows_the_preset_and_custom_values(asset_run):
    panel = asset_run[0]["panel"]
    mesh_rows = {"max_faces", "texture_size", "normal_map", "smooth_iterations", "keep_floaters"}
    assert panel["GAME_ASSET"]["props"][0] == "preset" and not mesh_rows & set(panel["GAME_ASSET"]["props"])
    assert panel["GAME_ASSET"]["labels"] >= 1 and "20,000 triangles" in panel["summary"]
    assert panel["CUSTOM"]["props"][0] == "preset" and mesh_rows <= set(panel["CUSTOM"]["props"])


def test_every_export_reimports_into_blender_with_uvs_and_textures(asset_run):
    facts = asset_run[0]
    files = facts["export_files"]
    assert {"flamingo.glb", "flamingo.obj", "flamingo.mtl", "flamingo_color.png", "flamingo_normal.png",
            "flamingo.fbx", "flamingo.ply"} <= set(files)
    assert not [name for name in files if name.startswith(".")]
    for fmt in ("GLB", "OBJ", "FBX"):
        back = facts["reimported"][fmt]
        assert back["faces"] == facts["object"]["faces"] and back["uv_maps"], fmt
        targets = [link[2:] for link in back["links"]]
        assert ["ShaderNodeBsdfPrincipled", "Base Color"] in targets, fmt
        assert ["ShaderNodeBsdfPrincipled", "Normal"] in targets, fmt
        assert sorted(image["size"][0] for image in back["images"]) == [TEXTURE, TEXTURE], fmt
    assert facts["reimported"]["PLY"]["colors"], "the PLY lost its vertex colours"


def test_the_cli_s_glb_and_obj_reimport_into_blender_with_uvs_and_textures(asset_run, reference):
    for fmt, back in asset_run[0]["cli_reimported"].items():
        assert back["faces"] == len(reference.faces) and back["uv_maps"], fmt
        assert ["ShaderNodeNormalMap", "Normal", "ShaderNodeBsdfPrincipled", "Normal"] in back["links"], fmt
        assert ["ShaderNodeTexImage", "Color", "ShaderNodeBsdfPrincipled", "Base Color"] in back["links"], fmt
        assert sorted(image["size"][0] for image in back["images"]) == [TEXTURE, TEXTURE], fmt


def test_blender_s_glb_and_obj_reopen_in_trimesh_with_both_textures(asset_run):
    exports = asset_run[2] / "exports"
    glb = trimesh.load(exports / "flamingo.glb", force="mesh", process=False)
    material = glb.visual.material
    assert glb.visual.uv is not None and len(glb.visual.uv) == len(glb.vertices)
    assert material.baseColorTexture.size == material.normalTexture.size == (TEXTURE, TEXTURE)
    obj = trimesh.load(exports / "flamingo.obj", force="mesh", process=False)
    assert obj.visual.uv is not None and obj.visual.material.image.size == (TEXTURE, TEXTURE)
    mtl = (exports / "flamingo.mtl").read_text()
    assert "map_Kd flamingo_color.png" in mtl and "flamingo_normal.png" in mtl


def test_batch_with_custom_options_exports_textured_obj(asset_run):
    batch = asset_run[0]["batch"]
    assert not batch["failed"] and sorted(batch["succeeded"]) == ["chair", "robot"]
    for name, obj in batch["objects"].items():
        assert obj["faces"] <= 800 and obj["uv_maps"] == ["UVMap"], name
        assert [image["size"] for image in obj["images"]] == [[128, 128], [128, 128]], name
    for stem in ("chair", "robot"):
        assert {f"{stem}.obj", f"{stem}.mtl", f"{stem}_color.png", f"{stem}_normal.png"} <= set(batch["files"])


# ---------------------------------------------------------------------- the headless script


def test_headless_faces_and_texture_flags_make_a_textured_glb(extension_zip, tiny_model_dir, flamingo_path, tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--input", str(flamingo_path), "--model", str(tiny_model_dir),
         "--resolution", str(RESOLUTION), "--faces", "600", "--texture", "128", "--no-normal-map",
         "--export", str(tmp_path / "out"), "--format", "glb"],
        env=blender_environment(tmp_path / "home"), cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "128 px textures" in done.stdout
    mesh = trimesh.load(tmp_path / "out" / "flamingo.glb", force="mesh", process=False)
    assert len(mesh.faces) <= 600 and mesh.visual.uv is not None
    assert mesh.visual.material.baseColorTexture.size == (128, 128) and mesh.visual.material.normalTexture is None


@pytest.mark.parametrize("flag, value, words", [
    ("--faces", "3", "--faces: max_faces must be 0 (keep all) or at least 4, got 3"),
    ("--texture", "9000", "--texture: texture_size must be 0 (vertex colours) or in [64, 8192], got 9000"),
    ("--smooth", "-1", "--smooth: smooth_iterations must be in [0, 100], got -1"),
])
def test_headless_bad_mesh_values_are_refused_before_any_work(tmp_path, tiny_model_dir, flamingo_path, flag, value, words):
    done = subprocess.run([sys.executable, str(SCRIPT), "--", "--input", str(flamingo_path), "--model", str(tiny_model_dir),
                           flag, value], env=blender_environment(tmp_path / "home"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2 and words in done.stderr
