"""The reconstruction as a job: progress, cancel, repeatability, its outputs and frames,
bad inputs, the test-model maker and the benchmark's tiny mode (a random-weight model with
a 32^3 volume and a mesh at 32, on synthetic views)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from one2345_cases import REPO_ROOT

from backend.bridge.errors import Cancelled, InputImageError
from backend.one2345.frames import WORLD_TO_BLENDER, world_to_blender, world_to_official_export
from backend.one2345.reconstruct import PLANES_PER_STEP, STAGES, reconstruct
from backend.one2345.views import ViewSet, read_input_folder
from backend.test_models.one2345 import camera_pose, make_state_dicts

RESOLUTION = 32


@pytest.fixture(scope="module")
def mesh(small_model, synthetic_views):
    return reconstruct(small_model, synthetic_views, resolution=RESOLUTION)


def test_outputs(mesh):
    assert mesh.vertices.dtype == np.float32 and mesh.vertices.shape[1] == 3 and len(mesh.vertices) > 100
    assert mesh.faces.dtype == np.int64 and mesh.faces.min() == 0 and mesh.faces.max() == len(mesh.vertices) - 1
    assert mesh.colors.dtype == np.uint8 and mesh.colors.shape == (len(mesh.vertices), 3)
    # the views show coloured spheres on white: the mesh takes colours from them, not one grey
    assert mesh.colors.std(axis=0).max() > 5
    # the object is at W's origin, inside the views' 1.2-radius camera sphere
    assert np.abs(mesh.vertices).max() < 1.2


def test_same_input_gives_the_same_mesh(small_model, test_model_files, mesh):
    vertices, faces, colors = reconstruct(small_model, test_model_files["views"], resolution=RESOLUTION)  # a folder
    assert np.array_equal(vertices, mesh.vertices)
    assert np.array_equal(faces, mesh.faces)
    assert np.array_equal(colors, mesh.colors)


def test_progress_reports_every_stage_in_order(small_model, synthetic_views):
    reports = []
    reconstruct(small_model, synthetic_views, resolution=RESOLUTION, progress=lambda s, f: reports.append((s, f)))
    stages = [s for s, _ in reports]
    assert sorted(set(stages), key=stages.index) == list(STAGES)
    assert [STAGES.index(s) for s in stages] == sorted(STAGES.index(s) for s in stages)
    for stage in STAGES:
        fractions = [f for s, f in reports if s == stage]
        assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    assert len([s for s in stages if s == "sdf"]) > RESOLUTION // PLANES_PER_STEP["cpu"]  # per step of x planes
    assert reports[-1] == ("colours", 1.0)


@pytest.mark.parametrize("stage", ["features", "volume", "sdf", "colours"])
def test_cancel_stops_at_the_next_step(small_model, synthetic_views, stage):
    seen = []

    def should_cancel():
        return stage in seen

    with pytest.raises(Cancelled):
        reconstruct(small_model, synthetic_views, resolution=RESOLUTION, progress=lambda s, f: seen.append(s),
                    should_cancel=should_cancel)
    later = STAGES[STAGES.index(stage) + 1:]
    assert not any(s in later for s in seen), f"went on to {seen[-1]} after a cancel during {stage}"


def test_frames():
    vertices = np.array([[0.1, 0.2, 0.3], [-0.4, 0.5, 0.6], [0.7, -0.8, 0.9]], np.float32)
    faces = np.array([[0, 1, 2]])
    exported, exported_faces = world_to_official_export(vertices, faces)
    assert np.array_equal(exported, vertices[:, [0, 2, 1]]) and np.array_equal(exported_faces, [[2, 1, 0]])
    blender, blender_faces = world_to_blender(vertices, faces)
    assert np.array_equal(blender_faces, [[2, 1, 0]])  # a mirror: faces reversed to stay outward
    assert np.isclose(np.linalg.det(WORLD_TO_BLENDER), -1.0)
    assert np.allclose(blender[:, 2], vertices[:, 2])  # z stays up
    # the input picture's camera (azimuth 30) ends on Blender's Front side (-y)
    camera = camera_pose(60, 30)[:3, 3]
    direction = WORLD_TO_BLENDER @ camera
    assert np.allclose(direction[:2] / np.linalg.norm(direction[:2]), [0.0, -1.0])
    # Blender's importers read the official y-up file as (x, -z, y): the same mirror
    imported = np.stack([exported[:, 0], -exported[:, 2], exported[:, 1]], axis=1)
    mirror_only = vertices * [1, -1, 1]
    assert np.allclose(imported, mirror_only)


def test_views_are_checked(synthetic_views, tmp_path, test_model_files):
    good = synthetic_views
    with pytest.raises(InputImageError, match=r"32 RGB views of 256 x 256"):
        ViewSet.from_arrays(good.images[:31], good.source_c2ws[:31], good.target_c2w)
    with pytest.raises(InputImageError, match="uint8"):
        ViewSet.from_arrays(good.images.astype(np.float32), good.source_c2ws, good.target_c2w)
    poses = good.source_c2ws.copy()
    poses[3, 0, 0] = np.nan
    with pytest.raises(InputImageError, match="finite"):
        ViewSet.from_arrays(good.images, poses, good.target_c2w)
    with pytest.raises(InputImageError, match="pose file"):
        read_input_folder(tmp_path)
    folder = test_model_files["views"]
    broken = tmp_path / "views"
    broken.mkdir()
    (broken / "pose.json").write_text((folder / "pose.json").read_text())
    with pytest.raises(InputImageError, match=r"stage2_8/0_0.png is missing"):
        read_input_folder(broken)


def test_rgba_views_are_composited_on_white(test_model_files, tmp_path):
    from PIL import Image

    from backend.one2345.views import read_view_image

    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:128, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "v.png")
    read = read_view_image(tmp_path / "v.png")
    assert read.shape == (256, 256, 4)
    from backend.one2345.views import _on_white

    white = _on_white(read)
    assert np.array_equal(white[0, 0], [200, 0, 0]) and np.array_equal(white[200, 0], [255, 255, 255])


def test_test_model_is_seeded_and_complete(small_model):
    first, second, other = make_state_dicts(0), make_state_dicts(0), make_state_dicts(1)
    for network, state in first.items():
        assert state.keys() == getattr(small_model, network).state_dict().keys()
        for key, value in state.items():
            assert torch.equal(value, second[network][key])
    assert not torch.equal(first["sdf_network_lod0"]["sdf_layer.lin0.weight_v"],
                           other["sdf_network_lod0"]["sdf_layer.lin0.weight_v"])


def test_benchmark_tiny_mode(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "bench/one2345_recon_bench.py", "--tiny", "--json", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["setting"]["volume"] == 32 and report["ours"]["vertices"] > 0
    assert set(report["ours"]["stages_s"]) == set(STAGES)
    assert "| ours (dense 3-D convolutions) | cpu | 32^3 | 32 |" in done.stdout


def test_reused_heap_raises_glibcs_thresholds_once_and_restores_them(monkeypatch):
    """The effect (no page faults for the reconstruction's large temporaries) is measured
    by the benchmark; here the calls: thresholds up on entering the outer context only,
    back to glibc's dynamic maxima and the heap trimmed on leaving it."""
    from backend.one2345 import heap

    calls = []

    class Recorder:
        def mallopt(self, option, value):
            calls.append(("mallopt", option, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(heap, "_LIBC", Recorder())
    with heap.reused_heap():
        with heap.reused_heap():
            assert calls == [("mallopt", -3, 1 << 30), ("mallopt", -1, 1 << 30)]
        assert len(calls) == 2  # the inner context changed nothing
    assert calls[2:] == [("mallopt", -3, 32 << 20), ("mallopt", -1, 64 << 20), ("trim", 0)]
    with pytest.raises(Cancelled), heap.reused_heap():
        raise Cancelled()
    assert calls[-1] == ("trim", 0) and heap._depth == [0]  # restored after an exception too
