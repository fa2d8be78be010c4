"""Zero123 views (backend/zero123/) on tiny random weights, on the CPU: folders, the view
plan and poses, conditioning pieces, the sampler's timesteps, the elevation search,
seeds, cancel, progress and bad input. Equivalence with One-2-3-45: test_zero123_equivalence.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.bridge.errors import Cancelled, CheckpointError, InputImageError, ModelNotFoundError, WrongModelError
from backend.test_models.zero123 import make_test_model
from backend.zero123 import conditioning, elevation, folders, plan
from backend.zero123.loader import load_zero123
from backend.zero123.result import write_views
from backend.zero123.sampler import ddim_timesteps, evaluations
from backend.zero123.views import generate_views

DATA = Path(__file__).parent / "data" / "zero123_ref"
FAST = dict(stage1_steps=3, stage2_steps=2)  # 2 and 1 UNet evaluations


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return make_test_model(tmp_path_factory.mktemp("zero123") / "tiny", "tiny", 0)


@pytest.fixture(scope="module")
def loaded(tiny_folder):
    return load_zero123(tiny_folder, torch.device("cpu"))


def picture():
    rgba = np.zeros((180, 120, 4), np.uint8)
    rgba[30:150, 20:100] = (200, 90, 40, 255)
    return rgba


# folders and loading

def test_folder_check_accepts_the_test_model_and_names_what_a_download_fetches(tiny_folder):
    assert folders.check_folder(tiny_folder) == tiny_folder
    assert folders.is_zero123_folder(tiny_folder)
    required, _ = folders.hub_files()
    assert "unet/diffusion_pytorch_model.fp16_ema.safetensors" in required
    assert all(not name.endswith((".bin", ".ckpt")) and ".fp16." not in name for name in required)
    assert all((tiny_folder / name).is_file() for name in required)


def test_folder_check_messages(tiny_folder, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        folders.check_folder(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="model_index.json"):
        folders.check_folder(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(WrongModelError, match="StableDiffusionPipeline"):
        folders.check_folder(other)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_folder, copy)
    ema = copy / "unet" / folders.weights_name("unet")
    ema.rename(copy / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError, match="EMA"):
        folders.check_folder(copy)
    (copy / "unet" / "diffusion_pytorch_model.safetensors").rename(copy / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickled"):
        folders.check_folder(copy)


def test_a_misshaped_camera_projection_is_refused(tiny_folder, tmp_path):
    import shutil

    from safetensors.torch import save_file

    copy = tmp_path / "copy"
    shutil.copytree(tiny_folder, copy)
    save_file({"proj.weight": torch.zeros(32, 40, dtype=torch.float16), "proj.bias": torch.zeros(32, dtype=torch.float16)},
              str(copy / "clip_camera_projection" / folders.weights_name("clip_camera_projection")))
    with pytest.raises(CheckpointError, match="do not match the projection"):
        load_zero123(copy, torch.device("cpu"))


def test_loaded_on_the_cpu_in_float32(loaded):
    assert loaded.dtype == torch.float32 and loaded.precision == "float32"
    assert next(loaded.unet.parameters()).dtype == torch.float32


# the view plan

@pytest.mark.parametrize("polar", [60, 80])
def test_pose_json_is_byte_identical_to_one2345s(polar):
    """pose.json of the reference runs (../shared/one2345/reference, copied here)."""
    expected = (DATA / f"pose_P{polar}.json").read_text()
    assert json.dumps(plan.pose_json(plan.plan(polar)), indent=4) == expected


def test_plan_follows_one2345s_lists():
    views = plan.plan(60)
    assert [v.view_id for v in views[:8]] == [str(i) for i in range(8)]
    assert [(v.polar, v.azimuth) for v in views[:8]] == [(60, 30), (60, 120), (60, 210), (60, 300),
                                                         (90, 60), (90, 150), (90, 240), (90, 330)]
    high = plan.plan(80)
    assert [v.view_id for v in high[:8]] == ["0", "1", "2", "3", "8", "9", "10", "11"]
    assert [(v.polar, v.azimuth) for v in high[4:8]] == [(50, 60), (50, 150), (50, 240), (50, 330)]
    nearby = [v for v in views if v.source == "5"]
    assert [(v.d_polar, v.d_azimuth, v.polar, v.azimuth) for v in nearby] == [
        (-10, 0, 80, 150), (10, 0, 100, 150), (0, -10, 90, 140), (0, 10, 90, 160)]
    assert plan.stage1_relative(9) == (-30, 120) and plan.stage1_relative(2) == (0, 180)


def test_png_quantisation_makes_253_and_above_white():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = plan.quantise(values)
    assert (out[values >= 253] == 255).all() and (out[values < 253] == values[values < 253]).all()


# conditioning and the sampler

def test_pose_vector_is_radians_sin_cos_zero():
    vector = conditioning.pose_vectors([30, -10], [90, 0])
    expected = np.array([[[np.radians(30), 1.0, np.cos(np.radians(90)), 0]], [[np.radians(-10), 0.0, 1.0, 0]]], np.float32)
    np.testing.assert_allclose(vector.numpy(), expected, atol=1e-7)


def test_clip_input_is_kornias_bicubic_align_corners_resize_then_clip_normalisation():
    import kornia

    x = torch.rand(2, 3, 256, 256) * 2 - 1
    resized = kornia.geometry.resize(x, (224, 224), interpolation="bicubic", align_corners=True, antialias=False)
    mean = torch.tensor(conditioning.CLIP_MEAN)
    std = torch.tensor(conditioning.CLIP_STD)
    expected = kornia.enhance.normalize((resized + 1) / 2, mean, std)
    torch.testing.assert_close(conditioning.clip_pixels(x), expected, rtol=0, atol=1e-6)


def test_concatenated_latent_is_the_unscaled_mode_and_guidance_zeros(loaded):
    x = conditioning.to_model_range(np.full((1, 256, 256, 3), 200, np.uint8))
    cond = conditioning.condition(loaded, x, [0, 0], [0, 30], [0, 90])
    mode = loaded.vae.encode(x).latent_dist.mode()
    torch.testing.assert_close(cond.concat, mode.repeat(2, 1, 1, 1))
    both = cond.with_unconditional()
    assert both.concat.shape[0] == 4 and not both.concat[:2].any() and not both.context[:2].any()
    assert not torch.equal(cond.context[0], cond.context[1])  # the pose reaches the token


def test_timesteps_are_ldms():
    assert evaluations(75) == 76 and evaluations(50) == 49
    assert ddim_timesteps(75)[0] == 976 and ddim_timesteps(75)[-1] == 1
    assert list(ddim_timesteps(6)) == [831, 665, 499, 333, 167, 1]


# the elevation search

def _synthetic_matches(true_polar):
    points = np.random.default_rng(0).uniform(-0.3, 0.3, (60, 3)).astype(np.float32)
    K = elevation.camera_matrix()
    pixels = [elevation._project(K, points, np.linalg.inv(p).astype(np.float32)) for p in elevation.hypothesis_poses(true_polar)]
    return {(i, j): np.concatenate([pixels[i], pixels[j], np.ones((60, 1))], 1).astype(np.float32)
            for i in range(4) for j in range(4) if i != j}


@pytest.mark.parametrize("true_polar", [47, 73, 104])
def test_elevation_search_finds_the_polar_angle_of_exact_matches(true_polar):
    assert elevation.search(_synthetic_matches(true_polar)) == true_polar


def test_elevation_falls_back_to_level_without_matches(monkeypatch):
    monkeypatch.setattr(elevation, "match_pair", lambda m, a, b: (np.zeros((0, 2), np.float32),) * 2 + (np.zeros(0, np.float32),))
    blank = [np.full((256, 256, 3), 255, np.uint8)] * 4
    estimate = elevation.estimate_polar(None, blank, "cpu")
    assert (estimate.polar, estimate.estimated) == (90, False) and "assumed level" in estimate.note


# generate_views

def test_same_seed_same_views_and_the_folder_layout(loaded, tmp_path):
    first = generate_views(loaded, picture(), 20.0, seed=3, remove_background=False, **FAST)
    again = generate_views(loaded, picture(), 20.0, seed=3, remove_background=False, **FAST)
    other = generate_views(loaded, picture(), 20.0, seed=4, remove_background=False, **FAST)
    assert first.polar == 70.0 and len(first.stage1) == 8 and len(first.stage2) == 32
    assert all(np.array_equal(a.picture, b.picture) for a, b in zip(first.views, again.views))
    assert not np.array_equal(first.stage2[0].picture, other.stage2[0].picture)
    out = write_views(first, tmp_path / "views")
    assert json.loads((out / "pose.json").read_text()) == json.loads(json.dumps(plan.pose_json(plan.plan(70.0))))
    assert sorted(p.name for p in (out / "stage1_8").iterdir()) == sorted(f"{i}.png" for i in range(8))
    assert len(list((out / "stage2_8").iterdir())) == 32 and (out / "contact_sheet.png").is_file()
    summary = json.loads((out / "views.json").read_text())
    assert summary["views"][4]["elevation"] == -10.0 and summary["polar_estimated"] is False


def test_progress_and_cancel(loaded):
    events = []
    generate_views(loaded, picture(), 0.0, remove_background=False, progress=lambda s, f: events.append((s, f)), **FAST)
    fractions = [f for s, f in events if s == "views"]
    assert events[0] == ("prepare", 0.0) and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {s for s, _ in events} == {"prepare", "views"}  # with the elevation given: no first_views, elevation
    assert fractions[0] == 0.0 and len(fractions) == 1 + evaluations(3) + evaluations(2)
    calls = []
    with pytest.raises(Cancelled):
        generate_views(loaded, picture(), 0.0, remove_background=False, should_cancel=lambda: calls.append(1) or len(calls) > 2,
                       **FAST)
    assert len(calls) == 3


def test_estimated_elevation_runs_the_four_passes(loaded, monkeypatch):
    from backend.zero123 import views

    seen = []
    monkeypatch.setattr(views, "estimate_polar", lambda m, pictures, device: seen.append(len(pictures)) or
                        elevation.ElevationEstimate(80, True))
    events = []
    result = generate_views(loaded, picture(), matcher=object(), remove_background=False, **FAST,
                            progress=lambda s, f: events.append((s, f)))
    assert seen == [4] and result.polar == 80 and result.polar_estimated
    stages = [s for s, _ in events]
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == list(views.STAGES)  # in order
    assert [f for s, f in events if s == "first_views"][-1] == 1.0 and events[-1] == ("views", 1.0)
    assert [v.view_id for v in result.stage1][4:] == ["8", "9", "10", "11"]


@pytest.mark.parametrize("value, message", [(85.0, "between -70 and 70"), ("30", "number of degrees"),
                                            (float("nan"), "number of degrees")])
def test_bad_elevation_is_refused(loaded, value, message):
    with pytest.raises(InputImageError, match=message):
        generate_views(loaded, picture(), value, remove_background=False, **FAST)


def test_no_elevation_and_no_matcher_says_what_is_needed(loaded):
    with pytest.raises(InputImageError, match="indoor_ds_new.ckpt"):
        generate_views(loaded, picture(), remove_background=False, **FAST)


def test_a_fully_transparent_picture_is_refused(loaded):
    with pytest.raises(InputImageError, match="fully transparent"):
        generate_views(loaded, np.zeros((64, 64, 4), np.uint8), 0.0, **FAST)


def test_benchmark_tiny_cpu_mode_runs(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "bench/zero123_bench.py", "--device", "cpu", "--size", "tiny", "--repeats", "1",
                           "--elevation", "given", "--stage1-steps", "3", "--stage2-steps", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["precision"] for r in rows] == ["float32"] and rows[0]["views"] == 40 and rows[0]["median_seconds"] > 0
