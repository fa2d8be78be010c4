"""The mesh stage end to end on the tiny checkpoint: its options declared once, the CLI's
flags and files, the worker's Result arrays, and the texture against the colour field.

(Blender: tests/blender/test_blender_asset.py; the stage's own steps: tests/mesh_stage/.)
"""

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from backend.bridge import protocol, wire
from backend.bridge.options import ASSET_OPTIONS, OPTIONS_BY_NAME, PRESETS, apply_preset
from backend.bridge.settings import GenerateSettings, asset_stage_runs, job_stages

REPO_ROOT = Path(__file__).resolve().parents[1]
RESOLUTION = 48
TEXTURED = GenerateSettings(resolution=RESOLUTION, max_faces=800, texture_size=128)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "backend", "generate", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from backend.pipeline import load_model

    return load_model(tiny_model_dir, "cpu")


@pytest.fixture(scope="module")
def textured(loaded, flamingo_path):
    from backend.pipeline import generate_mesh

    return generate_mesh(loaded, flamingo_path, TEXTURED)


# ---------------------------------------------------------------- options, declared once


def test_defaults_are_the_raw_surface_and_the_raw_preset():
    settings = GenerateSettings()
    assert not asset_stage_runs(settings)
    assert job_stages(settings) == ("prepare", "encode", "field", "surface", "colors")
    raw = next(preset for preset in PRESETS if preset.identifier == "RAW")
    assert raw.values == {option.name: option.default for option in ASSET_OPTIONS}
    assert job_stages(TEXTURED) == ("prepare", "encode", "field", "surface", "cleanup", "decimate", "colors", "unwrap",
                                    "bake")


def test_every_preset_sets_every_mesh_option_with_valid_values():
    for preset in PRESETS:
        assert set(preset.values) == {option.name for option in ASSET_OPTIONS}, preset.identifier
        GenerateSettings(**preset.values)  # each value passes its option's check
    game = apply_preset({"max_faces": 1, "resolution": 64}, "GAME_ASSET", given={"max_faces"})
    assert game["max_faces"] == 1 and game["texture_size"] == 1024 and game["resolution"] == 64
    assert apply_preset({"max_faces": 7}, "CUSTOM") == {"max_faces": 7}


@pytest.mark.parametrize("name, value, message", [
    ("max_faces", 3, "max_faces must be 0 (keep all) or at least 4, got 3"),
    ("max_faces", -1, "max_faces must be 0 (keep all) or at least 4, got -1"),
    ("max_faces", 2.5, "max_faces must be a whole number, got 2.5"),
    ("texture_size", 63, "texture_size must be 0 (vertex colours) or in [64, 8192], got 63"),
    ("texture_size", 8193, "texture_size must be 0 (vertex colours) or in [64, 8192], got 8193"),
    ("smooth_iterations", -1, "smooth_iterations must be in [0, 100], got -1"),
    ("keep_floaters", "yes", "keep_floaters must be true or false, got 'yes'"),
    ("normal_map", 1, "normal_map must be true or false, got 1"),
])
def test_bad_values_name_the_rule(name, value, message):
    with pytest.raises(ValueError) as error:
        OPTIONS_BY_NAME[name].check(value)
    assert str(error.value) == message


def test_zero_and_the_range_s_ends_pass():
    faces, texture = OPTIONS_BY_NAME["max_faces"], OPTIONS_BY_NAME["texture_size"]
    assert [faces.check(n) for n in (0, 4, 10**7)] == [0, 4, 10**7]
    assert [texture.check(n) for n in (0, 64, 8192)] == [0, 64, 8192]


# ---------------------------------------------------------------- the job


def test_texture_matches_the_colour_field_at_surface_points(loaded, flamingo_path, textured):
    """The base colour, sampled bilinearly where a renderer would, against the colour
    field at the same 3-D points of the low-poly surface (bench/asset_quality.py)."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from asset_quality import color_errors

    from backend.triposr.engine import color_field

    pixels = torch.from_numpy(textured.prepared_image).float().div(255.0).unsqueeze(0)
    codes = loaded.model.encode(pixels)[0]
    errors = color_errors(textured, color_field(loaded.model.field, codes), count=20000)
    assert errors["texture_median"] <= 4 and errors["texture_p95"] <= 12, errors


def test_textured_result_has_uvs_images_and_final_vertex_colours(textured):
    assert len(textured.faces) <= 800
    assert textured.uvs.shape == (len(textured.faces), 3, 2) and textured.uvs.dtype == np.float32
    assert textured.base_color.shape == textured.normal_map.shape == (128, 128, 3)
    assert textured.colors.shape == (len(textured.vertices), 4)
    assert {"cleanup", "decimate", "unwrap", "bake_color", "bake_normals"} <= set(textured.timings)


def test_the_worker_carries_uvs_and_textures_as_raw_buffers(tiny_model_dir, flamingo_path, textured, tmp_path):
    from backend.bridge.client import WorkerClient

    with WorkerClient(sys.executable, str(tiny_model_dir), "cpu", log_dir=str(tmp_path)) as client:
        stages = []
        result = client.run(TEXTURED, image_path=flamingo_path, timeout=120,
                            on_event=lambda event: event.kind == "progress" and stages.append(event.stage))
        assert list(dict.fromkeys(stages)) == list(job_stages(TEXTURED))
        np.testing.assert_array_equal(result.faces, textured.faces)
        np.testing.assert_array_equal(result.uvs, textured.uvs)
        for name in ("base_color", "normal_map"):
            assert np.abs(getattr(result, name).astype(int) - getattr(textured, name)).max() <= 1, name
        with pytest.raises(ValueError, match="texture_size must be 0"):  # the client checks before sending
            client.run({"resolution": 32, "texture_size": 32}, image_path=flamingo_path, timeout=60)


def test_result_frames_refuse_uvs_that_do_not_fit_the_faces():
    faces = np.zeros((2, 3), np.int32)
    good = protocol.Result(job_id="j", device="cpu", timings={}, vertices=np.zeros((3, 3), np.float32), faces=faces,
                           colors=np.zeros((3, 4), np.uint8), prepared_image=np.zeros((2, 2, 3), np.uint8),
                           uvs=np.zeros((2, 3, 2), np.float32), base_color=np.zeros((64, 64, 3), np.uint8))
    stream = io.BytesIO()
    protocol.send(stream, good)
    stream.seek(0)
    back = protocol.parse(wire.FrameReader(stream).read(), protocol.EVENTS)
    assert back.uvs.shape == (2, 3, 2) and back.base_color.shape == (64, 64, 3) and back.normal_map is None
    for bad in ({"uvs": np.zeros((3, 3, 2), np.float32)}, {"normal_map": np.zeros((64, 32, 3), np.uint8)}):
        stream = io.BytesIO()
        protocol.send(stream, protocol.Result(**{**good.__dict__, **bad}))
        stream.seek(0)
        with pytest.raises(protocol.BadRequest):
            protocol.parse(wire.FrameReader(stream).read(), protocol.EVENTS)


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_textured(tmp_path_factory, tiny_model_dir, flamingo_path):
    out = tmp_path_factory.mktemp("textured")
    lines = {}
    for fmt in ("glb", "obj", "ply"):
        done = run_cli(flamingo_path, "--model", tiny_model_dir, "--out", out, "--format", fmt,
                       "--resolution", RESOLUTION, "--faces", 800, "--texture", 128)
        assert done.returncode == 0, done.stderr
        lines[fmt] = done.stdout.strip().splitlines()[-1]
    return out, lines


def test_cli_glb_embeds_both_textures_and_reopens_with_uvs(cli_textured):
    out, lines = cli_textured
    mesh = trimesh.load(out / "flamingo.glb", force="mesh", process=False)
    assert len(mesh.faces) <= 800 and mesh.visual.uv is not None and len(mesh.visual.uv) == len(mesh.vertices)
    material = mesh.visual.material
    assert material.baseColorTexture.size == material.normalTexture.size == (128, 128)
    # the one-line summary still ends with the job's seconds
    assert re.search(r"flamingo\.glb: \d+ vertices, \d+ faces, 128 px textures, \d+\.\d\d s$", lines["glb"]), lines["glb"]


def test_cli_obj_has_its_mtl_and_pngs_and_reopens_with_uvs(cli_textured):
    out, _ = cli_textured
    mesh = trimesh.load(out / "flamingo.obj", force="mesh", process=False)
    assert len(mesh.faces) <= 800 and mesh.visual.uv is not None
    assert mesh.visual.material.image.size == (128, 128)
    mtl = (out / "flamingo.mtl").read_text()
    assert "map_Kd flamingo_color.png" in mtl and "map_Bump -bm 1 flamingo_normal.png" in mtl
    assert (out / "flamingo_normal.png").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the staging folder went


def test_cli_ply_keeps_vertex_colours_of_the_decimated_mesh(cli_textured):
    mesh = trimesh.load(cli_textured[0] / "flamingo.ply", force="mesh", process=False)
    assert len(mesh.faces) <= 800
    assert len(np.unique(mesh.visual.vertex_colors[:, :3], axis=0)) > 10


def test_cli_smoothing_removes_floaters_unless_kept(tmp_path, tiny_model_dir, examples_dir):
    counts = {}
    for name, flags in {"raw": [], "smooth": ["--smooth", 2], "kept": ["--smooth", 2, "--keep-floaters"]}.items():
        done = run_cli(examples_dir / "horse.png", "--model", tiny_model_dir, "--out", tmp_path / name, "--format", "ply",
                       "--resolution", 32, *flags)
        assert done.returncode == 0, done.stderr
        counts[name] = trimesh.load(tmp_path / name / "horse.ply", force="mesh", process=False)
    raw, smooth, kept = counts["raw"], counts["smooth"], counts["kept"]
    assert len(kept.faces) == len(raw.faces) > len(smooth.faces)  # the tiny model's horse has a speck
    assert not np.allclose(kept.vertices, raw.vertices)  # smoothing moved the vertices


@pytest.mark.parametrize("flag, value, words", [
    ("--faces", "2", "--faces: max_faces must be 0 (keep all) or at least 4, got 2"),
    ("--texture", "50", "--texture: texture_size must be 0 (vertex colours) or in [64, 8192], got 50"),
    ("--smooth", "-3", "--smooth: smooth_iterations must be in [0, 100], got -3"),
])
def test_cli_bad_mesh_values_stop_before_the_model_loads(tmp_path, flamingo_path, flag, value, words):
    done = run_cli(flamingo_path, "--model", tmp_path / "no-model", "--out", tmp_path, flag, value)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {words}"
