"""The whole job with tiny models on the CPU: what it returns, what it reports, what it
refuses, and that a seed repeats it."""

import re

import numpy as np
import pytest

from backend.bridge.errors import Cancelled, DeviceError, InputImageError, PromptError
from backend.make_it_3d.job import encode_start, refine, refine_with_details

STAGES = ["prepare", "depth", "coarse", "surface", "cleanup", "decimate", "colors", "unwrap", "bake", "texture"]


@pytest.fixture(scope="module")
def tripo_start(tripo_model, disc_rgba, tiny_options):
    return encode_start(tripo_model, disc_rgba, tiny_options)


@pytest.fixture(scope="module")
def job(m3d_models, disc_rgba, tripo_start, tiny_options):
    events, previews = [], []
    result, details = refine_with_details(
        m3d_models, disc_rgba, "a red and blue disc", tripo_start, tiny_options,
        progress=lambda stage, fraction, loss: events.append((stage, fraction, loss)),
        preview=lambda image, stage, iteration: previews.append((stage, iteration, image.shape, image.dtype)))
    return result, details, events, previews


def test_result_is_a_textured_mesh(job, tiny_options):
    result = job[0]
    faces, vertices = result.faces, result.vertices
    assert vertices.dtype == np.float32 and vertices.ndim == 2 and vertices.shape[1] == 3
    assert faces.dtype == np.int32 and 4 <= len(faces) <= tiny_options.max_faces
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert result.colors.shape == (len(vertices), 4) and result.colors.dtype == np.uint8
    assert result.uvs.shape == (len(faces), 3, 2) and result.uvs.min() >= 0 and result.uvs.max() <= 1
    size = tiny_options.texture_size
    assert result.base_color.shape == result.normal_map.shape == (size, size, 3)
    assert result.base_color.dtype == result.normal_map.dtype == np.uint8
    assert result.prepared_image.ndim == 3 and result.prepared_image.shape[2] == 3
    assert {"prepare", "depth", "coarse", "surface", "texture", "unwrap"} <= set(result.timings)
    assert any("comes from the picture" in note for note in result.notes)


def test_stages_progress_and_losses(job, tiny_options):
    events = job[2]
    order = []
    for stage, _, _ in events:
        if not order or order[-1] != stage:
            order.append(stage)
    assert order == STAGES
    for stage, count in (("coarse", tiny_options.coarse_iterations), ("texture", tiny_options.refine_iterations)):
        iterations = [(fraction, loss) for name, fraction, loss in events if name == stage and loss is not None]
        assert [round(f, 6) for f, _ in iterations] == [round((i + 1) / count, 6) for i in range(count)]
        assert all(np.isfinite(loss) for _, loss in iterations)
    assert all(loss is None for stage, _, loss in events if stage not in ("coarse", "texture"))
    details = job[1]
    assert len(details.coarse_history) == tiny_options.coarse_iterations
    assert len(details.texture_history) == tiny_options.refine_iterations


def test_previews_every_n_iterations(job, tiny_options):
    previews = job[3]
    assert [(stage, iteration) for stage, iteration, _, _ in previews] == [("coarse", 3), ("coarse", 7),
                                                                          ("texture", 3)]
    assert previews[0][2] == (tiny_options.render_size,) * 2 + (3,)
    assert previews[-1][2] == (tiny_options.refine_render_size,) * 2 + (3,)
    assert all(dtype == np.uint8 for *_, dtype in previews)


def test_cpu_estimate_is_measured_and_small_here(job):
    assert 0 < job[1].estimate_minutes < 20


def test_same_seed_repeats_the_job(m3d_models, disc_rgba, tripo_start, tiny_options):
    short = tiny_options.with_changes(coarse_iterations=3, refine_iterations=2, seed=11)
    first = refine(m3d_models, disc_rgba, "a disc", tripo_start, short)
    again = refine(m3d_models, disc_rgba, "a disc", tripo_start, short)
    other = refine(m3d_models, disc_rgba, "a disc", tripo_start, short.with_changes(seed=12))
    for name in ("vertices", "faces", "colors", "uvs", "base_color", "normal_map"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert not np.array_equal(first.base_color, other.base_color)


def test_empty_start_as_the_paper(m3d_models, disc_rgba, tiny_options):
    result = refine(m3d_models, disc_rgba, "a disc", None, tiny_options.with_changes(coarse_iterations=4,
                                                                                       refine_iterations=2))
    assert len(result.faces) > 0 and result.base_color.shape == (128, 128, 3)


@pytest.mark.parametrize("prompt", [None, "", "   "])
def test_no_prompt_is_refused_before_any_work(m3d_models, disc_rgba, prompt):
    events = []
    with pytest.raises(PromptError, match="Make-It-3D needs a prompt") as caught:
        refine(m3d_models, disc_rgba, prompt, progress=lambda *event: events.append(event))
    assert caught.value.code == "bad_prompt" and events == []


def test_slow_device_is_refused_with_an_estimate(m3d_models, disc_rgba, tiny_options):
    options = tiny_options.with_changes(cpu_limit_minutes=1e-6, measure_iterations=1)
    events = []
    with pytest.raises(DeviceError) as caught:
        refine(m3d_models, disc_rgba, "a disc", None, options,
               progress=lambda stage, fraction, loss: events.append((stage, loss)))
    assert re.match(r"Make-It-3D needs a GPU: about \d+ minutes? on this CPU \(", caught.value.message)
    assert caught.value.code == "bad_device"
    # the first (warm-up) iteration and one timed iteration ran, then the refusal
    assert len([1 for stage, loss in events if stage == "coarse" and loss is not None]) == 2


def test_opaque_picture_needs_an_outline(m3d_models, tiny_options):
    opaque = np.full((32, 32, 3), 128, np.uint8)
    with pytest.raises(InputImageError, match="needs the object's outline"):
        refine(m3d_models, opaque, "a grey square", None, tiny_options.with_changes(remove_background=False))


def test_cancel_during_the_texture_stage(m3d_models, disc_rgba, tripo_start, tiny_options):
    seen = []

    def should_cancel():
        return "texture" in seen

    with pytest.raises(Cancelled):
        refine(m3d_models, disc_rgba, "a disc", tripo_start, tiny_options.with_changes(coarse_iterations=2),
               progress=lambda stage, fraction, loss: seen.append(stage), should_cancel=should_cancel)
    # cancelled at the first check in the stage: no texture iteration reported a loss
    assert "texture" in seen


def test_result_exports_as_a_textured_glb(job, tmp_path):
    """The same arrays every family returns: the project's exporter writes them with both
    images embedded (Blender's import of these arrays is phase 2's test)."""
    import trimesh

    from backend.mesh.export import write_mesh

    result = job[0]
    path = write_mesh(tmp_path / "refined.glb", result.vertices, result.faces, result.colors, result.uvs,
                      result.base_color, result.normal_map)
    scene = trimesh.load(path)
    mesh = next(iter(scene.geometry.values()))
    material = mesh.visual.material
    assert material.baseColorTexture is not None and material.normalTexture is not None
    assert np.asarray(material.baseColorTexture).shape[:2] == result.base_color.shape[:2]
